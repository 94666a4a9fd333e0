"""Man pages in roff (man(7) macros), written from the parsers and knob tables themselves.

`program_page` reads an argparse parser (the same object that prints --help), `knob_page`
a knob table (the same one that validates the files and yields the JSON Schema and the docs'
tables), so a man page cannot say other than the code. balloond.cli.docgen writes them all.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from balloond.policy.knobs import Knob

SECTION_NAMES = {1: "User Commands", 5: "File Formats", 8: "System Administration"}


@dataclass(frozen=True)
class Page:
    """What a page says besides its parser or table: the prose around it."""

    name: str
    section: int
    summary: str  # the NAME line: "balloond - ..."
    version: str
    environment: Sequence[tuple[str, str]] = ()
    files: Sequence[tuple[str, str]] = ()
    exit_status: Sequence[tuple[int, str]] = ()
    see_also: Sequence[str] = ()
    notes: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (heading, text)


def escape(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, `code` in bold, no line taken
    for a request (a leading dot or quote)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`\n]+)`", r"\\fB\1\\fR", text)
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n")
    )


def paragraph(text: str, *, raw: bool = False) -> list[str]:
    """Filled text (blank lines start new paragraphs), or with `raw` the lines as written
    (argparse's RawDescriptionHelpFormatter texts: examples, tables)."""
    text = text.strip("\n")
    if not text.strip():
        return []
    if raw:
        return [".PP", ".nf", escape(_dedent(text)), ".fi"]
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        out += [".PP", escape(" ".join(block.split()))]
    return out


def _dedent(text: str) -> str:
    lines = text.split("\n")
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines)


def header(page: Page) -> list[str]:
    title = page.name.upper()
    manual = SECTION_NAMES.get(page.section, "")
    return [
        f'.TH "{title}" "{page.section}" "" "balloond {page.version}" "{manual}"',
        ".SH NAME",
        escape(f"{page.name} - {page.summary}"),
    ]


def footer(page: Page) -> list[str]:
    out: list[str] = []
    for heading, text in page.notes:
        out += [f".SH {heading.upper()}", *paragraph(text)]
    if page.environment:
        out += [".SH ENVIRONMENT", *_items((f"`{name}`", text) for name, text in page.environment)]
    if page.files:
        out += [".SH FILES", *_items((f"`{path}`", text) for path, text in page.files)]
    if page.exit_status:
        out += [".SH EXIT STATUS", *_items((f"`{code}`", text) for code, text in page.exit_status)]
    if page.see_also:
        refs = ", ".join(
            f"\\fB{escape(name)}\\fR({section})" for name, section in map(_ref, page.see_also)
        )
        out += [".SH SEE ALSO", refs]
    return out


def _ref(text: str) -> tuple[str, str]:
    name, _, section = text.rstrip(")").partition("(")
    return name, section


def _items(items: Iterable[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    for term, text in items:
        out += [".TP", escape(term), escape(" ".join(text.split()))]
    return out


# -- a program: its parser -----------------------------------------------------------------


def program_page(page: Page, parser: argparse.ArgumentParser) -> str:
    lines = header(page)
    lines += [".SH SYNOPSIS", *_synopsis(parser)]
    raw = parser.formatter_class is argparse.RawDescriptionHelpFormatter
    lines += [".SH DESCRIPTION", *paragraph(parser.description or "", raw=raw)]
    options = [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]
    if options:
        lines += [".SH OPTIONS", *_options(parser, options)]
    commands = _commands(parser)
    if commands:
        lines.append(".SH COMMANDS")
        for names, sub, summary in commands:
            lines += _command(names, sub, summary)
    return "\n".join(lines + footer(page)) + "\n"


def _synopsis(parser: argparse.ArgumentParser) -> list[str]:
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return [".nf", escape(" ".join(usage.split())), ".fi"]


def _commands(
    parser: argparse.ArgumentParser,
) -> list[tuple[list[str], argparse.ArgumentParser, str]]:
    """Each command once, with its aliases (`balloon`, `mem-set`) and its one-line help,
    in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: dict[int, tuple[list[str], argparse.ArgumentParser]] = {}
            for name, sub in action.choices.items():
                seen.setdefault(id(sub), ([], sub))[0].append(name)
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(names, sub, helps.get(names[0], "")) for names, sub in seen.values()]
    return []


def _command(names: list[str], sub: argparse.ArgumentParser, summary: str) -> list[str]:
    title = names[0] + (f" (alias {', '.join(names[1:])})" if names[1:] else "")
    usage = sub.format_usage().removeprefix("usage: ").strip()
    lines = [f'.SS "{escape(title)}"', ".nf", escape(" ".join(usage.split())), ".fi"]
    raw = sub.formatter_class is argparse.RawDescriptionHelpFormatter
    lines += paragraph(sub.description or summary, raw=raw)
    actions = [
        a for a in sub._actions if a.help != argparse.SUPPRESS and "-h" not in a.option_strings
    ]
    lines += _options(sub, actions)
    if sub.epilog:
        lines += paragraph(sub.epilog, raw=raw)
    return lines


def _options(parser: argparse.ArgumentParser, actions: Sequence[argparse.Action]) -> list[str]:
    lines: list[str] = []
    for action in actions:
        lines += [".TP", _term(action), escape(" ".join(_help(parser, action).split()))]
    return lines


def _term(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{escape(str(action.metavar or action.dest).upper())}\\fR"
    value = ""
    if action.nargs != 0:
        metavar = action.metavar or action.dest.upper()
        if action.choices and not action.metavar:
            metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
        value = f" \\fI{escape(str(metavar))}\\fR"
    return ", ".join(f"\\fB{escape(flag)}\\fR{value}" for flag in action.option_strings)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as --help prints it (%(default)s and friends expanded)."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = parser.prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return text % params


# -- a file format: its knob table -----------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One table of settings: a heading, prose before it, and each knob's default."""

    heading: str
    intro: str
    knobs: Sequence[Knob]
    defaults: dict[str, str | None]  # knob name -> the default as written, None: none


def knob_page(page: Page, synopsis: str, description: str, tables: Sequence[Table]) -> str:
    lines = header(page)
    lines += [".SH SYNOPSIS", escape(synopsis), ".SH DESCRIPTION", *paragraph(description)]
    for table in tables:
        lines += [f".SH {table.heading.upper()}", *paragraph(table.intro)]
        for knob in table.knobs:
            default = table.defaults.get(knob.name)
            text = knob.help + (f" Default: `{default}`." if default is not None else "")
            lines += [".TP", f"\\fB{escape(knob.name)}\\fR", escape(text)]
    return "\n".join(lines + footer(page)) + "\n"


# -- a document: the Markdown in docs/ -------------------------------------------------------


def markdown(text: str) -> list[str]:
    """The subset of Markdown docs/ is written in, as roff: `##` headings, paragraphs,
    `*`/`-` and numbered lists, fenced code, tables (one entry per row), `code`, **bold**
    and [links](target) (the text is kept)."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines)
            )
            out += [".PP", ".nf", ".RS 4", escape("\n".join(lines[i + 1 : end])), ".RE", ".fi"]
            i = end + 1
            continue
        if line.startswith("#"):
            level, _, title = line.partition(" ")
            if len(level) <= 2:
                out.append(f'.SH "{_inline(title).upper()}"')
            else:
                out.append(f'.SS "{_inline(title)}"')
        elif line.startswith("|"):
            i = _table(lines, i, out)
            continue
        elif re.match(r"^\s*([*-]|\d+\.) ", line):
            out += [
                ".IP \\(bu 2"
                if line.lstrip()[0] in "*-"
                else f".IP {line.split('.')[0].strip()}. 4"
            ]
            out.append(_inline(re.sub(r"^\s*([*-]|\d+\.) ", "", line)))
        elif not line.strip():
            out.append(".PP")
        else:
            out.append(_inline(line.strip()))
        i += 1
    return _tidy(out)


def _inline(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = escape(text)
    return re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", text)


def _table(lines: list[str], i: int, out: list[str]) -> int:
    """A Markdown table as one tagged paragraph per row: the first cell, then the others."""
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        cells = [cell.strip() for cell in lines[i].strip().strip("|").split("|")]
        if not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
        i += 1
    heads, body = rows[0], rows[1:]
    for row in body:
        rest = "; ".join(
            f"{head}: {cell}" for head, cell in zip(heads[1:], row[1:], strict=False) if cell
        )
        out += [".TP", _inline(row[0]), _inline(rest)]
    return i


def _tidy(out: list[str]) -> list[str]:
    """No paragraph break right after another, a heading or before an item."""
    tidy: list[str] = []
    for line in out:
        if line == ".PP" and (not tidy or tidy[-1].startswith((".PP", ".SH", ".SS", ".TP", ".IP"))):
            continue
        if line.startswith((".IP", ".TP", ".SH", ".SS")) and tidy and tidy[-1] == ".PP":
            tidy.pop()
        tidy.append(line)
    return tidy
