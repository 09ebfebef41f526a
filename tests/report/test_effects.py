"""report/effects.py and the curves' layout: values per factor, axes, colours never by seed."""

from __future__ import annotations

from pathlib import Path

from metarunlog import report
from metarunlog.report import decide, effects, plots
from tests.helpers.records import done, make_exp


def exp_of(project: Path, params: list[dict], loss) -> object:  # noqa: ANN001
    subs = [
        {"params": p, "status": done(), "jsonl": [{"step": s, "loss": loss(p) + 1 / (s + 1)} for s in range(4)]}
        for p in params
    ]
    return make_exp(project, subs)


def test_numeric_values_are_sorted_and_get_a_log_axis_when_they_span_decades(project: Path) -> None:
    params = [{"lr": lr, "opt": opt} for lr in (0.01, 1.0, 0.0001) for opt in ("adam", "sgd")]
    exp = exp_of(project, params, lambda p: p["lr"])
    rep = report.build_report(exp, project, exp.dir / "analysis")
    found = {e.param: e for e in effects.effects(rep)}
    assert found["lr"].values == [0.0001, 0.01, 1.0] and found["lr"].numeric and found["lr"].log
    assert found["opt"].labels == ["adam", "sgd"] and not found["opt"].numeric  # categories
    assert found["lr"].best[0] == [0.0001 + 0.25, 0.0001 + 0.25]  # best value over training, per run
    fig = rep.models["effect0"]
    assert type(fig.x_scale).__name__ == "LogScale"
    assert list(rep.models["effect1"].x_range.factors) == ["adam", "sgd"]


def test_curves_are_coloured_by_the_param_that_moves_the_metric_never_by_the_seed(project: Path) -> None:
    params = [{"lr": lr, "wd": wd, "seed": s} for lr in (0.1, 0.01) for wd in (1, 2, 3) for s in range(2)]
    exp = exp_of(project, params, lambda p: p["wd"] * 10 + p["lr"])  # wd explains almost everything
    rep = report.build_report(exp, project, exp.dir / "analysis")
    subs = [s.res for s in rep.subs]
    assert rep.axes.factors == ["lr", "wd"] and rep.axes.repeats == ["seed"] and rep.axes.has_repeats
    values = decide.run_values(subs, rep.primary, best=True)
    assert decide.color_param(subs, rep.axes.factors, values) == "wd"
    lay = plots.curve_layout(rep, subs)
    assert len(lay.combos) == 6 and lay.repeats
    by_wd = {c.label: c.color for c in lay.combos}
    assert by_wd["lr=0.1, wd=1"] == by_wd["lr=0.01, wd=1"] != by_wd["lr=0.1, wd=2"]
    assert len({c.dash for c in lay.combos if c.color == by_wd["lr=0.1, wd=1"]}) == 2
    assert set(by_wd.values()) <= set(report.palette.OKABE_ITO)


def test_report_color_by_picks_the_colour_param(project: Path) -> None:
    from tests.conftest import set_cfg

    params = [{"lr": lr, "wd": wd} for lr in (0.1, 0.01) for wd in (1, 2, 3)]
    exp = exp_of(project, params, lambda p: p["wd"])
    set_cfg(project, report={"color_by": "lr"})
    from metarunlog.project import Project

    exp = Project.find(project).load_exp(str(exp.id))
    rep = report.build_report(exp, project, exp.dir / "analysis")
    assert plots.curve_layout(rep, [s.res for s in rep.subs]).color_key == "lr"


def test_report_color_by_a_repeat_axis_says_it_is_one_not_that_it_does_not_vary(project: Path) -> None:
    from metarunlog.project import Project
    from tests.conftest import set_cfg

    params = [{"lr": lr, "seed": s} for lr in (0.1, 0.01) for s in (1, 2)]
    exp = exp_of(project, params, lambda p: p["lr"] + p["seed"])
    set_cfg(project, report={"color_by": "seed"})
    exp = Project.find(project).load_exp(str(exp.id))
    rep = report.build_report(exp, project, exp.dir / "analysis")
    assert plots.curve_layout(rep, [s.res for s in rep.subs]).color_key == "lr"
    assert "report.color_by is 'seed', a repeat axis (the curves are averaged over it)" in " ".join(rep.warnings)


def test_mean_curve_averages_runs_logged_at_different_steps() -> None:
    import numpy as np

    x, mean, std, n = plots.mean_curve([([0, 1, 2], [1.0, 2.0, 3.0]), ([0, 2], [3.0, 5.0])])
    assert list(x) == [0, 1, 2] and list(mean) == [2.0, 3.0, 4.0] and list(n) == [2, 2, 2]
    assert np.allclose(std, [1.0, 1.0, 1.0])  # population std, as results.mean_std


def test_the_aggregated_table_and_the_step_keys_agree_with_mrl_table(project: Path) -> None:
    from metarunlog import results

    params = [{"lr": lr, "seed": s} for lr in (0.1, 0.01) for s in range(3)]
    subs = [
        {
            "params": p,
            "status": done(),
            "jsonl": [{"epoch": e, "loss": p["lr"] + p["seed"] / 10 + 1 / (e + 1)} for e in range(3)],
        }
        for p in params
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    assert "epoch" not in rep.table.columns and "epoch_best" not in rep.table.columns  # the x axis, not a metric
    view = report.table.aggregated_view(rep)
    agg = results.aggregate(results.table(exp, summary="both"))
    assert view.columns == ["lr", "n", "loss", "loss_best"]
    for row, cells in zip(agg.rows, view.rows, strict=True):
        assert cells[2][2] == row["loss"] and cells[2][0].endswith(results.format_value(row["loss_std"]))


MIXED = [1, "1", None, "", True, "True"]  # six values that `mrl table` prints as three


def test_values_the_table_prints_alike_stay_apart_as_mrl_table_aggregate_keeps_them(project: Path) -> None:
    # a param of mixed types: the report merged 1 and "1", None and "", True and "True" into
    # three combinations with "repeats" (bands, "mean of 2"), where the table has six groups
    exp = exp_of(project, [{"x": x} for x in MIXED], lambda p: 0.1 * MIXED.index(p["x"]))
    rep = report.build_report(exp, project, exp.dir / "analysis")
    [eff] = effects.effects(rep)
    assert eff.labels == ["1", '"1"', "None", '""', "True", '"True"']
    assert list(rep.models["effect0"].x_range.factors) == eff.labels
    assert not rep.axes.has_repeats and len(rep.axes.groups) == 6
    legend = [item.label["value"] for item in rep.models["plot0"].legend[0].items]
    assert legend == ["001: x=1", '002: x="1"', "003: x=None", '004: x=""', "005: x=True", '006: x="True"']
    from metarunlog import results

    assert len(results.aggregate(results.table(exp)).rows) == 6  # the table agrees


def test_zero_and_values_that_span_decades_are_ordered_categories(project: Path) -> None:
    # weight decay 0, 1e-4, 1e-3, 1e-2: a log axis cannot hold 0 and a linear one drew
    # 0, 1e-4 and 1e-3 on top of each other at its left edge
    exp = exp_of(project, [{"wd": wd} for wd in (1e-2, 0, 1e-4, 1e-3)], lambda p: p["wd"])
    rep = report.build_report(exp, project, exp.dir / "analysis")
    [eff] = effects.effects(rep)
    assert not eff.numeric and eff.labels == ["0", "0.0001", "0.001", "0.01"]
    assert list(rep.models["effect0"].x_range.factors) == eff.labels
    # without 0, or without decades, they stay on a numeric axis
    for values in ((1e-4, 1e-3, 1e-2), (0, 1, 2, 3)):
        exp = exp_of(project, [{"wd": wd} for wd in values], lambda p: p["wd"])
        [eff] = effects.effects(report.build_report(exp, project, exp.dir / "analysis"))
        assert eff.numeric


def test_float_noise_in_values_reads_as_the_table_prints_it(project: Path) -> None:
    exp = exp_of(project, [{"wd": k * 1e-4} for k in (1, 3)], lambda p: p["wd"])  # 0.00030000000000000003
    rep = report.build_report(exp, project, exp.dir / "analysis")
    [eff] = effects.effects(rep)
    assert eff.labels == ["0.0001", "0.0003"]
    assert [item.label["value"] for item in rep.models["plot0"].legend[0].items] == ["001: wd=0.0001", "002: wd=0.0003"]


def test_the_params_mrl_cfg_repeat_axes_declares_are_repeats_in_the_report_not_factors(project: Path) -> None:
    from tests.helpers.repo import commit_all, run_mrl, set_cfg

    set_cfg(project, repeat_axes=["random_seed"])
    commit_all(project, "declare the seed param")
    params = [{"lr": lr, "random_seed": s} for lr in (0.1, 0.01) for s in range(3)]
    exp = exp_of(project, params, lambda p: p["lr"] + p["random_seed"] / 100)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    assert rep.axes.factors == ["lr"] and rep.axes.repeats == ["random_seed"] and rep.axes.has_repeats
    assert [e.param for e in effects.effects(rep)] == ["lr"]
    assert run_mrl("analyze", cwd=project).returncode == 0
    page = (exp.dir / "analysis" / "index.html").read_text()
    assert "loss against lr" in page and "against random_seed" not in page


def test_a_run_that_diverged_to_inf_or_nan_and_a_mean_that_is_not_finite_are_said_under_the_figure(
    project: Path,
) -> None:
    # bokeh draws no point at inf or nan, and a group whose mean is inf got no mean marker:
    # the effects plot dropped them without a word
    import math

    from tests.helpers.repo import run_mrl

    final = {("<b>sgd</b>", 0): math.inf, ("<b>sgd</b>", 1): 0.5, ("adam", 0): math.nan, ("adam", 1): 0.25}
    subs = [
        {
            "params": {"opt": opt, "seed": seed},
            "status": done(),
            "jsonl": [{"step": 0, "loss": 1.0}, {"step": 1, "loss": final[(opt, seed)]}],  # json writes Infinity, NaN
        }
        for opt, seed in final
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    [eff] = effects.effects(rep)
    assert eff.not_drawn == [
        "opt = <b>sgd</b>, final value: 001 is inf, the mean of 2 is inf: not drawn",
        "opt = adam, final value: 003 is nan: not drawn",
    ]
    res = run_mrl("analyze", cwd=project)
    assert res.returncode == 0, res.stderr
    page = (exp.dir / "analysis" / "index.html").read_text()
    said = '<p class="mrl-warning not-drawn">opt = &lt;b&gt;sgd&lt;/b&gt;, final value: 001 is inf, the mean of 2'
    assert said in page and "opt = adam, final value: 003 is nan: not drawn" in page


def test_a_heatmap_cell_whose_mean_is_inf_reads_inf_and_leaves_the_others_colour_scale_alone(project: Path) -> None:
    # the colour range was min..max of every mean: an inf cell made it 0.25..inf, and every
    # finite cell took the same colour
    import math

    loss = {(1, 3): 0.25, (1, 4): 0.5, (2, 3): 0.75, (2, 4): math.inf}
    subs = [
        {"params": {"a": a, "b": b}, "status": done(), "jsonl": [{"step": 0, "loss": v}]} for (a, b), v in loss.items()
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    heat = next(m for k, m in rep.models.items() if k.startswith("heatmap"))
    mapper = heat.renderers[0].glyph.fill_color.transform
    assert (mapper.low, mapper.high) == (0.25, 0.75)
    cells = heat.renderers[0].data_source.data
    assert dict(zip(zip(cells["a"], cells["b"], strict=True), cells["text"], strict=True))[("2", "4")] == "inf"
