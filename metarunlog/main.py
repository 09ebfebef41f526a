"""argv -> work: the argparse wiring and the dispatch, nothing else. `main(argv) -> int`."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import copy
import importlib
import logging
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any, NoReturn

from metarunlog import __version__
from metarunlog.error_handler import (
    EXIT_INTERRUPT,
    Exit,
    error_handler,
    killed_like_ctrl_c,
    stderr_guarded,
    stdout_named,
)
from metarunlog.errors import MrlError

# Built-in commands, in the order `mrl --help` lists them; each is metarunlog/commands/<name>.py
# with HELP, add_arguments(parser) and cli(args, project) -> int.
COMMANDS = [
    "quickstart",
    "init",
    "new",
    "ls",
    "info",
    "verify",
    "last",
    "makebatch",
    "run",
    "rerun",
    "reproduce",
    "status",
    "cancel",
    "table",
    "tag",
    "diff",
    "analyze",
]

EPILOG = """\
EXP is an experiment id (3 or 0003), 'last', or the path of an experiment folder; it
defaults to the experiment the current directory is in, else the newest one.
Options may come before, between or after the positionals (`mrl run 3 --force 2`); after
`--` every word is a positional (`mrl run 1 --dry-run -- 2`, `mrl tag 3 -- -draft`).
Start with `mrl quickstart DIR` for a worked example. MRL_DEBUG=1 shows tracebacks.
"""


class Parser(argparse.ArgumentParser):
    """argparse, but bad input is one `mrl: error:` line and exit code 1 (not 2)."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        from metarunlog.commands._args import apply_aliases  # hidden old spellings (add_option)

        argv = apply_aliases(self, sys.argv[1:] if args is None else list(args))
        if getattr(self, "_intermixing", False):
            return self._intermixed_pass(argv, namespace)
        if self._subparsers is not None:
            return super().parse_known_args(argv, namespace)
        parsed, extras = super().parse_known_args(list(argv), copy.copy(namespace))
        before_dashes = extras[: extras.index("--")] if "--" in extras else extras
        if not extras or any(a.startswith("-") for a in before_dashes):
            return parsed, extras
        # `mrl run 3 --force 2`, `mrl table 3 --json 5`, `mrl run 1 --dry-run -- 2`: argparse
        # fills the positionals from the first run of words only, and the words after an
        # option were "unrecognized"; parsed again, every word an option does not take goes
        # to the positionals (and every word after a `--` is one, as always)
        self._intermixing = True
        try:
            return super().parse_known_intermixed_args(argv, namespace)
        except TypeError:  # a parser the intermixed parse cannot take (argparse.REMAINDER)
            return parsed, extras
        finally:
            self._intermixing = False

    def _intermixed_pass(self, argv: list[str], namespace: Any) -> Any:
        """One of the two parses of argparse's intermixed parse. The first (its positionals
        switched off) reads the options; it is given only the words before a `--`, because
        it drops a `--` it meets between options, and the second would then take a word after
        it for an option (`mrl run -- 1 --dry-run` dry-ran). The rest is handed to the second
        as it was, `--` and all, which fills the positionals."""
        first = any(a.nargs == argparse.SUPPRESS for a in self._get_positional_actions())
        if not first or "--" not in argv:
            return super().parse_known_args(argv, namespace)
        cut = argv.index("--")
        parsed, words = super().parse_known_args(argv[:cut], namespace)
        return parsed, [*words, *argv[cut:]]

    def print_help(self, file: Any = None) -> None:
        # argparse's own printing swallows write errors: `mrl --help > /dev/full` was exit 0
        (file or sys.stdout).write(self.format_help())

    def error(self, message: str) -> NoReturn:
        prog = self.prog
        chosen = getattr(self, "chosen", None)
        if chosen and message.startswith("unrecognized arguments"):
            prog = f"mrl {chosen}"  # the top-level parser reports a subcommand's stray options
        print(f"mrl: error: {message} (see `{prog} --help`)", file=sys.stderr)
        raise Exit(1)


def _command_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"metarunlog.commands.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"metarunlog.commands.{name}":
            return None  # not built yet in this checkout
        raise


def build_parser(
    custom: dict[str, dict[str, Any]] | None = None, only: str | None = None
) -> tuple[Parser, dict[str, ModuleType]]:
    """The `mrl` parser. With `only`, just that command's module is imported (the others
    get bare subparsers), so that `mrl ls` does not pay for importing every command."""
    parser = Parser(
        prog="mrl",
        description="metarunlog: git-anchored experiments, hyperparameter batches, runs and reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.chosen = only  # type: ignore[attr-defined]
    parser.add_argument("--version", action="version", version=f"metarunlog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    custom = custom or {}
    modules = {}
    for name in [*COMMANDS, *(c for c in custom if c not in COMMANDS)]:
        if name in custom:  # a hook; one named like a built-in replaces it, in its place
            if only is not None and name != only:
                sub.add_parser(name)  # not the command run: its xargs are not read
                continue
            try:
                _add_custom(sub, name, custom[name])
            except MrlError as e:
                if only == name:
                    raise
                sub.add_parser(name, help=f"(cannot be run: {e})")  # `mrl --help` still lists the rest
            continue
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        mod = _command_module(name)
        if mod is None:
            continue
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=mod.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        try:
            mod.add_arguments(p)
        except MrlError as e:  # a plugin's option (a backend's RunArg) that cannot be added
            if only == name:
                raise
            _cannot_be_run(sub, name, e)  # `mrl --help` still lists the rest
            continue
        modules[name] = mod
    return parser, modules


def _cannot_be_run(sub: Any, name: str, e: MrlError) -> None:
    """Say in `mrl --help` why command `name` cannot be run (argparse keeps each listed
    command's help line in its choices actions)."""
    for action in sub._choices_actions:
        if action.dest == name:
            action.help = f"(cannot be run: {e})"


# What args of a hook command already hold: an xarg of the same name would overwrite it.
_RESERVED_DESTS = ("command", "expId", "mode")


def _add_custom(sub: Any, name: str, xargs: dict[str, Any]) -> None:
    """`mrl NAME [EXP] [-xarg VALUE ...]` for a hook of mrl_hooks.py."""
    _add_xargs(argparse.ArgumentParser(), name, xargs)  # an xarg that cannot be an option: before add_parser
    hook = f"{name}(self, args) of mrl_hooks.py"
    what = f"replaces the built-in mrl {name}" if name in COMMANDS else "custom command"
    short = f"{what}: the hook {hook}"
    p = sub.add_parser(
        name,
        help=short,
        description=(
            f"{short[0].upper()}{short[1:]}, run with args.expId resolved from EXP and each -xarg "
            f"below (its default from the .mrl.cfg `hooks` entry {name!r}; `required` ones have none). "
            "It writes what the hook writes; git inside it cannot reach the project repository "
            "(GIT_CEILING_DIRECTORIES)."
        ),
    )
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: the one you are in, else the newest)")
    _add_xargs(p, name, xargs)


def _add_xargs(p: argparse.ArgumentParser, name: str, xargs: dict[str, Any]) -> None:
    """`-xarg VALUE` (and `--x-arg`) per entry of the hook's .mrl.cfg xargs; MrlError naming
    one that cannot be an option."""
    from metarunlog.commands._args import add_option, kebab

    for xarg, default in xargs.items():
        where = f".mrl.cfg hooks: {name}'s xarg {xarg!r}"
        if xarg in _RESERVED_DESTS:
            raise MrlError(f"{where} is a name mrl sets on args itself ({', '.join(_RESERVED_DESTS)}): rename it")
        # -xarg as the original spelled it, and --x-arg; --xArg (the name as written) still works
        long = f"--{kebab(xarg)}"
        try:
            add_option(
                p,
                f"-{xarg}",
                long,
                hidden=(f"--{xarg}",) if long != f"--{xarg}" else (),
                dest=xarg,
                default=default,
                required=default is None,
                metavar="VALUE",
                help="required" if default is None else f"default: {default}",
            )
        except argparse.ArgumentError as e:  # -h, -help, or gammaN beside gamma_n (both --gamma-n)
            raise MrlError(f"{where} clashes with another option ({e.message}): rename it") from None


def main(argv: list[str] | None = None) -> int:
    """`mrl ARGV...`; without `argv`, the program itself (sys.argv), whose process ends next."""
    program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _closed_streams_to_devnull()
        _bytes_of_paths_printable()
        with killed_like_ctrl_c(), stderr_guarded(), error_handler(), _warnings_printed(), stdout_named():
            code = _main(argv)
            # What is still buffered (a --help) is written while a failure can still be
            # said: `mrl --help > /dev/full` is the one error line, not an exit 0.
            sys.stdout.flush()
            return code
    except Exit as e:
        return e.code
    except KeyboardInterrupt:  # Ctrl-C as the handlers above were being set up or undone
        with contextlib.suppress(OSError, ValueError):
            print("mrl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    finally:
        if program:
            _no_collection_at_exit()


def _no_collection_at_exit() -> None:
    """The process ends next, and Python's last garbage collection would walk every object
    still alive: after `mrl analyze` a report's bokeh models, data and every imported
    module, ~0.1 s. Frozen, they are left out of it (and freed as the process ends)."""
    import gc

    gc.freeze()


def _closed_streams_to_devnull() -> None:
    """Started with stdin, stdout or stderr closed (`mrl run >&-`, cron, a daemon), Python
    has None for it: what mrl prints then goes to /dev/null, as a lost output does. The
    descriptor itself is filled too, so no file mrl opens later becomes a step's stdout."""
    import os

    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
        setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115 (lives as long as mrl)


def _bytes_of_paths_printable() -> None:
    """A file name that is not UTF-8 reaches mrl as os.fsdecode makes it (surrogates); under
    a strict UTF-8 locale (en_US.UTF-8) printing it was a UnicodeEncodeError. stdout writes
    its original bytes back, as Python does under the C locale. A character the terminal's
    encoding has no byte for (a Japanese description under latin-1 or ASCII) is printed as
    its escape (`\\u65e5`), as stderr does."""
    out = sys.stdout
    if getattr(out, "errors", None) == "strict" and hasattr(out, "reconfigure"):
        codecs.register_error(_PRINTABLE, _bytes_or_escape)
        out.reconfigure(errors=_PRINTABLE)


_PRINTABLE = "mrl.printable"


def _bytes_or_escape(e: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(e, UnicodeEncodeError):
        raise e
    ch = e.object[e.start]
    if "\udc80" <= ch <= "\udcff":  # surrogateescape's: the byte it stands for
        return bytes([ord(ch) - 0xDC00]), e.start + 1
    return ch.encode("ascii", "backslashreplace").decode("ascii"), e.start + 1


class _WarningPrinter(logging.Handler):
    """The layers below log warnings (`metarunlog.*` loggers); the command line prints them."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"mrl: warning: {record.getMessage()}", file=sys.stderr)  # sys.stderr now: tests swap it


@contextlib.contextmanager
def _warnings_printed() -> Iterator[None]:
    logger, handler = logging.getLogger("metarunlog"), _WarningPrinter(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _find_project() -> tuple[Any, MrlError | None]:
    from metarunlog.project import Project

    try:
        return Project.find(), None  # the current directory as the shell names it (symlinks kept)
    except MrlError as e:
        return None, e


# Commands that need no plugin (backend, reader, section): `.mrl.cfg` `plugins` modules are
# imported only when one is asked for (a record of a plugin's backend in `mrl status`).
NO_PLUGINS = ("ls", "info", "last", "status", "tag", "verify")


def _main(argv: list[str]) -> int:
    from metarunlog import plugins

    first = argv[0] if argv else None
    if first is None or first in ("-h", "--help", "--version") or first in NO_PLUGINS:
        with plugins.deferred_imports():
            return _command(argv)
    return _command(argv)


def _command(argv: list[str]) -> int:
    from metarunlog import hooks

    project, project_error = _find_project()
    cfg_hooks = dict(project.cfg["hooks"]) if project is not None else {}
    custom = hooks.custom_commands(cfg_hooks)
    chosen = _chosen_command(argv, custom)
    _warn_about_hooks(cfg_hooks, custom, chosen, argv)
    parser, modules = build_parser(custom, only=chosen)
    mod = modules.get(chosen or "")
    if mod is not None and hasattr(mod, "fix_argv"):  # a command's own argv reading (mrl tag 3 -draft)
        argv = mod.fix_argv(argv)
    if not argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version: argparse exits 0 after printing
        return e.code if isinstance(e.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 0
    args.mode = hooks.hook_mode(args.command)  # hook files written for the original read args.mode
    mod = modules.get(args.command)
    needs_project = getattr(mod, "NEEDS_PROJECT", True) if mod else True
    if needs_project and project is None:
        assert project_error is not None
        raise project_error
    if project is not None:
        project.args = args
        from metarunlog import cfg as legacy_cfg

        legacy_cfg._fill(project.cfg)
    resolves = getattr(mod, "RESOLVES_EXP", needs_project)
    if callable(resolves):  # the command decides from its options (info --verify takes copies elsewhere)
        resolves = resolves(args)
    if mod is None:
        if args.expId is not None or project.last_id() is not None:
            args.expId = project.load_exp(args.expId).id
    elif resolves and hasattr(args, "selection"):
        from metarunlog.selection import resolve_targets  # EXP/SUB, sub-experiment folders

        args.expId, args.selection = resolve_targets(project, args.expId, args.selection, command=args.command)
    elif resolves and hasattr(args, "sub_selection") and args.expId is not None:
        from metarunlog.selection import sub_target  # EXP/SUB where a command takes an EXP (table, info)

        target = sub_target(project, args.expId)
        exp, args.sub_selection = target if target is not None else (project.load_exp(args.expId), None)
        args.expId = exp.id
    elif resolves and hasattr(args, "sub_selection") and (here := _sub_here(project, mod, args)) is not None:
        args.expId, args.sub_selection = here  # no EXP, inside a sub-experiment folder: that one (info)
    elif resolves and hasattr(args, "expId"):
        args.expId = project.load_exp(args.expId).id
    before, after = hooks.wrap_hooks(cfg_hooks, args.command)
    for name in after:  # a missing file or function is an error before the command, not after it made things
        hooks.get_function(project.basedir, hooks.HOOKS_FILE, name)
    for name in before:
        _call_hook(project, name, args, quiet=_machine_output(args))
    if mod is None or (args.mode != args.command and args.mode in custom):  # `mrl last` with an info hook
        code = _run_custom(project, args)
    else:
        code = int(mod.cli(args, project) or 0)
        # "after the command succeeded": not after a failed or interrupted run, nor a preview
        why = f"mrl {args.command} exited {code}" if code else "--dry-run" if getattr(args, "dry_run", False) else ""
        if why and after:
            print(f"mrl: note: {', '.join(after)} not called: {why}", file=sys.stderr)
            return code
    for name in after:
        _call_hook(project, name, args, quiet=_machine_output(args))
    return code


def _machine_output(args: argparse.Namespace) -> bool:
    """The command prints for a script (`--json`, `table --csv/--tsv`): what a hook wrapping it
    prints goes to stderr, so that stdout stays parseable (as for mrl_analyze.py's prints)."""
    return bool(getattr(args, "json", False)) or getattr(args, "format", None) in ("json", "csv", "tsv")


def _chosen_command(argv: list[str], custom: dict[str, Any]) -> str | None:
    """The command argv names before any option, or None (then build them all)."""
    for arg in argv:
        if arg.startswith("-"):
            return None  # `mrl --help ...`, `mrl --version`: the full parser
        return arg if arg in COMMANDS or arg in custom else None
    return None


def _warn_about_hooks(cfg_hooks: dict[str, Any], custom: dict[str, Any], chosen: str | None, argv: list[str]) -> None:
    """Say once when a hook replaces the built-in command being run (or listed by --help),
    and when a before_/after_ hook names no command at all."""
    from metarunlog import hooks

    listing = not argv or argv[0] in ("-h", "--help")
    for name in custom:
        if name in COMMANDS and (name == chosen or listing or (chosen and hooks.hook_mode(chosen) == name)):
            print(hooks.replaces_message(name), file=sys.stderr)
    for name in hooks.orphan_wrappers(cfg_hooks, set(COMMANDS) | set(custom)):
        target = name.split("_", 1)[1]
        print(
            f"mrl: warning: hook {name} wraps the command '{target}', which is neither built in nor a "
            f"hook in .mrl.cfg: it is never called",
            file=sys.stderr,
        )


def _sub_here(project: Any, mod: ModuleType | None, args: argparse.Namespace) -> tuple[int, str] | None:
    """The sub-experiment folder the cwd is in, for a command taking EXP/SUB given no EXP
    (info), unless its module says `SUB_HERE = False` (table: all rows, for comparing)."""
    if not getattr(mod, "SUB_HERE", True):
        return None
    from metarunlog.selection import sub_here

    return sub_here(project)


def _call_hook(project: Any, name: str, args: argparse.Namespace, *, quiet: bool = False) -> Any:
    from metarunlog import hooks

    fn = hooks.get_function(project.basedir, hooks.HOOKS_FILE, name)
    with hooks.git_fence(project.outdir), hooks.prints_to_stderr() if quiet else contextlib.nullcontext():
        return hooks.call_user(fn, f"hook {name}", project, args)


def _run_custom(project: Any, args: argparse.Namespace) -> int:
    out = _call_hook(project, args.command if args.command in project.cfg["hooks"] else args.mode, args)
    if isinstance(out, int) and not isinstance(out, bool):
        return out
    if out:  # as the original: `if ret: print(ret)`, a dict or a list too
        print(out)
    return 0
