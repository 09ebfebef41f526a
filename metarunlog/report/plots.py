"""Metric curves as bokeh figures: one per metric, a line per combination of the varying
params (with repeats: their mean, a ± std band, and the individual runs on demand).

Colours come from a categorical colour-blind-safe palette keyed by one factor (the most
informative varying param, `report.color_by`, or the experiment in a comparison); the
other combinations of a colour differ by dash. Legend entries name the params. Long curves
are decimated (each bucket keeps its min and max) to about POINTS_PER_PLOT points a plot.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metarunlog import results
from metarunlog.report import bk, decide, palette
from metarunlog.report.model import Plot, Report
from metarunlog.results import SubResult

# Curves: at most this many points per plot in all (decimated per line), so that 1,000
# sub-experiments x a long metrics.jsonl still make a report of a few MB.
POINTS_PER_PLOT = 60_000
MIN_POINTS_PER_LINE, MAX_POINTS_PER_LINE = 40, 2_000
LEGEND_MAX_LINES = 20  # more combinations than this: one renderer per colour, hover names the line
MAX_GROUPS = decide.MAX_COLORS
INDIVIDUAL = "individual runs"  # the legend entry that shows them (hidden at first)
# A metric logged once per run (add_hparams, a final test score) has no line to draw: its
# points are markers, shaped as the dashes would have been (palette.DASHES, in order).
MARKERS = ("circle", "square", "triangle", "diamond", "inverted_triangle")


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
    params = decide.label(res.params, varying)
    return f"{res.name}: {params}" if params else res.name


Curve = tuple[SubResult, str, list[float], list[float]]  # (sub-experiment, x key, xs, ys)


@dataclass
class Combo:
    """The runs of one combination of the factors, and how its line looks."""

    label: str  # legend and hover: "lr=0.1, wd=1" (or the run's own label without repeats)
    members: list[int]  # indices into the runs given to `layout`
    color: str
    dash: str
    group: str  # its colour's legend entry when lines are grouped by colour ("lr=0.1")
    group_dash: str = "solid"  # its group's line when grouped: keys past the palette's end are dashed


@dataclass
class Layout:
    combos: list[Combo]
    repeats: bool  # some combination has several runs: means, bands, individual runs on demand
    run_labels: list[str]  # per run: "003: lr=0.1, seed=2"
    color_key: str | None  # what the colours stand for
    # Line glyphs by style, shared by the renderers of every figure drawn with this layout
    # (a glyph holds no data: one per colour and style, not one per figure)
    glyphs: dict[tuple[str, str, float, float, bool], Any] = field(default_factory=dict)


def layout(
    subs: list[SubResult],
    factors: list[str],
    varying: list[str],
    color_key: str | None,
    key_of: Callable[[SubResult], str] | None = None,
    prefix_of: Callable[[SubResult], str] | None = None,
) -> Layout:
    """Group runs into combinations of `factors`; colour them by `key_of(run)` (default: the
    value of the `color_key` param) and dash the combinations that share a colour.
    `prefix_of` (a comparison: the experiment) also splits combinations and names them."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(subs):
        prefix = (prefix_of(s),) if prefix_of else ()
        groups.setdefault(prefix + decide.combination(s, factors), []).append(i)
    repeats = any(len(g) > 1 for g in groups.values())
    run_labels = [line_label(s, varying) for s in subs]
    if prefix_of is not None:
        run_labels = [f"{prefix_of(s)}/{label}" for s, label in zip(subs, run_labels, strict=True)]
    if key_of is None and color_key is not None:
        key = color_key
        key_of = lambda s: f"{key}={decide.value_text(s.params.get(key))}"  # noqa: E731
    members = list(groups.values())
    if key_of is None:
        keys = _ranges(subs, members) if len(members) > LEGEND_MAX_LINES else [str(i) for i in range(len(members))]
    else:
        keys = [key_of(subs[m[0]]) for m in members]
    ordered = _ordered(keys, subs, members, color_key)
    colors = dict(zip(ordered, palette.categorical(len(ordered)), strict=True))
    # More keys than colours reuse a colour: count dashes per colour, not per key, so that
    # lr=1 and lr=11 (one colour) are never drawn alike; a group's line by its lap.
    laps = {k: i // palette.N_COLORS for i, k in enumerate(ordered)}
    seen: dict[str, int] = {}
    combos = []
    for key, m in zip(keys, members, strict=True):
        n = seen[colors[key]] = seen.get(colors[key], -1) + 1
        mean = repeats or len(m) > 1  # a line of means is named by its params, a run by its own label
        label = (decide.label(subs[m[0]].params, factors) or "all runs") if mean else run_labels[m[0]]
        if mean and prefix_of is not None:
            label = f"{prefix_of(subs[m[0]])}: {label}"
        combos.append(Combo(label, m, colors[key], palette.dash(n), key, palette.dash(laps[key])))
    return Layout(combos, repeats, run_labels, color_key)


def _ordered(keys: list[str], subs: list[SubResult], members: list[list[int]], param: str | None) -> list[str]:
    """The distinct colour keys, numbers ascending when they are a numeric param's values."""
    distinct = list(dict.fromkeys(keys))
    if param is not None:
        value = {k: subs[m[0]].params.get(param) for k, m in zip(keys, members, strict=True)}
        if all(results.is_number(value[k]) for k in distinct):
            return sorted(distinct, key=lambda k: value[k])  # type: ignore[arg-type,return-value]
    return distinct


def _ranges(subs: list[SubResult], members: list[list[int]]) -> list[str]:
    """Without a param to colour by: MAX_GROUPS colours over ranges of combinations."""
    size = -(-len(members) // MAX_GROUPS)
    out = []
    for i in range(len(members)):
        lo, hi = (i // size) * size, min(len(members), (i // size + 1) * size) - 1
        out.append(f"{subs[members[lo][0]].name}-{subs[members[hi][-1]].name}")
    return out


def curve_layout(rep: Report, subs: list[SubResult]) -> Layout:
    """The layout of the report's curves: colours keyed by `report.color_by`, else by the
    factor that explains most of the primary metric's spread."""
    factors = rep.axes.factors
    values = decide.run_values(subs, rep.primary, best=True)
    wanted = rep.exp.cfg["report"].get("color_by")
    if wanted and wanted in rep.axes.repeats:  # it varies: "not a varying param" said otherwise
        rep.warnings.append(
            f"report.color_by is {wanted!r}, a repeat axis (the curves are averaged over it): colouring by another"
        )
    elif wanted and wanted not in factors:
        rep.warnings.append(f"report.color_by is {wanted!r}, which is not a varying param: colouring by another")
    return layout(subs, factors, rep.varying, decide.color_param(subs, factors, values, wanted))


def add_plots(rep: Report, subs: list[SubResult], lay: Layout | None = None) -> None:
    """One bokeh figure per metric of the curves."""
    per_metric: dict[str, dict[int, Curve]] = {}
    for i, res in enumerate(subs):
        for metric, (xkey, xs, ys) in (res.curves or {}).items():
            per_metric.setdefault(metric, {})[i] = (res, xkey, xs, ys)
    if not per_metric:
        return
    lay = lay or curve_layout(rep, subs)
    for i, (metric, lines) in enumerate(per_metric.items()):
        key = f"plot{i}"
        rep.models[key] = _figure(metric, lines, lay)
        rep.plots.append(Plot(metric, key, len(lines)))


@dataclass
class Drawn:
    """What one curves figure collects while its lines are drawn."""

    fig: Any
    metric: str
    legend: bk.Legend
    means: list[Any]  # lines of means: their source has `run` (a code), `lo` and `hi` columns
    runs: list[Any]  # lines of runs: their source has a `run` column (a code)
    labels: dict[str, str]  # code -> what the hover says: runs by index, means by -1, -2, ...
    points: bool = False  # every line has one point at most (a metric logged once): markers

    def code(self, label: str) -> int:
        """A new negative code for a line of means (run indices are >= 0)."""
        n = -1 - sum(k.startswith("-") for k in self.labels)
        self.labels[str(n)] = label
        return n


@bk.lean
def _figure(metric: str, lines: dict[int, Curve], lay: Layout) -> Any:
    from bokeh.models import CustomJSHover
    from bokeh.plotting import figure

    fig = figure(
        title=metric,
        x_axis_label=" / ".join(sorted({x for _, x, _, _ in lines.values()})),
        y_axis_label=metric,
        height=360,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    d = Drawn(fig, metric, bk.Legend(), [], [], {}, all(_lone(ys) for _, _, _, ys in lines.values()))
    combos = [c for c in ((c, [m for m in c.members if m in lines]) for c in lay.combos) if c[1]]
    n_lines = len(combos) if lay.repeats else len(lines)
    per_line = min(MAX_POINTS_PER_LINE, max(MIN_POINTS_PER_LINE, POINTS_PER_PLOT // max(1, n_lines)))
    per_run = min(MAX_POINTS_PER_LINE, max(MIN_POINTS_PER_LINE, POINTS_PER_PLOT // len(lines)))
    if len(combos) <= LEGEND_MAX_LINES:
        for combo, members in combos:
            _draw_combo(d, lines, lay, combo, members, per_line)
        behind = [(members, combo.color) for combo, members in combos]
    else:
        behind = _grouped(d, lines, lay, combos, per_line)
    if lay.repeats:  # after the means, so that their legend entry comes last
        by_color: dict[str, list[int]] = {}
        for members, color in behind:
            by_color.setdefault(color, []).extend(members)
        for color, members in by_color.items():
            _individual(d, lines, lay, members, color, per_run)
    if d.labels:  # one lookup of line names for the figure: a code per point, not a string
        name = CustomJSHover(args={"labels": d.labels}, code="return labels[String(value)] || ''")
        band = ("mean ± std", "@lo{0.[0000]} to @hi{0.[0000]}")
        bk.hover(fig, d.means, [*_tips("runs", "@run{custom}", metric), band], {"@run": name})
        bk.hover(fig, d.runs, _tips("run", "@run{custom}", metric), {"@run": name})
    if _integer_steps(lines):
        fig.xaxis[0].ticker.min_interval = 1  # type: ignore[union-attr]  # no tick at epoch 0.5
    d.legend.attach(fig)
    return fig


figure_of = _figure  # a curves figure for a layout of one's own (the comparison report)


def _integer_steps(lines: dict[int, Curve]) -> bool:
    import numpy as np

    # one array op over every run's steps, not one per curve (3,000 curves on 1,000 runs);
    # a run's metrics logged on the same lines share their steps (report/reader.py)
    steps = {id(xs): xs for _, _, xs, _ in lines.values()}.values()
    xs = np.concatenate([np.asarray(xs, dtype=float) for xs in steps])
    return bool(np.all(np.mod(xs, 1) == 0))


def _lone(ys: Any) -> bool:
    """One finite value at most: a line through it draws nothing."""
    import numpy as np

    return int(np.count_nonzero(np.isfinite(np.asarray(ys, dtype=float)))) <= 1


def _line(
    lay: Layout, color: str, dash: str = "solid", width: float = 2, alpha: float = 1.0, points: bool = False
) -> Any:
    """The glyph of a line; with `points`, a marker per point instead (its dash as the marker's shape)."""
    from bokeh.models import Line, Scatter

    style = (color, dash, width, alpha, points)
    if style not in lay.glyphs:
        if points:
            marker = MARKERS[palette.DASHES.index(dash) % len(MARKERS)] if dash in palette.DASHES else MARKERS[0]
            lay.glyphs[style] = Scatter(
                x="x",
                y="y",
                marker=marker,
                size=4 + 2 * width,
                fill_color=color,
                line_color=color,
                fill_alpha=alpha,
                line_alpha=alpha,
            )
        else:
            lay.glyphs[style] = Line(x="x", y="y", line_color=color, line_dash=dash, line_width=width, line_alpha=alpha)
    return lay.glyphs[style]


def _draw_combo(
    d: Drawn, lines: dict[int, Curve], lay: Layout, combo: Combo, members: list[int], per_line: int
) -> None:
    import numpy as np
    from bokeh.models import VArea

    if len(members) == 1 and not lay.repeats:
        _, _, xs, ys = lines[members[0]]
        x, y = decimate(xs, ys, per_line)
        src = bk.source({"x": x, "y": y, "run": np.full(len(x), members[0], dtype=np.int32)}, d.fig)
        r = bk.add_glyph(d.fig, _line(lay, combo.color, combo.dash, points=_lone(y)), src, name="run")
        d.legend.add(combo.label, r)
        d.runs.append(r)
        d.labels[str(members[0])] = combo.label
        return
    x, mean, std, n = _decimated_mean([(lines[m][2], lines[m][3]) for m in members], per_line)
    label = f"{combo.label} (mean of {len(members)})" if len(members) > 1 else lay.run_labels[members[0]]
    lo, hi = mean - std, mean + std
    code = np.full(len(x), d.code(label), dtype=np.int32)
    src = bk.source({"x": x, "y": mean, "lo": lo, "hi": hi, "n": n, "run": code}, d.fig)
    band = bk.add_glyph(d.fig, VArea(x="x", y1="lo", y2="hi", fill_color=combo.color, fill_alpha=0.18), src, "band")
    r = bk.add_glyph(d.fig, _line(lay, combo.color, combo.dash, points=_lone(mean)), src, name="mean", like=band)
    d.legend.add(combo.label, band, r)
    d.means.append(r)


def _individual(d: Drawn, lines: dict[int, Curve], lay: Layout, members: list[int], color: str, per_run: int) -> None:
    """The runs behind the means: hidden until the legend's INDIVIDUAL entry is clicked."""
    x, y, run = _concatenated(lines, members, per_run)
    r = bk.add_glyph(
        d.fig,
        _line(lay, color, width=1, alpha=0.5, points=d.points),
        bk.source({"x": x, "y": y, "run": run}, d.fig),
        "runs",
        False,
    )
    d.legend.add(INDIVIDUAL, r)
    d.runs.append(r)
    d.labels.update({str(i): lay.run_labels[i] for i in members})


def _tips(what: str, field: str, metric: str) -> list[tuple[str, str]]:
    return [(what, field), ("x", "$x{0.[000]}"), (metric, "$y{0.[0000]}")]


def _grouped(
    d: Drawn, lines: dict[int, Curve], lay: Layout, combos: list[tuple[Combo, list[int]]], per_line: int
) -> list[tuple[list[int], str]]:
    """Many combinations: one renderer per colour (NaN between lines); the hover names the
    line under the mouse. Serialising one array pair per colour instead of per line keeps
    `mrl analyze` on 1,000 runs fast and the file small."""
    import numpy as np
    from bokeh.models import Patch

    behind = []
    by_group: dict[str, list[tuple[Combo, list[int]]]] = {}
    for combo, members in combos:
        by_group.setdefault(combo.group, []).append((combo, members))
    for group, items in by_group.items():
        color, dash = items[0][0].color, items[0][0].group_dash
        members = [m for _, ms in items for m in ms]
        hover = _line(lay, color, dash, width=2.5, points=d.points)
        if not lay.repeats:
            x, y, run = _concatenated(lines, members, per_line)
            src = bk.source({"x": x, "y": y, "run": run}, d.fig)
            r = bk.add_glyph(
                d.fig, _line(lay, color, dash, width=1.2, alpha=0.6, points=d.points), src, "runs", hover=hover
            )
            d.legend.add(group, r)
            d.runs.append(r)
            d.labels.update({str(i): lay.run_labels[i] for i in members})
            continue
        parts, bands, labels = [], [], []
        for combo, ms in items:
            xk, mean, std, _ = _decimated_mean([(lines[m][2], lines[m][3]) for m in ms], per_line)
            parts.append((xk, mean, mean - std, mean + std))
            bands.extend(band_polygons(xk, mean - std, mean + std))
            labels.append(f"{combo.label} (mean of {len(ms)})")
        gap = np.array([np.nan])
        x, y, lo, hi = (np.concatenate([a for p in parts for a in (p[k], gap)]) for k in range(4))
        codes = [d.code(t) for t in labels]
        label = np.concatenate([np.full(len(p[0]) + 1, c, dtype=np.int32) for p, c in zip(parts, codes, strict=True)])
        # One Patch of polygons split by NaN: two arrays to embed, not two per combination.
        bx, by = (np.concatenate([a for b in bands for a in (b[k], gap)]) for k in range(2))
        patch = Patch(x="x", y="y", fill_color=color, fill_alpha=0.15, line_width=0)
        band = bk.add_glyph(d.fig, patch, bk.source({"x": bx, "y": by}, d.fig), "band")
        src = bk.source({"x": x, "y": y, "lo": lo, "hi": hi, "run": label}, d.fig)
        r = bk.add_glyph(
            d.fig, _line(lay, color, dash, width=1.5, alpha=0.9, points=d.points), src, "mean", hover=hover
        )
        d.legend.add(group, band, r)
        d.means.append(r)
        behind.append((members, color))
    return behind


def band_polygons(x: Any, lo: Any, hi: Any) -> list[tuple[Any, Any]]:
    """A ± std band as (x, y) polygons, one per stretch where it has values: along the upper
    edge and back along the lower one. Where the runs went NaN (diverged) or none reached a
    step, the band stops; a NaN inside one polygon would split it into its two edges, each
    closed by a chord across the plot."""
    import numpy as np

    ok = np.isfinite(lo) & np.isfinite(hi)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    return [
        (np.concatenate([x[a:b], x[a:b][::-1]]), np.concatenate([hi[a:b], lo[a:b][::-1]]))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def _decimated_mean(curves: list[tuple[Any, Any]], per_line: int) -> tuple[Any, Any, Any, Any]:
    """(x, mean, std, n) of the curves, decimated on the mean (the band follows it)."""
    import numpy as np

    x, mean, std, n = mean_curve(curves)
    idx, _ = decimate_rows(np.arange(len(x), dtype=float)[None, :], mean[None, :], per_line)
    i = idx[0].astype(int)
    return x[i], mean[i], std[i], n[i]


def mean_curve(curves: list[tuple[Any, Any]]) -> tuple[Any, Any, Any, Any]:
    """(x, mean, population std, n) over the curves at each x. Curves logged at the same
    steps are averaged step by step; others are interpolated onto the union of their steps
    (each only within its own range)."""
    import numpy as np

    first = np.asarray(curves[0][0], dtype=float)
    if all(len(c[0]) == len(first) and np.array_equal(np.asarray(c[0], dtype=float), first) for c in curves[1:]):
        grid, ys = first, np.array([np.asarray(c[1], dtype=float) for c in curves])
    else:
        grid = np.unique(np.concatenate([np.asarray(c[0], dtype=float) for c in curves]))
        if len(grid) > 4 * MAX_POINTS_PER_LINE:
            grid = np.linspace(grid[0], grid[-1], 4 * MAX_POINTS_PER_LINE)
        ys = np.full((len(curves), len(grid)), np.nan)
        for row, (cx, cy) in enumerate(curves):
            cx, cy = np.asarray(cx, dtype=float), np.asarray(cy, dtype=float)
            order = np.argsort(cx, kind="stable")
            cx, cy = cx[order], cy[order]
            inside = (grid >= cx[0]) & (grid <= cx[-1])
            ys[row, inside] = np.interp(grid[inside], cx, cy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step no curve reaches: NaN
        mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
    return grid, mean, std, (~np.isnan(ys)).sum(axis=0)


def _concatenated(lines: dict[int, Curve], members: list[int], per_line: int) -> tuple[Any, Any, Any]:
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
