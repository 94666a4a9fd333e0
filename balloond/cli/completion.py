"""Shell completion for bash and zsh, written from the program's own argparse parser.

The commands, options and what each option's value is (a file, a folder, a choice, a domain)
are read from the parser that prints --help, so completion offers exactly what the program
takes. Domain names come from the program itself at completion time (`balloonctl list
--name`, with the --connect/--config/--socket already on the command line), as virsh's own
completion asks virsh.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

FILES, DIRS, DOMAINS, TEXT = "files", "dirs", "domains", "text"
_FILE_NAMES = {"FILE", "FILE_OR_DIR", "SCENARIO", "PATH", "CERT", "KEY"}
# The options that say where the domains are: passed on when asking for their names.
WHERE = ("-c", "--connect", "--config", "--socket")
NAMES_COMMAND = "list --name"


@dataclass(frozen=True)
class Value:
    """What an option or argument takes: one of FILES, DIRS, DOMAINS, TEXT, or `choices`."""

    kind: str
    label: str = ""  # what the help calls it: URI, FILE, DOMAIN
    choices: tuple[str, ...] = ()
    many: bool = False  # nargs * or +: every further word is one
    optional: bool = False  # nargs ?


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    value: Value | None  # None: a flag


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]
    help: str
    options: tuple[Option, ...]
    arguments: tuple[Value, ...]


@dataclass(frozen=True)
class Program:
    name: str
    options: tuple[Option, ...]
    commands: tuple[Command, ...]


def program(parser: argparse.ArgumentParser) -> Program:
    """Read a program's command line from its parser."""
    commands: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            seen: dict[int, list[str]] = {}
            subs: dict[int, argparse.ArgumentParser] = {}
            for name, sub in action.choices.items():
                seen.setdefault(id(sub), []).append(name)
                subs[id(sub)] = sub
            for key, names in seen.items():
                options, arguments = _actions(subs[key])
                commands.append(Command(tuple(names), helps.get(names[0], ""), options, arguments))
    options, _ = _actions(parser)
    return Program(parser.prog, options, tuple(commands))


def _actions(parser: argparse.ArgumentParser) -> tuple[tuple[Option, ...], tuple[Value, ...]]:
    options: list[Option] = []
    arguments: list[Value] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            value = None if action.nargs == 0 else _value(action)
            options.append(Option(tuple(action.option_strings), _first_line(action.help), value))
        else:
            arguments.append(_value(action))
    return tuple(options), tuple(arguments)


def _value(action: argparse.Action) -> Value:
    many = action.nargs in ("*", "+")
    optional = action.nargs == "?"
    name = str(action.metavar or action.dest).upper()
    if action.choices:
        return Value(TEXT, name, tuple(str(c) for c in action.choices), many, optional)
    kind = TEXT
    if name in _FILE_NAMES or name.endswith("_FILE"):
        kind = FILES
    elif name == "DIR" or name.endswith("_DIR"):
        kind = DIRS
    elif name == "DOMAIN":
        kind = DOMAINS
    return Value(kind, name, (), many, optional)


def _first_line(text: str | None) -> str:
    sentence = " ".join((text or "").split()).split("; ")[0].split(". ")[0]
    return sentence.replace("%(default)s", "").replace("%%", "%")


# -- bash -------------------------------------------------------------------------------------


def bash(prog: Program) -> str:
    """A self-contained bash completion script (no bash-completion helpers needed)."""
    fn = "_" + prog.name.replace("-", "_")
    takes_value = " ".join(f for o in prog.options if o.value for f in o.flags)
    all_takes = {f for c in prog.commands for o in c.options if o.value for f in o.flags}
    all_takes |= {f for o in prog.options if o.value for f in o.flags}
    names = " ".join(n for c in prog.commands for n in c.names)
    lines = [
        f"# bash completion for {prog.name}",
        "# Written by balloond.cli.docgen from the program's own parser: do not edit.",
        "",
        f"{fn}_domains() {{",
        "    local i args=()",
        "    for ((i = 1; i < ${#words[@]}; i++)); do",
        "        case ${words[i]} in",
        f'            {"|".join(WHERE)}) args+=("${{words[i]}}" "${{words[i+1]}}") ;;',
        f"            {'|'.join(f + '=*' for f in WHERE if f.startswith('--'))})"
        ' args+=("${words[i]}") ;;',
        "        esac",
        "    done",
        f'    {prog.name} "${{args[@]}}" {NAMES_COMMAND} 2>/dev/null',
        "}",
        "",
        f"{fn}_value() {{  # KIND [CHOICES]: what to offer for one value",
        "    case $1 in",
        '        files) COMPREPLY=($(compgen -f -- "$cur")) ;;',
        '        dirs) COMPREPLY=($(compgen -d -- "$cur")) ;;',
        f'        domains) COMPREPLY=($(compgen -W "$({fn}_domains)" -- "$cur")) ;;',
        '        choices) COMPREPLY=($(compgen -W "$2" -- "$cur")) ;;',
        "        *) COMPREPLY=() ;;",
        "    esac",
        "}",
        "",
        f"{fn}() {{",
        "    # Words from the line itself, split at blanks only: a URI's ':' stays in its word.",
        '    local line=${COMP_LINE:0:COMP_POINT} cur="" cmd="" prev="" i n=0',
        "    local -a words",
        '    read -ra words <<<"$line"',
        '    if [[ $line != *[[:space:]] ]]; then cur=${words[-1]}; unset "words[-1]"; fi',
        "    [[ ${#words[@]} -gt 1 ]] && prev=${words[-1]}",
        f'    local takes=" {" ".join(sorted(all_takes))} "',
        "    for ((i = 1; i < ${#words[@]}; i++)); do",
        '        if [[ $takes == *" ${words[i]} "* ]]; then ((i++)); continue; fi',
        "        [[ ${words[i]} == -* ]] && continue",
        "        if [[ -z $cmd ]]; then cmd=${words[i]}; else ((n++)); fi",
        "    done",
        '    if [[ $takes == *" $prev "* ]]; then',
        '        case "$cmd $prev" in',
        *_bash_values(prog, fn),
        "        esac",
        "        return",
        "    fi",
        "    if [[ -z $cmd ]]; then",
        "        if [[ $cur == -* ]]; then",
        f'            COMPREPLY=($(compgen -W "{takes_value} {_flags(prog.options)}" -- "$cur"))',
        "        else",
        f'            COMPREPLY=($(compgen -W "{names}" -- "$cur"))',
        "        fi",
        "        return",
        "    fi",
        '    case "$cmd" in',
        *_bash_commands(prog, fn),
        "    esac",
        "}",
        f"complete -F {fn} {prog.name}",
    ]
    return "\n".join(lines) + "\n"


def _flags(options: Sequence[Option]) -> str:
    return " ".join(f for o in options if o.value is None for f in o.flags)


def _bash_values(prog: Program, fn: str) -> list[str]:
    lines = []
    scopes = [("*", prog.options)] + [(n, c.options) for c in prog.commands for n in c.names]
    for scope, options in reversed(scopes):  # a command's own options first, then global
        for option in options:
            if option.value is None:
                continue
            quoted = [f'"{scope} {f}"' if scope != "*" else f'*" {f}"' for f in option.flags]
            lines.append(f"            {'|'.join(quoted)}) {_bash_offer(option.value, fn)} ;;")
    return lines


def _bash_offer(value: Value, fn: str) -> str:
    if value.choices:
        return f'{fn}_value choices "{" ".join(value.choices)}"'
    return f"{fn}_value {value.kind}"


def _bash_commands(prog: Program, fn: str) -> list[str]:
    lines = []
    for command in prog.commands:
        options = " ".join(f for o in command.options for f in o.flags)
        lines.append(f"        {'|'.join(command.names)})")
        lines.append("            if [[ $cur == -* ]]; then")
        lines.append(f'                COMPREPLY=($(compgen -W "{options}" -- "$cur")); return')
        lines.append("            fi")
        lines.append("            case $n in")
        for index, value in enumerate(command.arguments):
            offer = _bash_offer(value, fn)
            lines.append(f"                {'*' if value.many else index}) {offer} ;;")
        lines.append("            esac ;;")
    return lines


# -- zsh --------------------------------------------------------------------------------------


def zsh(prog: Program) -> str:
    """A zsh completion function (#compdef), using _arguments."""
    fn = "_" + prog.name.replace("-", "_")
    lines = [
        f"#compdef {prog.name}",
        "# Written by balloond.cli.docgen from the program's own parser: do not edit.",
        "",
        f"{fn}_domains() {{",
        "    # The whole line: options before the command are no longer in $words here.",
        "    local -a args names line_words",
        "    local i",
        "    line_words=(${(z)BUFFER})",
        "    for ((i = 2; i <= $#line_words; i++)); do",
        "        case $line_words[i] in",
        f"            ({'|'.join(WHERE)}) args+=($line_words[i] $line_words[i+1]) ;;",
        f"            ({'|'.join(f + '=*' for f in WHERE if f.startswith('--'))})"
        " args+=($line_words[i]) ;;",
        "        esac",
        "    done",
        f'    names=(${{(f)"$({prog.name} $args {NAMES_COMMAND} 2>/dev/null)"}})',
        "    _wanted domains expl domain compadd -a names",
        "}",
        "",
        f"{fn}() {{",
        "    local curcontext=$curcontext state state_descr line ret=1",
        "    typeset -A opt_args",
        "    _arguments -C \\",
        *[f"        {spec} \\" for spec in _zsh_options(prog.options, fn)],
        "        '1: :->command' \\",
        "        '*:: :->args' && ret=0",
        "    case $state in",
        "        (command)",
        "            local -a commands",
        "            commands=(",
        *[
            f"                {_zsh_quote(name + ':' + _zsh_text(c.help))}"
            for c in prog.commands
            for name in c.names
        ],
        "            )",
        "            _describe -t commands command commands && ret=0 ;;",
        "        (args)",
        f"            curcontext=${{curcontext%:*:*}}:{prog.name}-$words[1]:",
        "            case $words[1] in",
        *_zsh_commands(prog, fn),
        "            esac ;;",
        "    esac",
        "    return ret",
        "}",
        "",
        f'{fn} "$@"',
    ]
    return "\n".join(lines) + "\n"


def _zsh_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("[", "\\[").replace("]", "\\]")


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_action(value: Value, fn: str) -> str:
    if value.choices:
        return "(" + " ".join(value.choices) + ")"
    return {FILES: "_files", DIRS: "_files -/", DOMAINS: f"{fn}_domains"}.get(value.kind, " ")


def _zsh_options(options: Sequence[Option], fn: str) -> list[str]:
    specs = []
    for option in options:
        group = f"({' '.join(option.flags)})" if len(option.flags) > 1 else ""
        for flag in option.flags:
            spec = f"{group}{flag}"
            if option.value is not None and flag.startswith("--"):
                spec += "="
            spec += f"[{_zsh_text(option.help)}]"
            if option.value is not None:
                spec += f":{_zsh_text(option.value.label)}:{_zsh_action(option.value, fn)}"
            specs.append(_zsh_quote(spec))
    return specs


def _zsh_commands(prog: Program, fn: str) -> list[str]:
    lines = []
    for command in prog.commands:
        specs = _zsh_options(command.options, fn)
        for index, value in enumerate(command.arguments, start=1):
            position = "*" if value.many else str(index)
            colon = "::" if value.optional else ":"
            specs.append(_zsh_quote(f"{position}{colon}{value.label}:{_zsh_action(value, fn)}"))
        body = " \\\n                    ".join(specs)
        lines.append(f"                ({'|'.join(command.names)})")
        lines.append(f"                    _arguments {body} && ret=0 ;;")
    return lines
