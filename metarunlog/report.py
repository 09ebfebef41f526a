"""Sections -> one self-contained HTML file, through the Jinja templates in `metarunlog/templates/`.

`build_report` gathers what `mrl analyze` shows (title, git facts, notes, status, the
params + metrics table, one bokeh plot per metric of metrics.jsonl, the user's analysis
functions, a section per sub-experiment) into a `Report`; `render` turns it into HTML.

Safety: every string that comes from params, descriptions, logs or metric names goes
through Jinja autoescaping (or markupsafe.escape); only the user's own notes (markdown)
and what their analysis functions return as `text`/`html` reach the page as markup.
Bokeh's JS and CSS are inlined once, so the file opens offline from `file://`.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from metarunlog import __version__, jsonio, results
from metarunlog import render as jinja  # this module's `render` is the page
from metarunlog.experiment import DIFF, Experiment
from metarunlog.results import SubResult, Table

PAGE_TEMPLATE = "report.html"
RTYPES = ("text", "table", "plot", "bokeh", "html", "mp4", "plotlinkbokeh")
# Curves: at most this many points per plot in all (decimated per line), so that 1,000
# sub-experiments x a long metrics.jsonl still make a report of a few MB.
POINTS_PER_PLOT = 60_000
MIN_POINTS_PER_LINE, MAX_POINTS_PER_LINE = 40, 2_000
LEGEND_MAX_LINES = 20  # more lines than this: one multi_line glyph with hover, no legend
INLINE_IMAGE_MAX = 5 * 1024 * 1024  # larger images are linked, not embedded
DIFF_MAX_CHARS = 200_000
STATE_ORDER = ("done", "running", "queued", "pending", "failed", "stale", "cancelled", "timeout", "oom", "node_fail")
_LOWER_BETTER = re.compile(r"loss|err|mse|mae|rmse|nll|perplex|ppl|wer|cer|latency|regret|dist|cost|time")
_HIGHER_BETTER = re.compile(r"acc|f1|auc|score|reward|bleu|rouge|precision|recall|map|iou|dice|r2|return|top\d|ndcg")


# -- what a section holds -----------------------------------------------------------------------


@dataclass
class Piece:
    """One output of a user function: markup, a bokeh model (by key), or an error box."""

    kind: str  # "html" | "bokeh" | "error"
    header: str | None = None
    html: Markup = Markup("")
    key: str = ""
    error: str = ""
    detail: str = ""


@dataclass
class FunctionOutput:
    name: str
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class SubSection:
    res: SubResult
    log_tail: list[str]
    functions: list[FunctionOutput] = field(default_factory=list)


@dataclass
class Plot:
    metric: str
    key: str
    lines: int


@dataclass
class Report:
    """Everything the page template needs (see templates/report.html)."""

    exp: Experiment
    project_name: str
    table: Table
    subs: list[SubSection]
    plots: list[Plot] = field(default_factory=list)
    overview: list[FunctionOutput] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)  # key -> bokeh model
    goals: dict[str, str] = field(default_factory=dict)  # metric column -> "min" | "max"


# -- user analysis functions ---------------------------------------------------------------------


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


def user_goals(basedir: Path) -> dict[str, str]:
    """`metric_goals = {"bleu": "max", ...}` from mrl_analyze.py, when it defines one."""
    from metarunlog import hooks

    if not (basedir / hooks.ANALYZE_FILE).is_file():
        return {}
    goals = getattr(hooks.load_user_module(basedir, hooks.ANALYZE_FILE), "metric_goals", None)
    if not isinstance(goals, dict):
        return {}
    return {str(k): str(v) for k, v in goals.items() if v in ("min", "max")}


def call_function(rep: Report, uf: UserFunction, args: tuple[Any, ...], outdir: Path, where: str) -> FunctionOutput:
    """Call one user function; its outputs (or an error box) as a FunctionOutput."""
    out = FunctionOutput(uf.name)
    try:
        retval = uf.fn(*args, *uf.xtrargs)
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
    from bokeh.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"expected a bokeh model (figure, layout...), got {type(model).__name__}")
    key = f"user{len(rep.models)}"
    rep.models[key] = model
    return key


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
    return Markup(df.to_html(escape=True, border=0, classes="mrl-table user-table", na_rep=""))


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
    path = Path(str(name))
    return os.path.relpath(path, outdir) if path.is_absolute() else str(name)


# -- metric curves --------------------------------------------------------------------------------


def decimate(xs: Any, ys: Any, n_max: int) -> tuple[Any, Any]:
    """At most about `n_max` points of a curve, keeping each bucket's min and max (spikes
    stay) and both ends."""
    import numpy as np

    x, y = decimate_rows(np.asarray(xs, dtype=float)[None, :], np.asarray(ys, dtype=float)[None, :], n_max)
    return x[0], y[0]


def decimate_rows(xs: Any, ys: Any, n_max: int) -> tuple[Any, Any]:
    """`decimate` for m curves of the same length at once: (m, n) arrays -> (m, <= n_max + 2)."""
    import numpy as np

    m, n = ys.shape
    if n <= n_max:
        return xs, ys
    buckets = max(1, (n_max - 2) // 2)
    size = -(-n // buckets)
    y = np.concatenate([ys, np.full((m, buckets * size - n), np.nan)], axis=1).reshape(m, buckets, size)
    nan = np.isnan(y)
    lo = np.where(nan, np.inf, y).argmin(axis=2)
    hi = np.where(nan, -np.inf, y).argmax(axis=2)
    base = np.arange(buckets) * size
    idx = np.concatenate([np.zeros((m, 1), int), base + lo, base + hi, np.full((m, 1), n - 1)], axis=1)
    idx = np.sort(np.minimum(idx, n - 1), axis=1)
    return np.take_along_axis(xs, idx, axis=1), np.take_along_axis(ys, idx, axis=1)


def line_label(res: SubResult, varying: list[str]) -> str:
    params = ", ".join(f"{k}={results.format_value(res.params.get(k))}" for k in varying)
    return f"{res.name}: {params}" if params else res.name


Curve = tuple[SubResult, str, list[float], list[float]]  # (sub-experiment, x key, xs, ys)


def add_plots(rep: Report, subs: list[SubResult]) -> None:
    """One bokeh figure per metric of metrics.jsonl, a line per sub-experiment."""
    per_metric: dict[str, list[Curve]] = {}
    for res in subs:
        for metric, (xkey, xs, ys) in (res.curves or {}).items():
            per_metric.setdefault(metric, []).append((res, xkey, xs, ys))
    if not per_metric:
        return
    varying = results.varying_params(subs)
    for i, (metric, lines) in enumerate(per_metric.items()):
        key = f"plot{i}"
        rep.models[key] = _figure(metric, lines, varying)
        rep.plots.append(Plot(metric, key, len(lines)))


def _figure(metric: str, lines: list[Curve], varying: list[str]) -> Any:
    from bokeh.plotting import figure

    fig = figure(
        title=metric,
        x_axis_label=" / ".join(sorted({x for _, x, _, _ in lines})),
        y_axis_label=metric,
        height=360,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    per_line = min(MAX_POINTS_PER_LINE, max(MIN_POINTS_PER_LINE, POINTS_PER_PLOT // len(lines)))
    if len(lines) <= LEGEND_MAX_LINES:
        _one_renderer_per_line(fig, metric, lines, varying, per_line)
    else:
        _grouped_lines(fig, metric, lines, varying, per_line)
    fig.legend.click_policy = "hide"
    fig.legend.label_text_font_size = "8pt"
    fig.add_layout(fig.legend[0], "right")
    return fig


def _one_renderer_per_line(fig: Any, metric: str, lines: list[Curve], varying: list[str], per_line: int) -> None:
    import numpy as np
    from bokeh.models import ColumnDataSource, HoverTool

    for (res, _, xs, ys), color in zip(lines, _palette(len(lines)), strict=True):
        x, y = decimate(np.asarray(xs), np.asarray(ys), per_line)
        label = line_label(res, varying)
        src = ColumnDataSource({"x": x, "y": y, "label": [label] * len(x)})
        fig.line("x", "y", source=src, color=color, line_width=2, legend_label=label)
    fig.add_tools(HoverTool(tooltips=[("run", "@label"), ("x", "$x{0.[000]}"), (metric, "$y{0.[0000]}")]))


def _grouped_lines(fig: Any, metric: str, lines: list[Curve], varying: list[str], per_line: int) -> None:
    """Many sub-experiments: one line renderer per colour group (NaN between runs).

    Serialising one array pair per group instead of per run keeps `mrl analyze` on
    1,000 runs fast and the file small; the hover names the run under the mouse.
    """
    from bokeh.models import ColumnDataSource, CustomJSHover, HoverTool

    labels = [line_label(res, varying) for res, _, _, _ in lines]
    groups = color_groups([res for res, _, _, _ in lines], varying)
    for (name, members), color in zip(groups, _palette(len(groups)), strict=True):
        x, y, run = _concatenated(lines, members, per_line)
        src = ColumnDataSource({"x": x, "y": y, "run": run})
        fig.line(
            "x",
            "y",
            source=src,
            color=color,
            line_width=1.2,
            line_alpha=0.6,
            legend_label=name,
            hover_line_width=2.5,
            hover_line_alpha=1.0,
        )
    run_name = CustomJSHover(args={"labels": labels}, code="return labels[value]")
    fig.add_tools(
        HoverTool(
            tooltips=[("run", "@run{custom}"), ("x", "$x{0.[000]}"), (metric, "$y{0.[0000]}")],
            formatters={"@run": run_name},
        )
    )


def _concatenated(lines: list[Curve], members: list[int], per_line: int) -> tuple[Any, Any, Any]:
    """The decimated curves of `members` end to end, NaN between them; `run`: whose point."""
    import numpy as np

    by_length: dict[int, list[int]] = {}
    for i in members:
        by_length.setdefault(len(lines[i][3]), []).append(i)
    xs, ys, runs = [], [], []
    for same in by_length.values():  # curves of one length are decimated as one 2D array
        x2, y2 = decimate_rows(np.array([lines[i][2] for i in same]), np.array([lines[i][3] for i in same]), per_line)
        gap = np.full((len(same), 1), np.nan)
        xs.append(np.concatenate([x2, gap], axis=1).ravel())
        ys.append(np.concatenate([y2, gap], axis=1).ravel())
        runs.append(np.repeat(np.array(same, dtype=np.int32), x2.shape[1] + 1))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(runs)


MAX_GROUPS = 10


def color_groups(subs: list[SubResult], varying: list[str]) -> list[tuple[str, list[int]]]:
    """Split runs into at most MAX_GROUPS legend entries: by the value of the varying param
    with the fewest distinct values (2 or more), else by ranges of ids."""
    best = None
    for k in varying:
        values = {results.format_value(s.params.get(k)) for s in subs}
        if 2 <= len(values) <= MAX_GROUPS and (best is None or len(values) < best[1]):
            best = (k, len(values))
    if best is not None:
        key = best[0]
        by_value: dict[str, list[int]] = {}
        for i, s in enumerate(subs):
            by_value.setdefault(f"{key}={results.format_value(s.params.get(key))}", []).append(i)
        return list(by_value.items())
    size = -(-len(subs) // MAX_GROUPS)
    chunks = [list(range(i, min(i + size, len(subs)))) for i in range(0, len(subs), size)]
    return [(f"{subs[c[0]].name}-{subs[c[-1]].name}", c) for c in chunks]


def _palette(n: int) -> list[str]:
    from bokeh.palettes import Category10_10, turbo

    if n <= 10:
        return list(Category10_10[:n])
    if n <= 256:
        return list(turbo(n))
    colors = turbo(256)
    return [colors[i * 255 // (n - 1)] for i in range(n)]


# -- the table ----------------------------------------------------------------------------------


def metric_goal(name: str, overrides: dict[str, str]) -> str | None:
    """'min' or 'max' when the name says which is better (loss: min, acc: max), else None."""
    if name in overrides:
        return overrides[name]
    base = name.removeprefix(results.METRIC_PREFIX).lower()
    if base in results.X_KEYS or base in results.NOT_CURVES:
        return None
    if _LOWER_BETTER.search(base):
        return "min"
    if _HIGHER_BETTER.search(base):
        return "max"
    return None


def best_values(tab: Table, goals: dict[str, str]) -> dict[str, float]:
    """The best value of each metric column that has a goal and at least two numbers."""
    best = {}
    for col in tab.metrics:
        goal = goals.get(col)
        values = [r[col] for r in tab.rows if results.is_number(r.get(col)) and r[col] == r[col]]
        if goal and len(set(values)) >= 2:  # all equal: nothing stands out
            best[col] = min(values) if goal == "min" else max(values)
    return best


def column_classes(tab: Table, varying: list[str]) -> dict[str, str]:
    """CSS classes of each column's header: param (const when it does not vary), metric."""
    out = {c: "" for c in tab.columns}
    for p in tab.params:
        out[p] = "param" if p in varying else "param const"
    for m in tab.metrics:
        out[m] = "metric"
    return out


def table_cells(tab: Table, varying: list[str], best: dict[str, float]) -> list[list[tuple[str, str, Any]]]:
    """Each row as (text, css class, number to sort by or None) per column; the first is the id."""
    const = set(tab.params) - set(varying)
    rows = []
    for r in tab.rows:
        cells = []
        for c in tab.columns:
            v = r.get(c)
            cls = "state" if c == "state" else "const" if c in const else "best" if c in best and v == best[c] else ""
            num = v if results.is_number(v) and v == v else None
            cells.append((results.format_value(v, c), cls, num))
        rows.append(cells)
    return rows


# -- building the report --------------------------------------------------------------------------


def build_report(
    exp: Experiment,
    basedir: Path,
    outdir: Path,
    overview_fns: list[UserFunction] | None = None,
    subexp_fns: list[UserFunction] | None = None,
    log_lines: int = 20,
) -> Report:
    """Read the experiment and call the user's functions: a Report ready for `render`."""
    subs, errors = read_results(exp, basedir)
    tab = results.make_table(subs, all_params=True, errors=errors)
    rep = Report(exp, basedir.name, tab, [], errors=[f"table: {e}" for e in errors])
    goals_override = user_goals(basedir)
    rep.goals = {m: g for m in tab.metrics if (g := metric_goal(m, goals_override))}
    add_plots(rep, subs)
    for res in subs:
        res.curves = None  # they are in the plots now; free the memory
    _call_user_functions(rep, subs, outdir, overview_fns or [], subexp_fns or [], log_lines)
    return rep


# Below this many sub-experiments the data is read in-process: forking gains nothing.
FORK_MIN_SUBS = 100
# The share of the sub-experiments the forked child reads; the parent reads the rest once
# it has imported bokeh (which takes about as long as reading 800 runs).
CHILD_SHARE = 0.8


def read_results(exp: Experiment, basedir: Path) -> tuple[list[SubResult], list[str]]:
    """What `results.collect` reads, with each run's metric curves extracted (`res.curves`;
    `res.lines` dropped), plus the user's `metrics()`.

    On a large experiment most files are read in a forked child while this process
    imports bokeh: both are CPU-bound and take about as long (0.3-0.4 s for 1,000 runs with
    200-line metrics.jsonl), so on two or more cores they overlap. The child sends back
    compact arrays; anything going wrong there falls back to reading in-process. The
    user's `metrics()` always runs here, in the parent.
    """
    subs = exp.sub_experiments()
    read = None
    if len(subs) >= FORK_MIN_SUBS:
        read = _read_in_child(subs, int(len(subs) * CHILD_SHARE))
    if read is None:
        read = _read_curves(subs)
    results_, errors = read
    return results_, errors + results.add_all_user_metrics(results_, basedir)


def _read_curves(subs: list[Any]) -> tuple[list[SubResult], list[str]]:
    from array import array

    out, errors = [], []
    for sub in subs:
        res, errs = results.read_sub(sub, keep_lines=True)
        res.curves = {
            metric: (xkey, array("d", xs), array("d", ys))
            for metric, (xkey, xs, ys) in results.curves(res.lines or []).items()
        }
        res.lines = None
        out.append(res)
        errors += errs
    return out, errors


def _read_in_child(subs: list[Any], k: int) -> tuple[list[SubResult], list[str]] | None:
    """Read subs[:k] in a forked child and subs[k:] here after importing bokeh."""
    import pickle
    import sys
    import threading

    if not hasattr(os, "fork") or threading.active_count() > 1 or "bokeh.plotting" in sys.modules:
        return None  # forking a threaded process is unsafe; nothing to overlap with
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send, and leave without running any of the parent's cleanup
        code = 1
        try:
            os.close(rfd)
            payload = pickle.dumps(_read_curves(subs[:k]), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(wfd, "wb") as f:
                f.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    import bokeh.plotting  # noqa: F401  (the point: imported while the child reads)

    mine, my_errors = _read_curves(subs[k:])
    with os.fdopen(rfd, "rb") as f:
        payload = f.read()
    _, status = os.waitpid(pid, 0)
    try:
        theirs, their_errors = pickle.loads(payload) if status == 0 else _read_curves(subs[:k])
    except Exception:
        theirs, their_errors = _read_curves(subs[:k])
    return theirs + mine, their_errors + my_errors


def _call_user_functions(
    rep: Report,
    subs: list[SubResult],
    outdir: Path,
    overview: list[UserFunction],
    per_sub: list[UserFunction],
    log_lines: int,
) -> None:
    from metarunlog.execute import log_tail

    single = rep.exp.is_expanded and rep.exp.is_single
    dparams = results.params_frame(subs) if (overview or per_sub) and subs else None
    ids = [s.name for s in subs]
    if subs and not single:
        for uf in overview:
            rep.overview.append(
                call_function(rep, uf, (str(rep.exp.dir), str(outdir), ids, dparams), outdir, f"overview {uf.name}")
            )
    by_id = {s.id: s for s in rep.exp.sub_experiments()} if subs else {}
    for res in subs:
        section = SubSection(res, log_tail(by_id[res.id], log_lines) if res.id in by_id else [])
        for uf in per_sub:
            # The original called a one-job experiment's functions with Dparams None, id 'def'.
            args = (
                (str(res.dir), str(outdir), None, "def") if single else (str(res.dir), str(outdir), dparams, res.name)
            )
            section.functions.append(call_function(rep, uf, args, outdir, f"sub-experiment {res.name} {uf.name}"))
        rep.subs.append(section)


# -- rendering -----------------------------------------------------------------------------------


def environment(basedir: Path | None) -> Any:
    """The report's Jinja environment (render.report_environment) with the `fmt` filter."""
    return jinja.report_environment(basedir, {"fmt": results.format_value})


def render(rep: Report, basedir: Path | None = None) -> str:
    """The report as one HTML page (bokeh's JS/CSS inlined once when there are plots)."""
    bokeh_head, bokeh_script, divs, failed = _embed(rep)
    context = _context(rep, bokeh_head, bokeh_script, divs, failed)
    return jinja.render_page(environment(basedir), PAGE_TEMPLATE, context)


def _embed(rep: Report) -> tuple[Markup, Markup, dict[str, Markup], dict[str, str]]:
    """Bokeh: (inlined JS+CSS, the one script, div per model key, key -> why it failed)."""
    if not rep.models:
        return Markup(""), Markup(""), {}, {}
    from bokeh.embed import components

    models, failed = dict(rep.models), {}
    try:
        script, divs = components(models)
    except Exception:  # a user's model that bokeh cannot serialise: find it, embed the rest
        for key, model in list(models.items()):
            try:
                components(model)
            except Exception as e:
                failed[key] = f"bokeh cannot embed this model: {type(e).__name__}: {e}"
                del models[key]
                rep.errors.append(f"bokeh model {key}: {failed[key]}")
        script, divs = components(models) if models else ("", {})
    return (
        Markup(_bokeh_resources(list(models.values()))),
        Markup(script),
        {k: Markup(v) for k, v in divs.items()},
        failed,
    )


def _bokeh_resources(models: list[Any]) -> str:
    from bokeh.resources import INLINE

    try:  # only the bokeh bundles these models need (no widgets/tables/mathjax for plain plots)
        from bokeh.embed.bundle import bundle_for_objs_and_resources

        return "\n".join(bundle_for_objs_and_resources(models, INLINE))
    except Exception:
        return str(INLINE.render())


def _context(
    rep: Report, head: Markup, script: Markup, divs: dict[str, Markup], failed: dict[str, str]
) -> dict[str, Any]:
    exp, record = rep.exp, rep.exp.record
    varying = results.varying_params([s.res for s in rep.subs])
    best = best_values(rep.table, rep.goals)
    states = Counter(s.res.state.value for s in rep.subs)
    counts = [(s, states[s]) for s in STATE_ORDER if states[s]] + [
        (s, n) for s, n in states.items() if s not in STATE_ORDER
    ]
    return {
        "project": rep.project_name,
        "exp": exp,
        "exp_name": exp.name,
        "record": record,
        "description": str(record.get("description") or ""),
        "date": str(record.get("timestamp") or "")[:10],
        "done": bool(rep.subs) and all(s.res.state.value == "done" for s in rep.subs),
        "git": _git_facts(exp),
        "notes": _notes(exp),
        "counts": counts,
        "n_subs": len(rep.subs),
        "expanded": exp.is_expanded,
        "table": rep.table,
        "varying": varying,
        "best": best,
        "column_class": column_classes(rep.table, varying),
        "table_cells": table_cells(rep.table, varying, best),
        "goals": rep.goals,
        "lower_better": [m for m, g in rep.goals.items() if g == "min"],
        "plots": rep.plots,
        "overview": rep.overview,
        "subs": rep.subs,
        "errors": rep.errors,
        "bokeh_head": head,
        "bokeh_script": script,
        "bokeh_divs": divs,
        "bokeh_failed": failed,
        "generated": jsonio.now(),
        "version": __version__,
    }


def _git_facts(exp: Experiment) -> dict[str, Any]:
    record = exp.record
    diff = ""
    if (exp.dir / DIFF).is_file():
        diff = (exp.dir / DIFF).read_text(encoding="utf-8", errors="replace")
        if len(diff) > DIFF_MAX_CHARS:
            diff = diff[:DIFF_MAX_CHARS] + f"\n... (cut: the whole diff is {exp.dir / DIFF})\n"
    return {
        "hash": str(record.get("gitHash") or ""),
        "description": str(record.get("gitDescription") or ""),
        "describe": str(record.get("gitDescribe") or ""),
        "branch": str(record.get("branch") or ""),
        "dirty": bool(record.get("dirty")),
        "diff": diff,
        "user": str(record.get("user") or ""),
        "host": str(record.get("host") or ""),
        "copied_from": str(record.get("copiedFrom") or ""),
    }


def _notes(exp: Experiment) -> Markup:
    """The notes file as HTML: the user's own markdown, rendered (not escaped)."""
    try:
        text = exp.note_path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return Markup("")
    return markdown_html(text)
