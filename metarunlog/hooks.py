"""User extension files: `mrl_hooks.py` (hooks, custom commands) and `mrl_analyze.py`.

Hooks are registered in `.mrl.cfg` `hooks` as `{"name": {"xarg": default}}`:
`before_<command>` / `after_<command>` wrap the command they name and are called as
`fn(mrl, args)`; any other name becomes a subcommand `mrl <name> [EXP] [-xarg VALUE]`,
replacing a built-in command of that name (as in the original metarunlog). Hooks run
inside `git_fence`, so git started in an experiment folder never reaches the project.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from metarunlog.error_handler import STDOUT
from metarunlog.errors import HookError
from metarunlog.plugins import describe, line_in, prints_to_stderr  # where the user's code prints

HOOKS_FILE = "mrl_hooks.py"
ANALYZE_FILE = "mrl_analyze.py"

_loaded: dict[Path, ModuleType] = {}


def load_user_module(basedir: Path, filename: str) -> ModuleType:
    """Import `basedir/filename` (once per process); errors name the file and line."""
    path = (basedir / filename).resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise HookError(f"{path} does not exist, but .mrl.cfg registers functions from it: create it")
    modname = path.stem
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Let the user's file import the project's own modules, as it would from the basedir.
    if str(basedir) not in sys.path:
        sys.path.insert(0, str(basedir))
    try:
        # What the file prints while it is imported (the original's example mrl_analyze.py
        # prints its matplotlib backend) goes to stderr: `mrl table --json` stays JSON.
        with prints_to_stderr():
            spec.loader.exec_module(module)
    except SyntaxError as e:
        raise HookError(f"{path}:{e.lineno}: syntax error: {e.msg}") from e
    except Exception as e:
        raise HookError(f"{path}:{line_in(e, path)}: importing it failed: {describe(e)}") from e
    _loaded[path] = module
    return module


def get_function(basedir: Path, filename: str, name: str) -> Callable[..., Any]:
    module = load_user_module(basedir, filename)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise HookError(
            f"'{name}' is registered in .mrl.cfg but {basedir / filename} defines no function "
            f"of that name: define it, or remove it from .mrl.cfg"
        )
    return fn  # type: ignore[no-any-return]


def call_user(fn: Callable[..., Any], what: str, *args: Any) -> Any:
    """Call a user function; an exception becomes a HookError naming the function and line."""
    try:
        return fn(*args)
    except HookError:
        raise
    except KeyboardInterrupt:
        raise
    except SystemExit as e:
        if e.code in (0, None):
            return None
        raise HookError(f"{what} exited with {e.code}") from e
    except OSError as e:
        if e.filename == STDOUT:  # `mrl score | head`, `> /dev/full`: mrl's output, not the hook's fault
            raise
        raise _hook_error(fn, what, e) from e
    except Exception as e:
        raise _hook_error(fn, what, e) from e


def _hook_error(fn: Callable[..., Any], what: str, e: BaseException) -> HookError:
    """`<what> raised <error> (<file> line N)`."""
    path = Path(fn.__code__.co_filename)
    # No line of the file in the traceback: the call never got in (a wrong signature,
    # `def score(mrl)`): name the def line.
    line = line_in(e, path)
    where = fn.__code__.co_firstlineno if line == "?" else line
    return HookError(f"{what} raised {describe(e)} ({path.name} line {where})")


WRAP_PREFIXES = ("before_", "after_")


# The original's `mrl last` was `mrl info last` (its mode was 'info'): its hooks are info's.
HOOK_ALIASES = {"last": "info"}


def hook_mode(command: str) -> str:
    """The command name hooks see as `args.mode`, and whose before_/after_/replacing hooks apply."""
    return HOOK_ALIASES.get(command, command)


def wrap_hooks(cfg_hooks: dict[str, Any], command: str) -> tuple[list[str], list[str]]:
    """Names of the before_/after_ hooks registered for `command`, outermost first for
    before and last for after (`mrl last`: info's around last's own)."""
    names = [command] if hook_mode(command) == command else [hook_mode(command), command]
    before = [f"before_{n}" for n in names if f"before_{n}" in cfg_hooks]
    after = [f"after_{n}" for n in reversed(names) if f"after_{n}" in cfg_hooks]
    return before, after


def custom_commands(cfg_hooks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hooks that define subcommands: every name without a before_/after_ prefix.

    As in the original metarunlog, a `before_X`/`after_X` name always wraps the command
    `X` (built-in or custom), and a name equal to a built-in command replaces it.
    """
    return {
        name: xargs if isinstance(xargs, dict) else {}
        for name, xargs in cfg_hooks.items()
        if not name.startswith(WRAP_PREFIXES)
    }


def orphan_wrappers(cfg_hooks: dict[str, Any], commands: set[str]) -> list[str]:
    """before_X/after_X hooks whose X is no command: they would never be called."""
    return [n for n in cfg_hooks if n.startswith(WRAP_PREFIXES) and n.split("_", 1)[1] not in commands]


def replaces_message(name: str) -> str:
    return f"hook {name} from {HOOKS_FILE} replaces the built-in mrl {name}; rename it to use the built-in"


@contextlib.contextmanager
def git_fence(outdir: Path) -> Iterator[None]:
    """Run user code with git unable to climb from an experiment folder into the project.

    The original's example `after_new` hook runs `cd code; git checkout <sha>`; code/ is a
    plain folder here, so without this fence git would find the project repository above
    it and detach the user's HEAD. `GIT_CEILING_DIRECTORIES=<outdir>` stops repository
    discovery below outdir (a repository inside an experiment, e.g. a clone, still works).
    """
    key = "GIT_CEILING_DIRECTORIES"
    old = os.environ.get(key)
    fence = str(outdir.resolve())
    os.environ[key] = fence if not old else f"{fence}{os.pathsep}{old}"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
