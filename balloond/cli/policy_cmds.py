"""`balloond check-policy`, `balloond check-config` and `balloond policy-schema`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from balloond.cli.common import EXIT_BAD_INPUT, EXIT_OK
from balloond.config import DEFAULT_CONFIG_PATH, ConfigLoadErrors, config_path, load_config
from balloond.errors import ConfigError
from balloond.model import DomainSnapshot
from balloond.policy.loader import PolicyLoadErrors, load_policy_files
from balloond.policy.match import select_explained
from balloond.policy.model import DEFAULT_POLICY, PolicySet
from balloond.policy.schema import schema_text

_CHECK_EPILOG = """\
Exit status: 0 when every file is valid (one summary line per file on stdout);
2 when any is not (every error on stderr as "file:line: key: message").
Nothing is loaded into a running daemon: this only reads the files.

examples:
  balloond check-policy /etc/balloond/policies
  balloond check-policy policies/web-tier.yaml --domain web-01 --tag tier=web
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    check = subparsers.add_parser(
        "check-policy",
        formatter_class=fmt,
        epilog=_CHECK_EPILOG,
        help="validate policy files without running the daemon",
        description="Validate policy files (or folders of *.yaml/*.yml files, read in name "
        "order, as the daemon reads its policy_dir) and report every error.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="FILE_OR_DIR",
        help="policy files or folders, loaded in the order given as one set "
        "(default: policy_dir of the daemon config)",
    )
    check.add_argument(
        "--config",
        metavar="FILE",
        help="daemon config whose policy_dir to check when no FILE_OR_DIR is "
        f"given (default: $BALLOOND_CONFIG, else {DEFAULT_CONFIG_PATH} if it "
        "exists)",
    )
    check.add_argument(
        "--domain",
        metavar="NAME",
        help="also show which policy would govern a domain of this name, and "
        "through which selector",
    )
    check.add_argument(
        "--uuid", default="", metavar="UUID", help="the domain's UUID, for --domain (default: none)"
    )
    check.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="a tag the domain carries, for --domain ('tier=web'); repeatable",
    )
    check.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing when valid; errors still go to stderr",
    )
    check.set_defaults(func=_check_policy)

    config = subparsers.add_parser(
        "check-config",
        help="validate a daemon config file",
        description="Validate a daemon config (balloond.yaml) and print the settings it "
        "gives. Exit 0 when valid, 2 (every error on stderr) when not.",
    )
    config.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help=f"the config file (default: $BALLOOND_CONFIG, else {DEFAULT_CONFIG_PATH})",
    )
    config.set_defaults(func=_check_config)

    schema = subparsers.add_parser(
        "policy-schema",
        help="print the JSON Schema of policy files (for editors)",
        description="Print the JSON Schema (draft 2020-12) of the policy file format. "
        "Point your editor's YAML language server at it for completion and checks.",
    )
    schema.add_argument(
        "-o", "--output", metavar="FILE", help="write the schema to FILE instead of standard output"
    )
    schema.set_defaults(func=_policy_schema)


def _check_policy(args: argparse.Namespace) -> int:
    paths: list[str] = list(args.paths)
    try:
        if not paths:
            # The same config the daemon would read (--config, $BALLOOND_CONFIG, /etc/...).
            paths = [load_config(config_path(args.config)).policy_dir]
        policies = load_policy_files(paths)
    except (PolicyLoadErrors, ConfigLoadErrors) as exc:
        return _print_errors(exc.errors)
    except ConfigError as exc:
        return _print_errors([exc])
    if not args.quiet:
        for line in summarize(policies) or [
            f"{', '.join(paths)}: no policy files; the built-in default applies"
        ]:
            print(line)
    if args.domain is not None:
        print(_which(policies, args.domain, args.uuid, args.tag))
    return EXIT_OK


def _print_errors(errors: list[Any]) -> int:
    for error in errors:
        print(error, file=sys.stderr)
    count = len(errors)
    print(f"balloond: {count} error{'s' if count != 1 else ''}; nothing loaded", file=sys.stderr)
    return EXIT_BAD_INPUT


def summarize(policies: PolicySet) -> list[str]:
    """One line per file: "policies/web.yaml: ok, 2 policies (web, web-lb)"."""
    by_file: dict[str, list[str]] = {name: [] for name in policies.files}
    from_files = [*policies.policies]
    if policies.default.source != DEFAULT_POLICY.source:  # a file replaced the fallback
        from_files.append(policies.default)
    for policy in from_files:
        by_file.setdefault(policy.source.rpartition(":")[0], []).append(policy.name)
    lines = []
    for file, names in by_file.items():
        count = f"{len(names)} polic{'y' if len(names) == 1 else 'ies'}"
        listed = f" ({', '.join(names)})" if names else ""
        lines.append(f"{file}: ok, {count}{listed}")
    return lines


def _which(policies: PolicySet, name: str, uuid: str, tags: list[str]) -> str:
    domain = DomainSnapshot(name=name, uuid=uuid, current=0, maxmem=0, tags=frozenset(tags))
    policy, rule = select_explained(policies, domain)
    return f"{name}: policy {policy.name!r} by {rule} ({policy.source})"


def _check_config(args: argparse.Namespace) -> int:
    args.file = args.file or config_path(None) or DEFAULT_CONFIG_PATH
    try:
        config = load_config(args.file)
    except ConfigLoadErrors as exc:
        return _print_errors(exc.errors)
    except ConfigError as exc:
        return _print_errors([exc])
    print(f"{args.file}: ok")
    for field in config.__dataclass_fields__:
        value = config.stale_after_seconds if field == "stale_after" else getattr(config, field)
        if field != "source":
            print(f"  {field}: {_shown(value)}")
    return EXIT_OK


def _shown(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}s"
    return str(value)


def _policy_schema(args: argparse.Namespace) -> int:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(schema_text())
    else:
        sys.stdout.write(schema_text())
    return EXIT_OK
