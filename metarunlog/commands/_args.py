"""Argument helpers shared by several commands (argparse stays in the command layer)."""

from __future__ import annotations

import argparse
from typing import Any

from metarunlog.selection import looks_like_selection


class _Targets(argparse.Action):
    """`[EXP] [SELECTION]` -> args.expId, args.selection (see `metarunlog.selection`)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        values = list(values or [])
        if len(values) > 2:
            parser.error(f"expected at most EXP and SELECTION, got {' '.join(values)}")
        if len(values) == 1 and looks_like_selection(values[0]):
            values = [None, values[0]]
        ns.expId = values[0] if values else None
        ns.selection = values[1] if len(values) > 1 else None  # None: not given (main resolves the default)


def add_target_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument(
        "targets",
        nargs="*",
        action=_Targets,
        metavar="EXP SELECTION",
        help=f"experiment (default: the one you are in, else the newest), then which sub-experiments to {verb}: "
        "'all' (default; inside a sub-experiment folder: that one), 3, or 1,4-6. One argument with ',' or '-' "
        "(or 'all') is a SELECTION of the default experiment; a lone number is an EXP. EXP/SELECTION in one "
        "argument (2/3, 2/1-4, last/5) or a sub-experiment folder's path names both",
    )
    p.set_defaults(expId=None, selection=None)


def join_dash_values(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """`--sort -val_acc` -> `--sort=-val_acc` for the options a command lists in DASH_VALUES:
    argparse would take a value starting with `-` for an unknown option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return out + argv[i:]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in options and nxt.startswith("-") and nxt not in ("-", "--"):
            out.append(f"{a}={nxt}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


ALIASES = "mrl_aliases"  # parser attribute: hidden spelling -> the option's shown --name


def add_option(p: argparse.ArgumentParser, *flags: str, hidden: tuple[str, ...] = (), **kwargs: Any) -> None:
    """An option under its shown `flags`, plus `hidden` spellings that still work (an older
    camelCase `--copyConfigFrom` beside `--copy-config-from`) but stay out of `--help`:
    `main.Parser` rewrites them to the shown long name before parsing (see `apply_aliases`)."""
    action = p.add_argument(*flags, **kwargs)
    if hidden:
        shown = next(f for f in action.option_strings if f.startswith("--"))
        aliases = dict(getattr(p, ALIASES, None) or {})
        aliases.update(dict.fromkeys(hidden, shown))
        setattr(p, ALIASES, aliases)


def add_copy_options(p: argparse.ArgumentParser, copy_help: str, notclean_help: str) -> None:
    """`-cp/--copy-config-from EXP` and `-nc/--notclean`, spelled alike wherever an
    experiment is made (`mrl new`, `mrl rerun`), with each command's own help."""
    add_option(
        p,
        "-cp",
        "--cp",
        "--copy-config-from",
        hidden=("--copyConfigFrom",),
        dest="copyConfigFrom",
        metavar="EXP",
        default=None,
        help=copy_help,
    )
    add_option(
        p,
        "-nc",
        "--nc",
        "--notclean",
        hidden=("--not-clean",),
        dest="notclean",
        action="store_true",
        help=notclean_help,
    )


def apply_aliases(p: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--copyConfigFrom 1` -> `--copy-config-from 1` (and `--name=value`), up to a `--`."""
    aliases: dict[str, str] = getattr(p, ALIASES, None) or {}
    if not aliases:
        return argv
    out: list[str] = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        name, eq, value = a.partition("=")
        out.append(aliases[name] + eq + value if name in aliases else a)
    return out


def kebab(name: str) -> str:
    """`nEpochs`, `n_epochs` -> `n-epochs`: the double-dash spelling of an option name."""
    import re

    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).replace("_", "-").lower()
