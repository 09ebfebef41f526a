"""The user's analysis functions (mrl_analyze.py): resolving, calling, converting what they return.

A function returns a list of `(data, rtype, header)` items; each becomes a Piece (markup,
a bokeh model by key, or an error box). Whatever the user's code does wrong becomes an
error box in its section and a line in `Report.errors`, never a failed report.
"""

from __future__ import annotations

import base64
import gc
import mimetypes
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from metarunlog import hooks
from metarunlog.fmt import relative_url
from metarunlog.report.model import FunctionOutput, Piece, Report

RTYPES = ("text", "table", "plot", "bokeh", "html", "mp4", "plotlinkbokeh")
INLINE_IMAGE_MAX = 5 * 1024 * 1024  # larger images are linked, not embedded


@dataclass
class UserFunction:
    name: str
    fn: Callable[..., Any]
    xtrargs: list[Any]


def user_functions(basedir: Path, cfg: Any) -> tuple[list[UserFunction], list[UserFunction]]:
    """(overview, per-sub-experiment) functions registered in .mrl.cfg, all resolved now.

    A registered name that mrl_analyze.py does not define is a HookError, raised before
    any work is done.
    """
    from metarunlog import hooks

    def resolve(key: str) -> list[UserFunction]:
        registered = cfg[key] or {}
        out = []
        for name, xtrargs in registered.items():
            fn = hooks.get_function(basedir, hooks.ANALYZE_FILE, name)
            out.append(UserFunction(name, fn, _xtrargs(xtrargs)))
        return out

    return resolve("analysis_overview"), resolve("analysis_subexp")


def _xtrargs(value: Any) -> list[Any]:
    # {"fn": [args...]}; the original also allowed () or a bare rtype string: no args.
    return list(value) if isinstance(value, (list, tuple)) else []


@contextmanager
def collector_on() -> Iterator[None]:
    """The user's code runs with the garbage collector on, as it would without mrl: a report
    pauses it for its own objects (`build.gc_paused`), but a function that plots with
    matplotlib per sub-experiment leaves ~2 MB of cyclic garbage a figure, which only the
    collector frees (paused, a 300-run report peaked at 780 MB instead of 210 MB)."""
    if gc.isenabled():
        yield
        return
    gc.enable()
    try:
        yield
    finally:
        gc.disable()


def call_function(rep: Report, uf: UserFunction, args: tuple[Any, ...], outdir: Path, where: str) -> FunctionOutput:
    """Call one user function; its outputs (or an error box) as a FunctionOutput."""
    out = FunctionOutput(uf.name)
    try:
        with collector_on(), hooks.prints_to_stderr():
            retval = uf.fn(*args, *uf.xtrargs)
    except SystemExit as e:  # a script-style sys.exit(): 0 is "nothing to show", else a failure
        if e.code not in (0, None):
            _fail(rep, out, f"{uf.name}() exited with {e.code}", _user_traceback(e), where)
        return out
    except Exception as e:  # the user's code: any failure becomes an error box
        _fail(rep, out, f"{uf.name}() raised {type(e).__name__}: {e}", _user_traceback(e), where)
        return out
    try:
        items = _items(retval)
    except ValueError as e:
        _fail(rep, out, f"{uf.name}() returned {e}", "", where)
        return out
    for data, rtype, header in items:
        out.pieces.append(convert(rep, data, rtype, header, outdir, uf.name, where))
    return out


def _items(retval: Any) -> list[tuple[Any, Any, Any]]:
    if retval is None:
        return []
    if not isinstance(retval, (list, tuple)):
        raise ValueError(f"{type(retval).__name__}: it must return a list of (data, rtype, header) tuples")
    items = []
    for i, item in enumerate(retval):
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise ValueError(f"item {i} that is not a (data, rtype, header) tuple: {_short(repr(item))}")
        items.append((item[0], item[1], item[2] if len(item) == 3 else None))
    return items


def _fail(rep: Report, out: FunctionOutput, message: str, detail: str, where: str) -> None:
    out.pieces.append(Piece("error", error=message, detail=detail))
    rep.errors.append(f"{where}: {message}")


def _user_traceback(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)[1:]  # drop call_function's own frame
    return "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(e), e))


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# -- rtypes -> pieces ------------------------------------------------------------------------


def convert(rep: Report, data: Any, rtype: Any, header: Any, outdir: Path, fname: str, where: str) -> Piece:
    """One `(data, rtype, header)` item as a Piece; a bad one becomes an error box."""
    head = None if header in (None, "") else str(header)
    if rtype not in RTYPES:
        message = f"{fname}() returned unknown rtype {rtype!r}; use one of {', '.join(RTYPES)}"
        rep.errors.append(f"{where}: {message}")
        return Piece("error", head, error=message)
    try:
        if rtype == "bokeh":
            return Piece("bokeh", head, key=_add_model(rep, data))
        return Piece("html", head, html=_RENDER[rtype](data, outdir))
    except (ValueError, TypeError, OSError) as e:
        message = f"{fname}() returned a {rtype} that cannot be shown: {e}"
        rep.errors.append(f"{where}: {message}")
        return Piece("error", head, error=message)


def _add_model(rep: Report, model: Any) -> str:
    return rep.add_model(model, "user")  # a TypeError for what is no bokeh model


def markdown_html(text: str) -> Markup:
    """Markdown (with tables and fenced code) as HTML.

    The extensions are passed as instances: by name, markdown looks them up among the
    installed entry points, a scan of every package's metadata (25 ms).
    """
    import markdown
    from markdown.extensions.fenced_code import FencedCodeExtension
    from markdown.extensions.tables import TableExtension

    return Markup(markdown.markdown(text, extensions=[TableExtension(), FencedCodeExtension()]))


def _text(data: Any, outdir: Path) -> Markup:
    return markdown_html(str(data))


def _table(data: Any, outdir: Path) -> Markup:
    import pandas as pd

    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    return Markup(_escaped(df).to_html(escape=False, border=0, classes="mrl-table user-table", na_rep=""))


def _escaped(df: Any) -> Any:
    """A copy with every text cell and label HTML-escaped, except the values that are
    markupsafe `Markup` (`metarunlog.html(...)`): the user made those HTML on purpose."""
    from markupsafe import escape
    from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype, is_timedelta64_dtype

    def cell(v: Any) -> Any:
        if hasattr(v, "__html__") or isinstance(v, (int, float, bool)) or v is None:
            return v  # Markup, or a number (nothing to escape; pandas formats it)
        return escape(str(v))

    def holds_no_text(dtype: Any) -> bool:  # a categorical or sparse column may hold text too
        return (
            is_numeric_dtype(dtype)
            or is_bool_dtype(dtype)
            or is_datetime64_any_dtype(dtype)
            or is_timedelta64_dtype(dtype)
        )

    out = df.copy()
    for col in range(out.shape[1]):
        if not holds_no_text(out.dtypes.iloc[col]):
            out.isetitem(col, out.iloc[:, col].astype(object).map(cell, na_action="ignore"))
    out = out.rename(columns=cell, index=cell)
    for axis in (out.index, out.columns):
        axis.names = [cell(n) if isinstance(n, str) else n for n in axis.names]
    return out


def _html(data: Any, outdir: Path) -> Markup:
    return Markup(str(data))


def _plot(data: Any, outdir: Path) -> Markup:
    return Markup('<img class="mrl-img" src="{}" alt="{}">').format(_image_src(data, outdir), str(data))


def _mp4(data: Any, outdir: Path) -> Markup:
    return Markup('<div><video preload="none" controls><source src="{}" type="video/mp4"></video></div>').format(
        _rel(data, outdir)
    )


def _plotlinkbokeh(data: Any, outdir: Path) -> Markup:
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError("expected a (png file, html file) pair")
    png, page = data
    return Markup('<a href="{}"><img class="mrl-img" src="{}" alt="{}"></a>').format(
        _rel(page, outdir), _image_src(png, outdir), str(png)
    )


_RENDER: dict[str, Callable[[Any, Path], Markup]] = {
    "text": _text,
    "table": _table,
    "html": _html,
    "plot": _plot,
    "mp4": _mp4,
    "plotlinkbokeh": _plotlinkbokeh,
}


def _image_src(name: Any, outdir: Path) -> str:
    """A data: URI for an image file in outdir (so the page stands alone); a link when large."""
    path = outdir / str(name)
    if not path.is_file():
        raise ValueError(f"no image file {path}")
    if path.stat().st_size > INLINE_IMAGE_MAX:
        return _rel(name, outdir)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _rel(name: Any, outdir: Path) -> str:
    return relative_url(str(name), outdir)
