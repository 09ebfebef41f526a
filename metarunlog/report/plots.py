"""Metric curves as bokeh figures: one per metric of metrics.jsonl, a line per sub-experiment."""

from __future__ import annotations

from typing import Any

from metarunlog import results
from metarunlog.report.model import Plot, Report
from metarunlog.results import SubResult

# Curves: at most this many points per plot in all (decimated per line), so that 1,000
# sub-experiments x a long metrics.jsonl still make a report of a few MB.
POINTS_PER_PLOT = 60_000
MIN_POINTS_PER_LINE, MAX_POINTS_PER_LINE = 40, 2_000
LEGEND_MAX_LINES = 20  # more lines than this: one multi_line glyph with hover, no legend


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
