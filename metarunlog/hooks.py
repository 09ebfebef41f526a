"""User extension files: `mrl_hooks.py` (hooks, custom commands) and `mrl_analyze.py`.

Hooks are registered in `.mrl.cfg` `hooks` as `{"name": {"xarg": default}}`:
`before_<command>` / `after_<command>` wrap a built-in command and are called as
`fn(mrl, args)`; any other name becomes a subcommand `mrl <name> [EXP] [-xarg VALUE]`.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from metarunlog.errors import HookError

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
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise HookError(f"{path}:{e.lineno}: syntax error: {e.msg}") from e
    except Exception as e:
        raise HookError(f"{path}:{_user_line(e, path)}: importing it failed: {_describe(e)}") from e
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
    except Exception as e:
        path = Path(fn.__code__.co_filename)
        raise HookError(f"{what} raised {_describe(e)} ({path.name} line {_user_line(e, path)})") from e


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _user_line(e: BaseException, path: Path) -> int | str:
    """The deepest traceback line inside the user's file."""
    line: int | str = "?"
    for frame in traceback.extract_tb(e.__traceback__):
        if Path(frame.filename).resolve() == path.resolve() and frame.lineno is not None:
            line = frame.lineno
    return line


def wrap_hooks(cfg_hooks: dict[str, Any], command: str) -> tuple[str | None, str | None]:
    """Names of the before_/after_ hooks registered for `command` (None when absent)."""
    before = f"before_{command}"
    after = f"after_{command}"
    return (before if before in cfg_hooks else None, after if after in cfg_hooks else None)


def custom_commands(cfg_hooks: dict[str, Any], builtin: set[str]) -> dict[str, dict[str, Any]]:
    """Hooks that define new subcommands: every name not before_/after_ a built-in."""
    out = {}
    for name, xargs in cfg_hooks.items():
        if name.startswith(("before_", "after_")) and name.split("_", 1)[1] in builtin:
            continue
        out[name] = xargs if isinstance(xargs, dict) else {}
    return out
