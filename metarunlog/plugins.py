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
from collections.abc import Iterator
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


@contextlib.contextmanager
def blamed(what: str, obj: Any) -> Iterator[None]:
    """Run plugin code: an exception other than MrlError (and ^C, exit) becomes a
    PluginError when `obj` is foreign; mrl's own code raises as it is."""
    try:
        yield
    except MrlError:
        raise
    except Exception as e:
        if not is_foreign(obj):
            raise
        raise failure(what, e, obj) from e
