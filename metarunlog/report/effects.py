"""The `#effects` section: how each varying param moves the primary metric.

Per factor (a varying param that is not a repeat axis): the primary metric's best value over
training and its final value against the param's values, each value's mean ± std over its
runs (one glyph group per value) and every run as a point. With two or more factors, a
heatmap of the mean best value over the grid of each pair. Numeric params sit on a numeric
axis (logarithmic when their values span decades), the others are categories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from metarunlog import results
from metarunlog.report import bk, decide, palette
from metarunlog.report.model import Report
from metarunlog.results import SubResult

LOG_RATIO = 20  # numeric values whose max/min reach this ratio get a log axis
MAX_HEATMAPS = 3  # pairs of the first three factors
TITLE_PX = 8  # a character of bokeh's 13 px bold title, about (chromium: 7.7)
MAX_GROUPS = 30  # more values than this: the runs as points, one renderer of means per series
SERIES = (("best", "best over training", "circle"), ("final", "final value", "triangle"))


@dataclass
class Effect:
    """One factor: its values, and per value the runs' primary metric (best and final)."""

    param: str
    values: list[Any]
    labels: list[str]
    numeric: bool
    log: bool
    runs: list[list[SubResult]] = field(default_factory=list)  # per value
    best: list[list[float | None]] = field(default_factory=list)  # per value, per run
    final: list[list[float | None]] = field(default_factory=list)
    # what the figure cannot draw (a run's inf or nan, a mean that is not finite), one line
    # per value and series: the report says it under the figure
    not_drawn: list[str] = field(default_factory=list)

    def series(self, name: str) -> list[list[float | None]]:
        return self.best if name == "best" else self.final


def is_numeric(values: list[Any]) -> bool:
    return all(results.is_number(v) and math.isfinite(results.as_float(v)) for v in values)


def spans_decades(values: list[Any]) -> bool:
    return is_numeric(values) and min(values) > 0 and max(values) / min(values) >= LOG_RATIO


def _zero_and_decades(values: list[Any]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) >= 2 and min(values) == 0 and spans_decades(positive)


def effect(subs: list[SubResult], param: str, primary: decide.Primary) -> Effect:
    """The runs grouped by `param`'s value (numbers ascending, others in order of first
    appearance), with their best and final values of the primary metric."""
    by_key: dict[str, list[SubResult]] = {}
    value_of: dict[str, Any] = {}
    for s in subs:
        v = s.params.get(param)
        key = decide.value_key(v)
        by_key.setdefault(key, []).append(s)
        value_of.setdefault(key, v)
    keys = list(by_key)
    values = [value_of[k] for k in keys]
    numeric = is_numeric(values)
    if numeric:
        order = sorted(range(len(values)), key=lambda i: values[i])
        keys, values = [keys[i] for i in order], [values[i] for i in order]
    labels = [value_label(v) for v in values]
    if numeric and _zero_and_decades(values):
        numeric = False  # 0, 1e-4, 1e-2 (weight decay): no log axis holds 0, a linear one
        # squeezes all but the largest into its left edge: ordered categories instead
    if len(set(labels)) < len(labels):  # axis categories must differ: 1 and 1.0 as their JSON
        labels = [decide.json_text(v) for v in values]
    eff = Effect(param, values, labels, numeric, spans_decades(values))
    for key in keys:
        runs = by_key[key]
        eff.runs.append(runs)
        eff.best.append(decide.run_values(runs, primary, best=True))
        eff.final.append(decide.run_values(runs, primary, best=False))
    eff.not_drawn = not_drawn(eff, primary)
    return eff


def not_drawn(e: Effect, primary: decide.Primary) -> list[str]:
    """One line per value and series holding a run whose value is inf or nan (a diverged
    run: bokeh draws no point there) or whose mean is not finite (no mean marker): what a
    reader of the figure would otherwise never learn was left out."""
    out = []
    for name, what, _ in SERIES:
        for label, runs, vals in zip(e.labels, e.runs, e.series(name), strict=True):
            raw = [(s.name, decide.run_value(s, primary, best=name == "best")) for s in runs]
            bad = [f"{who} is {v}" for who, v in raw if results.is_number(v) and not math.isfinite(results.as_float(v))]
            mean = results.mean_std(vals)[0]
            if mean is not None and not math.isfinite(mean):
                bad.append(f"the mean of {sum(v is not None for v in vals)} is {mean}")
            if bad:
                out.append(f"{e.param} = {label}, {what}: {', '.join(bad)}: not drawn")
    return out


def effects(rep: Report) -> list[Effect]:
    """One Effect per factor with two or more values, when there is a primary metric."""
    if rep.primary is None:
        return []
    subs = [s.res for s in rep.subs]
    out = [effect(subs, p, rep.primary) for p in rep.axes.factors]
    # a factor whose runs all diverged (nan) has nothing to draw: kept, so that its note says so
    drawn = [e for e in out if any(v is not None for vs in e.best + e.final for v in vs) or e.not_drawn]
    return [e for e in drawn if len(e.values) >= 2]


def context(rep: Report) -> dict[str, Any] | None:
    """`_effects.html`'s variables: a figure per factor and the heatmaps, or None (left out)."""
    found = effects(rep)
    if not found or rep.primary is None:
        return None
    primary = rep.primary
    figures = [(e.param, rep.add_model(effect_figure(e, primary, rep.varying), "effect")) for e in found]
    maps = []
    first = [e for e in found if len(e.values) <= MAX_GROUPS][:MAX_HEATMAPS]
    for i, a in enumerate(first):
        for b in first[i + 1 :]:
            maps.append((f"{a.param} x {b.param}", rep.add_model(heatmap(rep, a, b, primary), "heatmap")))
    # apart from effect_figures' pairs: a copy of _effects.html in mrl_templates/ unpacks those
    not_drawn = {e.param: e.not_drawn for e in found if e.not_drawn}
    return {"effect_figures": figures, "heatmaps": maps, "effects_metric": primary.name, "effect_not_drawn": not_drawn}


# -- figures ------------------------------------------------------------------------------------


def _x_positions(e: Effect) -> list[Any]:
    return list(e.values) if e.numeric else list(e.labels)


@bk.lean
def effect_figure(e: Effect, primary: decide.Primary, varying: list[str]) -> Any:
    """Points for every run, and per value a mean marker with a ±std bar, for best and final."""
    from bokeh.models import Scatter
    from bokeh.plotting import figure

    kwargs: dict[str, Any] = {"x_axis_type": "log"} if e.log else {}
    if not e.numeric:
        kwargs["x_range"] = e.labels
    fig = figure(
        title=f"{primary.name} against {e.param}",
        x_axis_label=e.param,
        y_axis_label=primary.name,
        height=320,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        **kwargs,
    )
    legend, points, marks = bk.Legend(), [], []
    xs = _x_positions(e)
    for (name, what, marker), color in zip(SERIES, palette.categorical(len(SERIES)), strict=True):
        values = e.series(name)
        px, py, who = [], [], []
        for x, runs, vals in zip(xs, e.runs, values, strict=True):
            for s, v in zip(runs, vals, strict=True):
                if v is not None:
                    px.append(x)
                    py.append(v)
                    who.append(f"{s.name}: {decide.label(s.params, varying)}")
        if not py:
            continue
        x_field: Any = "x"
        if not e.numeric:
            from bokeh.transform import jitter

            x_field = jitter("x", width=0.25, range=fig.x_range)
        glyph = Scatter(x=x_field, y="y", marker=marker, size=6, fill_color=color, line_color=color, fill_alpha=0.45,
                        line_alpha=0.45)  # fmt: skip
        pts = bk.add_glyph(fig, glyph, bk.source({"x": px, "y": py, "run": who}, fig), f"runs:{name}")
        legend.add(f"{what}: runs", pts)
        points.append(pts)
        if len(xs) > MAX_GROUPS:
            _means_line(fig, legend, e, xs, values, color, what)
            continue
        marks += _means(fig, legend, xs, e.labels, values, (what, marker, color), name)
    bk.hover(fig, points, [("run", "@run"), (primary.name, "@y{0.[0000]}")])
    bk.hover(
        fig,
        marks,
        [(e.param, "@value"), ("mean of", "@series"), (primary.name, "@y{0.[0000]}"),
         ("± std", "@lo{0.[0000]} to @hi{0.[0000]}"), ("n", "@n")],
    )  # fmt: skip
    _integer_ticks(fig, e)
    legend.attach(fig)
    return fig


def _means(
    fig: Any,
    legend: bk.Legend,
    xs: list[Any],
    labels: list[str],
    values: list[list[float | None]],
    style: tuple[str, str, str],
    name: str,
) -> list[Any]:
    """Per value a glyph group `name:value`: its mean marker and ±std bar. The values
    share one source and one glyph of each kind (a view per value picks its row): a
    third of the models of a source per value."""
    from bokeh.models import Scatter, Segment

    what, marker, color = style
    x, value, n, y, lo, hi = [], [], [], [], [], []
    for pos, lab, vals in zip(xs, labels, values, strict=True):
        mean, std = results.mean_std(vals)
        if mean is not None:
            x.append(pos)
            value.append(lab)
            n.append(sum(v is not None for v in vals))
            y.append(mean)
            lo.append(mean - (std or 0))
            hi.append(mean + (std or 0))
    data = {"x": x, "y": y, "lo": lo, "hi": hi, "n": n, "value": value, "series": [what] * len(x)}
    src = bk.source(data, fig)
    whisker = Segment(x0="x", y0="lo", x1="x", y1="hi", line_color=color, line_width=2)
    mark = Scatter(x="x", y="y", marker=marker, size=13, fill_color=color, line_color="#222222")
    dots = []
    for i, lab in enumerate(value):
        group = f"{name}:{lab}"  # one glyph group per value (and series)
        bar = bk.add_glyph(fig, whisker, src, group, rows=[i])
        dot = bk.add_glyph(fig, mark, src, group, like=bar)
        legend.add(f"{what}: mean ± std", bar, dot)
        dots.append(dot)
    return dots


def _means_line(
    fig: Any, legend: bk.Legend, e: Effect, xs: list[Any], values: list[list[float | None]], color: str, what: str
) -> None:
    """Many values (a continuous param): the means as one line, not a glyph group each."""
    from bokeh.models import Line

    pairs = [(x, results.mean_std(v)[0]) for x, v in zip(xs, values, strict=True)]
    pairs = [(x, m) for x, m in pairs if m is not None]
    if any(len([v for v in vs if v is not None]) > 1 for vs in values):
        src = bk.source({"x": [x for x, _ in pairs], "y": [m for _, m in pairs]}, fig)
        r = bk.add_glyph(fig, Line(x="x", y="y", line_color=color, line_width=2), src, f"means:{e.param}")
        legend.add(f"{what}: mean", r)


def _integer_ticks(fig: Any, e: Effect) -> None:
    if e.numeric and not e.log and all(results.as_float(v).is_integer() for v in e.values):
        fig.xaxis[0].ticker.min_interval = 1


@bk.lean
def heatmap(rep: Report, a: Effect, b: Effect, primary: decide.Primary) -> Any:
    """The mean best value of the primary metric over the grid of a's and b's values (the
    final value for a metric without a goal: it has no best)."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure
    from bokeh.transform import linear_cmap

    best = primary.goal in ("min", "max")
    cells: dict[tuple[str, str], list[float]] = {}  # n: the runs with a value, as the table's
    label_a, label_b = ({decide.value_key(v): t for v, t in zip(e.values, e.labels, strict=True)} for e in (a, b))
    for s in (s.res for s in rep.subs):
        ka, kb = label_a[decide.value_key(s.params.get(a.param))], label_b[decide.value_key(s.params.get(b.param))]
        [v] = decide.run_values([s], primary, best=best)
        if v is not None:
            cells.setdefault((ka, kb), []).append(v)
    data: dict[str, list[Any]] = {"a": [], "b": [], "mean": [], "std": [], "n": [], "text": [], "ink": []}
    stats = {k: results.mean_std(vals) for k, vals in cells.items()}
    means = [m for m, _ in stats.values() if m is not None and math.isfinite(m)]  # inf: its cell reads "inf"
    colors = _sequential(primary.goal)
    lo, hi = (min(means), max(means)) if means else (0.0, 1.0)
    for (ka, kb), (mean, std) in stats.items():
        data["a"].append(ka)
        data["b"].append(kb)
        data["mean"].append(mean)
        data["std"].append(std)
        data["n"].append(len(cells[(ka, kb)]))
        data["text"].append(results.format_value(mean))
        data["ink"].append(_ink(colors, mean, lo, hi))
    title = f"{primary.name} ({'best over training' if best else 'final value'}, mean) over {a.param} x {b.param}"
    fig = figure(
        title=title,
        x_range=a.labels,  # type: ignore[arg-type]
        y_range=b.labels,  # type: ignore[arg-type]
        x_axis_label=a.param,
        y_axis_label=b.param,
        height=max(240, 60 * len(b.labels) + 110),
        width=max(320, 90 * len(a.labels) + 160, TITLE_PX * len(title) + 60),  # the title is never cut
        tools="save",
        toolbar_location=None,
    )
    src = ColumnDataSource(data)
    rect = fig.rect("a", "b", 1, 1, source=src, fill_color=linear_cmap("mean", colors, lo, hi), line_color="white")
    fig.text("a", "b", text="text", source=src, text_align="center", text_baseline="middle", text_color="ink",
             text_font_size="10pt", tags=["heat-label"])  # fmt: skip
    fig.add_tools(
        HoverTool(
            renderers=[rect],
            tooltips=[
                (a.param, "@a"),
                (b.param, "@b"),
                (primary.name, "@mean{0.[0000]} ± @std{0.[0000]}"),
                ("n", "@n"),
            ],
        )
    )
    fig.grid.visible = False
    return fig


def value_label(v: Any) -> str:
    """A param value as an axis category (`decide.value_text`: values that differ read apart)."""
    return decide.value_text(v)


def _sequential(goal: str | None) -> list[str]:
    """Viridis, oriented so that the better values are the bright ones."""
    from bokeh import palettes

    colors = list(getattr(palettes, palette.SEQUENTIAL))
    return colors[::-1] if goal == "min" else colors


def _ink(colors: list[str], value: float | None, lo: float, hi: float) -> str:
    """Black or white text, whichever reads on the cell's colour."""
    if value is None:
        return "#000000"
    t = 0.5 if hi <= lo else (value - lo) / (hi - lo)
    t = min(1.0, max(0.0, t)) if t == t else 0.5  # inf over an inf range (a run that diverged) is NaN
    c = colors[min(len(colors) - 1, int(t * (len(colors) - 1)))]
    r, g, b = (int(c[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"
