"""Code registered from outside mrl: a metrics reader, a report section, a backend.

When such code raises, the fault is its author's to fix, not a bug in mrl: it becomes a
`PluginError` (one `mrl: error:` line naming what failed, the exception and the plugin's
file and line), never mrl's "internal error" traceback. mrl's own readers, sections and
backends are left alone: an exception there is mrl's bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from metarunlog.errors import MrlError

_PACKAGE = Path(__file__).resolve().parent


class PluginError(MrlError):
    """A reader, section or backend registered from outside mrl raised or returned nonsense."""


def module_of(obj: Any) -> str:
    """The module an object (a class, a function, an instance) was defined in; a str is
    taken as a module name."""
    if isinstance(obj, str):
        return obj
    return str(getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "") or "")


def is_foreign(obj: Any) -> bool:
    """True for code that is not part of mrl (a third-party package, a test module, a script)."""
    module = module_of(obj)
    return module != "metarunlog" and not module.startswith("metarunlog.")


def describe(e: BaseException) -> str:
    """`ValueError: its first line` (the type alone when the message is empty)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def line_in(e: BaseException, path: Path) -> int | str:
    """The deepest traceback line inside `path` ("?" when none is)."""
    line: int | str = "?"
    for frame in traceback.extract_tb(e.__traceback__):
        if Path(frame.filename).resolve() == path.resolve() and frame.lineno is not None:
            line = frame.lineno
    return line


def where(e: BaseException, obj: Any) -> str:
    """`FILE line N`: the deepest line of the plugin's own module the exception went through,
    else the deepest frame outside mrl's package (where the plugin called into a library)."""
    module = sys.modules.get(module_of(obj))
    filename = getattr(module, "__file__", None)
    if filename:
        line = line_in(e, Path(filename))
        if line != "?":
            return f"{filename} line {line}"
    outside = [
        f for f in traceback.extract_tb(e.__traceback__) if not Path(f.filename).resolve().is_relative_to(_PACKAGE)
    ]
    if outside:
        return f"{outside[-1].filename} line {outside[-1].lineno}"
    return filename or module_of(obj) or "?"


def failure(what: str, e: BaseException, obj: Any) -> PluginError:
    """`WHAT raised TYPE: MESSAGE (FILE line N)`, to raise `from e`."""
    return PluginError(f"{what} raised {describe(e)} ({where(e, obj)})")


def _roots(obj: Any) -> list[Path]:
    """Where the plugin's code lives: its top-level package's folders, or its module's file
    (found again when it failed to import, and so is not in sys.modules)."""
    import importlib.util

    name = module_of(obj).partition(".")[0]
    top = sys.modules.get(name)
    if top is not None:
        places = list(getattr(top, "__path__", None) or ()) or [getattr(top, "__file__", None)]
    else:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        places = list(spec.submodule_search_locations or ()) or [spec.origin] if spec is not None else []
    return [Path(p).resolve() for p in places if p]


def _its_fault(e: BaseException, obj: Any) -> bool:
    """The exception went through the plugin's code, or was raised calling it (a wrong
    signature: no frame below the call). One that only went through mrl's code below the
    call is mrl's bug, whatever the plugin."""
    frames = list(traceback.extract_tb(e.__traceback__))
    while frames and Path(frames[0].filename).resolve() == Path(__file__).resolve():
        frames = frames[1:]  # blamed's own frame (the exception is thrown into it)
    below = frames[1:]  # what the `with blamed(...)` body called
    if not below:
        return True
    roots = _roots(obj)
    for frame in below:
        path = Path(frame.filename).resolve()
        if any(path == root or path.is_relative_to(root) for root in roots):
            return True
    return False


@contextlib.contextmanager
def blamed(what: str, obj: Any) -> Iterator[None]:
    """Run plugin code: an exception other than MrlError (and ^C, exit) becomes a
    PluginError when `obj` is foreign and the exception is its fault (`_its_fault`);
    mrl's own code raises as it is."""
    try:
        yield
    except MrlError:
        raise
    except SystemExit as e:  # sys.exit() in a reader ended mrl silently, even with exit 0
        if not is_foreign(obj) or not _its_fault(e, obj):
            raise
        raise PluginError(f"{what} exited with {e.code} ({where(e, obj)})") from e
    except Exception as e:
        if not is_foreign(obj) or not _its_fault(e, obj):
            raise
        raise failure(what, e, obj) from e


def prints_to_stderr() -> contextlib.AbstractContextManager[Any]:
    """Where code from outside mrl prints (a plugin, mrl_analyze.py's functions, hooks):
    stderr, so that mrl's own stdout (`mrl table --json`/`--csv`, `mrl diff --json`, the
    report path of `mrl analyze`) stays what a script parses."""
    return contextlib.redirect_stdout(sys.stderr)


# -- modules `.mrl.cfg` `plugins` names, imported when something needs them -----------------

_deferring = False
_deferred: list[Callable[[], None]] = []
_failed: list[MrlError] = []  # a deferred import that failed: said again to each later asker


@contextlib.contextmanager
def deferred_imports() -> Iterator[None]:
    """While a command that needs no plugin runs (`mrl --help`, `ls`, `status`...): the modules
    `plugins` names are imported only once a registry is asked for a name it lacks
    (`load_deferred`), so a plugin that imports torch at the top, or fails to import, costs
    `mrl ls` nothing."""
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
        _deferred.clear()
        _failed.clear()


def defer(load: Callable[[], None]) -> bool:
    """Keep `load` (a config's plugin imports) for `load_deferred`; False when nothing defers it."""
    if _deferring:
        _deferred.append(load)
    return _deferring


def waiting() -> bool:
    """Whether some config's plugin imports wait for `load_deferred` (a registry may lack what
    they would register)."""
    return bool(_deferred)


def load_deferred() -> bool:
    """Import what `defer` kept (a registry lacks a name: a plugin may register it); True when
    there was something to import."""
    if _failed:
        raise _failed[0]
    if not _deferred:
        return False
    pending = list(_deferred)
    _deferred.clear()
    try:
        for load in pending:
            load()
    except MrlError as e:
        _failed.append(e)
        raise
    return True
