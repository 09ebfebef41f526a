"""report/table.py: which way a metric is better, and the best value of each column."""

from __future__ import annotations

from pathlib import Path

from metarunlog import results
from metarunlog.report.table import best_values, metric_goal
from tests.helpers.records import curve, done, make_exp


def test_a_metric_goal_comes_from_its_name_unless_mrl_analyze_py_says_otherwise() -> None:
    assert metric_goal("val_loss", {}) == "min" and metric_goal("test_acc", {}) == "max"
    assert metric_goal("bleu", {"bleu": "min"}) == "min"
    assert metric_goal("step", {}) is None and metric_goal("widgets", {}) is None


def test_the_best_value_of_a_column_needs_a_goal_and_two_different_numbers(project: Path) -> None:
    subs = [{"params": {"lr": lr}, "status": done(), "jsonl": curve(5, lr)} for lr in (0.1, 0.01, 0.5)]
    subs[0]["metrics"] = {"test_acc": 0.9}
    tab = results.table(make_exp(project, subs))
    best = best_values(tab, {"loss": "min", "acc": "max", "test_acc": "max", "lr": "max"})
    assert best == {"loss": 0.2 + 0.01}  # acc: all equal; test_acc: one run; lr: a param
