"""report/plots.py: decimated curves that keep their extremes, colour groups for many runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metarunlog import report
from metarunlog.project import Project
from metarunlog.report import pages
from tests.helpers.records import curve, done, make_exp


def test_decimate_keeps_both_ends_and_every_bucket_s_extremes() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 100)
    y[5_003] = 50.0
    y[7_777] = -50.0
    dx, dy = report.decimate(x, y, 100)
    assert len(dx) <= 102
    assert dx[0] == 0 and dx[-1] == 9_999
    assert 50.0 in dy and -50.0 in dy
    assert list(dx) == sorted(dx)
    same_x, same_y = report.decimate(x[:50], y[:50], 100)
    assert len(same_x) == 50


def test_decimate_ignores_nan_values() -> None:
    y = np.array([np.nan] * 500 + [1.0, 2.0] + [np.nan] * 500)
    dx, dy = report.decimate(np.arange(len(y), dtype=float), y, 40)
    assert 1.0 in dy and 2.0 in dy


def test_many_sub_experiments_are_drawn_in_colour_groups_named_by_a_param(project: Path) -> None:
    subs = [
        {"params": {"lr": [0.1, 0.01, 0.001][i % 3], "seed": i}, "status": done(), "jsonl": curve(500, i)}
        for i in range(60)
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    fig = rep.models["plot0"]
    legend = [item.label["value"] for item in fig.legend[0].items]
    assert legend == ["lr=0.1", "lr=0.01", "lr=0.001", "individual runs"]  # seed is the repeat axis
    means = [r for r in fig.renderers if r.name == "mean"]
    bands = [r for r in fig.renderers if r.name == "band"]
    runs = [r for r in fig.renderers if r.name == "runs"]
    assert len(means) == len(bands) == 3 and all(not r.visible for r in runs)
    xs = np.concatenate([r.data_source.data["x"] for r in runs])
    assert np.isnan(xs).sum() == 60  # every run, one gap after each
    assert len(xs) <= report.POINTS_PER_PLOT + 3 * 60
    assert fig.xaxis[0].ticker.min_interval == 1  # integer steps: integer ticks


def _styles(fig, name: str) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(r.glyph.line_color, str(r.glyph.line_dash)) for r in fig.renderers if r.name == name]


def test_more_colour_values_than_colours_are_never_drawn_alike(project: Path) -> None:
    # 12 values of the one factor: Tol's 10 colours come round again, so lr=11 would look
    # like lr=1 (same colour, same solid line) unless the second lap is dashed.
    subs = [{"params": {"lr": lr}, "status": done(), "jsonl": curve(5, lr)} for lr in range(1, 13)]
    exp = make_exp(project, subs)
    fig = report.build_report(exp, project, exp.dir / "analysis").models["plot0"]
    styles = _styles(fig, "run")
    assert len(styles) == 12 and len(set(styles)) == 12
    # the comparison's colours are keyed by experiment: 11 experiments x 2 lines are more
    # than 20 combinations, drawn one renderer per experiment; the 11th must not look like the 1st
    exps = [
        make_exp(project, [{"params": {"lr": lr}, "status": done(), "jsonl": curve(5, lr)} for lr in (0.1, 0.2)])
        for _ in range(11)
    ]
    cmp = pages.build_comparison(Project.find(project), exps, project)
    pages.add_comparison_curves(cmp)
    styles = _styles(cmp.models["plot0"], "runs")
    assert len(styles) == 11 and len(set(styles)) == 11


def _polygons(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The x of each polygon of a Patch (bokeh splits it at a NaN in x or y)."""
    gap = np.isnan(x) | np.isnan(y)
    parts = [p[~g] for p, g in zip(np.split(x, np.flatnonzero(gap)), np.split(gap, np.flatnonzero(gap)), strict=True)]
    return [p for p in parts if len(p)]


def test_a_band_of_many_combinations_ends_where_its_runs_diverged_to_nan_without_a_chord(project: Path) -> None:
    """Above 20 combinations the bands of a colour are one NaN-split Patch. A combination
    whose runs all went NaN at step 3 (diverged) split its band into its upper edge and its
    lower edge, each closed by a straight chord across the plot (seen in a comparison)."""

    def rows(a: int, b: int, seed: int) -> list[dict[str, float]]:
        out = [{"step": s, "loss": 1 / (1 + s) + a + 0.01 * seed} for s in range(8)]
        if (a, b) == (0, 0):
            for r in out[3:]:
                r["loss"] = float("nan")
        return out

    subs = [
        {"params": {"a": a, "b": b, "seed": seed}, "status": done(), "jsonl": rows(a, b, seed)}
        for a in range(11)
        for b in range(2)
        for seed in range(2)
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    fig = rep.models["plot0"]
    bands = [r for r in fig.renderers if r.name == "band"]
    assert bands and all(type(r.glyph).__name__ == "Patch" for r in bands)
    data = [(np.asarray(r.data_source.data["x"], float), np.asarray(r.data_source.data["y"], float)) for r in bands]
    polygons = [p for x, y in data for p in _polygons(x, y)]
    assert len(polygons) == 22  # one band per combination
    for p in polygons:  # along the upper edge and back along the lower one
        assert np.array_equal(p, p[::-1]), p
    assert sorted(len(p) for p in polygons)[0] == 6  # (0, 0)'s band: steps 0..2 only


def test_a_curves_plot_is_tall_enough_for_every_legend_entry(project: Path) -> None:
    """Up to 20 combinations each get a legend entry; at 360 px bokeh showed about 14 of
    them and cut the rest (no scroll), seen in `mrl analyze 1 2` over 12 + 8 combinations."""
    subs = [
        {"params": {"lr": lr, "seed": seed}, "status": done(), "jsonl": curve(5, lr)}
        for lr in [0.01 * i for i in range(1, 19)]
        for seed in (0, 1)
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    fig = rep.models["plot0"]
    items = fig.legend[0].items
    assert len(items) == 19  # 18 combinations and "individual runs"
    assert fig.height >= 23 * len(items) + 30  # an 8pt entry takes 23 px


def _marks(fig) -> list[tuple[str, int]]:  # noqa: ANN001
    """The visible renderers that draw something for a lone point: markers, and how many."""
    return [
        (r.glyph.marker, int(np.isfinite(np.asarray(r.data_source.data["y"], dtype=float)).sum()))
        for r in fig.renderers
        if r.visible and type(r.glyph).__name__ == "Scatter"
    ]


def test_a_metric_logged_once_per_run_is_drawn_as_points_not_as_invisible_one_point_lines(project: Path) -> None:
    # SummaryWriter.add_hparams writes its metrics at step 0 only, as does a test score logged
    # once at the end: a line through one point draws nothing, and the plot looked empty.
    subs = [
        {"params": {"lr": lr, "seed": seed}, "status": done(), "jsonl": [*curve(5, lr), {"step": 5, "test_acc": lr}]}
        for lr in (0.1, 0.01)
        for seed in (0, 1)
    ]
    subs.append({"params": {"lr": 0.001, "seed": 0}, "status": done(), "jsonl": curve(1, 0.001)})  # stopped at once
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    figs = {rep.models[p.key].title.text: rep.models[p.key] for p in rep.plots}
    assert sorted(_marks(figs["test_acc"])) == [("circle", 1), ("circle", 1)]  # one mean point per lr
    assert [n for _, n in _marks(figs["loss"])] == [1]  # only lr=0.001's one-point run; the curves stay lines
    kinds = sorted(type(r.glyph).__name__ for r in figs["loss"].renderers if r.name == "mean")
    assert kinds == ["Line", "Line", "Scatter"]
