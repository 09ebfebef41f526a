"""metarunlog/report/decide.py: the primary metric, the best runs, factors and repeat axes,
how param values are told apart and shown, and which factor colours the curves. Tables come
from `results.make_table` over real records; the report's use of them is in
tests/report/test_effects.py and test_summary.py."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarunlog import results
from metarunlog.metrics.summary import Best
from metarunlog.report import decide
from metarunlog.results import SubResult, Table
from metarunlog.states import JobState
from tests.helpers.records import done, make_exp


def sub(i: int, params: dict[str, Any], metrics: dict[str, Any] | None = None, **best: Best) -> SubResult:
    return SubResult(i, f"{i:03d}", Path(f"/x/{i:03d}"), params, JobState.DONE, None, metrics or {}, best=best)


def table(metrics: list[str], rows: list[dict[str, Any]]) -> Table:
    return Table(params=[], metrics=metrics, rows=rows)


def test_metric_names_leave_out_the_best_and_step_columns_of_summary_both(project: Path) -> None:
    lines = [{"step": 0, "val_loss": 2.0, "acc": 0.5}, {"step": 1, "val_loss": 1.0, "acc": 0.7}]
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "jsonl": lines}])
    tab = results.make_table(results.collect(exp)[0], summary="both")
    assert {"val_loss_best", "val_loss_best_step"} <= set(tab.metrics)
    assert decide.metric_names(tab) == ["val_loss", "acc"]


def test_a_metric_named_like_a_derived_column_is_kept_when_its_base_is_not_logged() -> None:
    tab = table(["loss_step", "acc_best", "acc", "acc_best", "acc_best_step"], [])
    assert decide.metric_names(tab) == ["loss_step", "acc"]  # loss_step: no `loss` beside it


def test_the_wanted_primary_metric_is_used_when_some_run_has_it() -> None:
    tab = table(["acc", "val_loss"], [])
    primary, warning = decide.primary_metric(tab, "val_loss", {"val_loss": "min"})
    assert primary == decide.Primary("val_loss", "val_loss", "min") and warning is None


def test_a_primary_metric_named_like_a_param_is_found_in_its_metric_column() -> None:
    tab = table(["metric.lr", "acc"], [])
    primary, _ = decide.primary_metric(tab, "lr", {"metric.lr": "max"})
    assert primary == decide.Primary("lr", "metric.lr", "max")


def test_a_wanted_metric_no_run_has_is_a_warning_and_the_first_metric_is_used() -> None:
    primary, warning = decide.primary_metric(table(["acc", "loss"], []), "bleu", {})
    assert primary == decide.Primary("acc", "acc", None)
    assert warning == "report.primary_metric is 'bleu', which no sub-experiment has (the metrics are: acc, loss)"
    assert decide.primary_metric(table([], []), "bleu", {}) == (
        None,
        "report.primary_metric is 'bleu', which no sub-experiment has (the metrics are: none yet)",
    )
    assert decide.primary_metric(table([], []), None, {}) == (None, None)


def test_the_best_pick_is_the_first_of_equal_values_and_skips_what_is_no_number() -> None:
    rows = [{"id": 1, "acc": math.nan}, {"id": 2, "acc": True}, {"id": 3, "acc": "0.99"}, {"id": 4, "acc": 0.5}]
    rows += [{"id": 5, "acc": 0.9, "acc_step": 7}, {"id": 6, "acc": 0.9}, {"id": 7}]
    pick = decide.best_pick(rows, "acc", "max", "acc_step")
    assert pick is not None and pick.row["id"] == 5 and pick.value == 0.9 and pick.step == 7
    low = decide.best_pick(rows, "acc", "min")
    assert low is not None and low.row["id"] == 4 and low.step is None


def test_there_is_no_best_run_without_a_goal_or_without_values() -> None:
    rows = [{"acc": 0.5}]
    assert decide.best_pick(rows, "acc", None) is None and decide.best_pick(rows, "acc", "up") is None
    assert decide.best_pick([{"acc": None}, {}], "acc", "max") is None


def test_an_infinite_loss_is_never_the_best_and_an_infinite_score_is() -> None:
    rows = [{"id": 1, "loss": math.inf}, {"id": 2, "loss": 3.0}]
    assert decide.best_pick(rows, "loss", "min").row["id"] == 2  # type: ignore[union-attr]
    assert decide.best_pick(rows, "loss", "max").row["id"] == 1  # type: ignore[union-attr]


def test_best_runs_are_by_best_over_training_and_by_final_value() -> None:
    rows = [
        {"id": 1, "loss": 0.9, "loss_best": 0.1, "loss_best_step": 3},  # dipped early, ended badly
        {"id": 2, "loss": 0.2, "loss_best": 0.2, "loss_best_step": 9},
    ]
    by_best, by_final = decide.best_runs(table(["loss"], rows), decide.Primary("loss", "loss", "min"))
    assert by_best is not None and by_best.row["id"] == 1 and by_best.step == 3
    assert by_final is not None and by_final.row["id"] == 2


def test_a_table_without_best_columns_ranks_by_the_last_values_both_ways() -> None:
    rows = [{"id": 1, "acc": 0.4}, {"id": 2, "acc": 0.8}]
    by_best, by_final = decide.best_runs(table(["acc"], rows), decide.Primary("acc", "acc", "max"))
    assert by_best is not None and by_final is not None and by_best.row["id"] == by_final.row["id"] == 2


def test_axes_split_repeats_from_factors_and_group_runs_by_combination() -> None:
    subs = [sub(i, {"lr": lr, "seed": s}) for i, (lr, s) in enumerate([(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)], 1)]
    ax = decide.axes(subs, ["lr", "seed"], ["seed"])
    assert ax.factors == ["lr"] and ax.repeats == ["seed"] and ax.groups == [[0, 1], [2, 3]] and ax.has_repeats
    flat = decide.axes(subs, ["lr", "seed"], [])
    assert flat.groups == [[0], [1], [2], [3]] and not flat.has_repeats
    assert decide.axes([], [], []).groups == []


def test_values_that_json_tells_apart_are_different_combinations() -> None:
    subs = [sub(i, {"x": v}) for i, v in enumerate([1, "1", 1.0, True, None, "", [1], "[1]"], 1)]
    assert len(decide.axes(subs, ["x"], []).groups) == 8
    missing = [sub(1, {}), sub(2, {"x": None})]  # a param a run lacks is None, as the table shows it
    assert decide.axes(missing, ["x"], []).groups == [[0, 1]]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, min_size=2, max_size=6))
def test_value_key_partitions_values_as_their_json_does(values: list[Any]) -> None:
    by_key = [{j for j, w in enumerate(values) if decide.value_key(w) == decide.value_key(v)} for v in values]
    by_json = [{j for j, w in enumerate(values) if decide.json_text(w) == decide.json_text(v)} for v in values]
    assert by_key == by_json


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "None"),
        (0.1, "0.1"),
        (3, "3"),
        (True, "True"),
        ("adam", "adam"),
        ("café", "café"),
        ("1", '"1"'),
        ("True", '"True"'),
        ("None", '"None"'),
        ("", '""'),
        (" adam", '" adam"'),
        ("[1]", '"[1]"'),
        ("[é]", '"[é]"'),  # quoted to read apart, not turned into \u00e9
        ("nan", '"nan"'),
        ([1, 2], "[1, 2]"),
    ],
)
def test_a_value_is_shown_as_the_table_prints_it_but_quoted_where_it_reads_as_another_type(
    value: Any, shown: str
) -> None:
    assert decide.value_text(value) == shown


def test_label_names_each_factor_in_order() -> None:
    assert decide.label({"wd": 1, "lr": 0.1, "opt": "1"}, ["lr", "wd", "opt"]) == 'lr=0.1, wd=1, opt="1"'
    assert decide.label({"lr": None}, ["lr"]) == "lr=None" and decide.label({"lr": 1}, []) == ""
    assert decide.label({"lr": 1}, ["lr", "wd"]) == "lr=1"  # a param the run does not have: no wd=None


def test_the_factor_explaining_the_metric_colours_the_curves() -> None:
    grid = [(lr, wd) for lr in (0.1, 0.2) for wd in (1, 2, 3)]
    subs = [sub(i, {"lr": lr, "wd": wd}) for i, (lr, wd) in enumerate(grid, 1)]
    values: list[float | None] = [wd * 10 + lr for lr, wd in grid]
    assert decide.color_param(subs, ["lr", "wd"], values) == "wd"
    assert decide.color_param(subs, ["lr", "wd"], [lr for lr, _ in grid]) == "lr"
    assert decide.color_param(subs, ["lr", "wd"], values, wanted="lr") == "lr"  # report.color_by
    assert decide.color_param(subs, ["lr", "wd"], values, wanted="seed") == "wd"  # not a factor: ignored


def test_without_a_spread_to_explain_the_factor_with_fewest_values_colours() -> None:
    grid = [(lr, wd) for lr in (0.1, 0.2, 0.3) for wd in (1, 2)]
    subs = [sub(i, {"lr": lr, "wd": wd}) for i, (lr, wd) in enumerate(grid, 1)]
    assert decide.color_param(subs, ["lr", "wd"], [None] * 6) == "wd"
    assert decide.color_param(subs, ["lr", "wd"], [1.0] * 6) == "wd"  # no variance at all


def test_a_factor_with_one_value_or_more_than_ten_never_colours() -> None:
    subs = [sub(i, {"seedish": i, "const": 1}) for i in range(1, 13)]
    assert decide.color_param(subs, ["seedish", "const"], [float(i) for i in range(12)]) is None
    assert decide.color_param([], [], []) is None


def test_explained_is_the_share_of_variance_between_groups() -> None:
    subs = [sub(i, {"g": g}) for i, g in enumerate("aabb", 1)]
    assert decide.explained(subs, "g", [1.0, 1.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert decide.explained(subs, "g", [1.0, 3.0, 1.0, 3.0]) == pytest.approx(0.0)
    assert decide.explained(subs, "g", [1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.8)
    # nan and inf runs are left out; too few values or one group explain nothing
    assert decide.explained(subs, "g", [1.0, math.nan, 3.0, math.inf]) == 0.0
    assert decide.explained(subs, "g", [1.0, 1.0, 3.0, math.inf]) == pytest.approx(1.0)
    assert decide.explained([sub(1, {"g": 1}), sub(2, {"g": 1})], "g", [1.0, 2.0]) == 0.0


def test_values_so_large_their_squares_overflow_explain_nothing_rather_than_fail() -> None:
    subs = [sub(i, {"g": g}) for i, g in enumerate("aabb", 1)]
    assert decide.explained(subs, "g", [1e300, 1e300, -1e300, -1e300]) == 0.0
    assert decide.color_param(subs, ["g"], [1e300, 1e300, -1e300, -1e300]) == "g"


def test_run_values_are_best_or_final_values_and_none_where_missing() -> None:
    subs = [
        sub(1, {}, {"loss": 0.5}, loss=Best(0.1, 3, "min")),
        sub(2, {}, {"loss": math.nan}),
        sub(3, {}, {"loss": "diverged"}),
        sub(4, {}, {}),
    ]
    primary = decide.Primary("loss", "loss", "min")
    assert decide.run_values(subs, primary, best=True) == [0.1, None, None, None]
    assert decide.run_values(subs, primary, best=False) == [0.5, None, None, None]
    assert decide.run_values(subs, None, best=True) == [None] * 4


def test_value_key_and_json_text_are_json_compatible_for_records() -> None:
    assert decide.json_text({"b": [1, 2], "a": None}) == json.dumps({"a": None, "b": [1, 2]})
    assert decide.value_key(1) != decide.value_key(1.0) != decide.value_key("1")


@pytest.mark.parametrize(
    ("name", "goal"),
    [
        # generative models, NLP and segmentation names that had no goal (CLOSING-8's Left list)
        ("fid", "min"),
        ("val/FID", "min"),
        ("fid50k", "min"),
        ("kl", "min"),
        ("kl_div", "min"),
        ("KL/train", "min"),
        ("lpips", "min"),
        ("bpd", "min"),
        ("test_bpd", "min"),
        ("fvd", "min"),
        ("mape", "min"),
        ("ece", "min"),
        ("exact_match", "max"),
        ("em", "max"),
        ("elbo", "max"),
        ("val_elbo", "max"),
        ("chrf", "max"),
        ("meteor", "max"),
        ("cider", "max"),
        ("mcc", "max"),
        # a negated name is the other way round
        ("neg_elbo", "min"),
        ("negative_elbo", "min"),
        ("neg_loss", "max"),
        ("val_neg_elbo", "min"),
        ("mean_test_neg_mean_squared_error", "max"),  # scikit-learn's cv_results_
        # after the goal's word it names negatives (contrastive losses), not a negation
        ("loss_neg", "min"),
        ("train/loss_neg", "min"),
        ("acc_neg", "max"),
        # short names count only as whole words: not inside another word
        ("fidelity", None),
        ("weekly_visits", None),
        ("kl_weight_loss", "min"),
        # the others researchers log, already known: kept
        ("bleu", "max"),
        ("rougeL", "max"),
        ("rouge2", "max"),
        ("wer", "min"),
        ("cer", "min"),
        ("ppl", "min"),
        ("auc", "max"),
        ("miou", "max"),
        ("ms_ssim", "max"),
        ("rmse", "min"),
        ("top1", "max"),
        ("top1_err", "min"),
        ("episode_return", "max"),
        ("nll", "min"),
        ("lr", None),
    ],
)
def test_common_metric_names_get_their_goal(name: str, goal: str | None) -> None:
    from metarunlog import metrics

    assert metrics.goal_of(name) == goal


def test_a_fid_primary_ranks_the_lowest_and_says_its_goal_was_guessed_from_its_name(project: Path) -> None:
    # fid had no goal: the report ranked nothing by it, the table left its best cells empty
    subs = [
        {"params": {"lr": lr}, "status": done(), "jsonl": [{"step": 0, "fid": f, "lr_now": lr}]}
        for lr, f in ((0.1, 30.0), (0.01, 12.0))
    ]
    exp = make_exp(project, subs)
    from metarunlog import report

    rep = report.build_report(exp, project, exp.dir / "analysis")
    assert rep.primary is not None and (rep.primary.name, rep.primary.goal) == ("fid", "min")
    assert rep.basis.endswith("its goal by its name")  # a guess, and said to be one
    by_best, _ = decide.best_runs(rep.table, rep.primary)
    assert by_best is not None and by_best.value == 12.0
