"""report/table.py: which way a metric is better, and the best value of each column."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_the_aggregated_view_counts_the_runs_with_a_value_as_the_table_does(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from metarunlog import report
    from metarunlog.main import main
    from metarunlog.states import JobState

    subs = []
    for lr in (0.1, 0.01):
        for wd in (0, 1):
            for seed in (1, 2):
                spec = {"params": {"lr": lr, "wd": wd, "seed": seed}, "status": done(), "jsonl": curve(3, lr + wd)}
                if (lr, wd, seed) == (0.1, 0, 2):  # failed before it logged anything
                    spec = {"params": spec["params"], "status": done(exit_code=1, state=JobState.FAILED)}
                subs.append(spec)
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    agg = rep.contexts["table"]["aggregated"]
    assert agg.columns[:4] == ["lr", "wd", "n", "n_missing"]
    shown = [[text for text, _, _ in row[:4]] for row in agg.rows]
    capsys.readouterr()
    assert main(["table", "--summary", "both", "--aggregate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert shown == [[str(r["lr"]), str(r["wd"]), str(r["n"]), str(r["n_missing"])] for r in rows]
    assert shown[0] == ["0.1", "0", "1", "1"] and shown[1] == ["0.1", "1", "2", "0"]
    heat = next(m for k, m in rep.models.items() if k.startswith("heatmap"))
    cell = heat.renderers[0].data_source.data
    assert dict(zip(zip(cell["a"], cell["b"], strict=True), cell["n"], strict=True)) == {
        ("0.1", "0"): 1,
        ("0.1", "1"): 2,
        ("0.01", "0"): 2,
        ("0.01", "1"): 2,
    }


def test_the_table_hint_names_which_way_each_metric_is_better_and_those_without_a_goal(project: Path) -> None:
    """It said "lower is better for val_loss, val_loss_best, higher for the others", of a
    table whose other metrics were grad_norm and lr_now: no goal, nothing highlighted."""
    import re

    from metarunlog.commands.analyze import analyze
    from metarunlog.project import Project
    from tests.helpers.html import visible_text

    def rows(lr: float) -> list[dict[str, float]]:
        return [{"step": s, "val_loss": lr / (1 + s), "grad_norm": s * lr, "lr_now": lr, "acc": lr * s} for s in (0, 1)]

    exp = make_exp(project, [{"params": {"lr": lr}, "status": done(), "jsonl": rows(lr)} for lr in (0.1, 0.2)])
    html = visible_text(analyze(Project.find(project), exp.id).path.read_text())
    hint = " ".join(re.search(r"Best</span> value per metric highlighted \((.*?)\)\.", html, re.S).group(1).split())
    assert hint == (
        "lower is better for val_loss, val_loss_best; higher is better for acc, acc_best; "
        "no goal known (not highlighted) for grad_norm, lr_now"
    )
