"""results.py and the Python API: rows, metrics sources, states, curves, DataFrames.

`make_exp` (also used by the table, analyze and browser tests) writes sub-experiment
folders exactly as docs/design.md pins them, so these tests do not depend on `mrl run`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarunlog import api, results
from metarunlog.main import main
from metarunlog.project import Project
from metarunlog.states import JobState
from tests.helpers.records import HOST, curve, done, grid_exp, make_exp, running  # noqa: F401


def test_a_row_holds_id_varying_params_state_duration_and_last_metric_values(project: Path) -> None:
    tab = results.table(grid_exp(project))
    assert tab.columns[:5] == ["id", "lr", "wd", "state", "duration"]
    first = tab.rows[0]
    assert first["id"] == "001" and first["lr"] == 0.1 and first["state"] == "done" and first["duration"] == 10.0
    assert first["loss"] == pytest.approx(0.3) and first["acc"] == pytest.approx(0.8)
    assert "step" not in tab.columns  # a step key is the x axis, never a metric column
    assert "epochs" not in tab.columns  # the same everywhere
    assert [r["state"] for r in tab.rows] == ["done", "done", "failed", "pending"]


def test_metrics_json_and_the_last_values_of_metrics_jsonl_are_merged(project: Path) -> None:
    tab = results.table(grid_exp(project))
    assert tab.rows[1]["test_acc"] == 0.9
    assert tab.rows[1]["loss"] == pytest.approx(1 / 5 + 0.01)  # the rows are not hidden by the summary


def test_the_summary_wins_per_key_over_the_last_row(project: Path) -> None:
    exp = make_exp(project, [{"params": {}, "jsonl": [{"acc": 0.5, "loss": 2}], "metrics": {"acc": 0.7}}])
    [row] = results.table(exp).rows
    assert (row["acc"], row["loss"]) == (0.7, 2)


def test_all_params_adds_the_constant_ones_after_the_varying_ones(project: Path) -> None:
    tab = results.table(grid_exp(project), all_params=True)
    assert tab.params == ["lr", "wd", "epochs"]


def test_a_half_written_last_line_of_metrics_jsonl_is_ignored_while_the_run_goes_on(project: Path) -> None:
    exp = make_exp(project, [{"params": {"x": 1}, "jsonl": '{"step": 1, "loss": 0.5}\n{"step": 2, "lo'}])
    assert results.table(exp).rows[0]["loss"] == 0.5


def test_keys_that_appear_only_in_early_lines_keep_their_last_value(project: Path) -> None:
    lines = [{"epoch": 0, "lr_now": 0.1}, {"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]
    exp = make_exp(project, [{"params": {"x": 1}, "jsonl": lines}])
    row = results.table(exp).rows[0]
    assert (row["lr_now"], row["loss"]) == (0.1, 1.0) and "epoch" not in row


def test_a_running_record_whose_process_is_gone_is_shown_stale(project: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    exp = make_exp(
        project,
        [{"params": {"x": 1}, "status": running(gone.pid)}, {"params": {"x": 2}, "status": running(os.getpid())}],
    )  # this process lives
    states = [r["state"] for r in results.table(exp).rows]
    assert states == ["stale", "running"]
    assert results.table(exp).rows[1]["duration"] > 0  # elapsed so far


def test_a_user_metrics_function_adds_columns(project: Path) -> None:
    exp = grid_exp(project)
    (project / "mrl_analyze.py").write_text(
        "import os\ndef metrics(subExpDir):\n    return {'folder': os.path.basename(subExpDir)}\n"
    )
    tab = results.table(exp)
    assert [r["folder"] for r in tab.rows] == ["001", "002", "003", "004"]
    assert tab.errors == []


@pytest.mark.parametrize("returned", ["{1: 0.5, 'ok': 1}", "[{'step': 1, None: 0.5}]"], ids=["summary", "rows"])
def test_a_user_metrics_function_naming_a_metric_by_no_str_is_an_error_of_that_folder(
    project: Path, returned: str
) -> None:
    exp = grid_exp(project)
    (project / "mrl_analyze.py").write_text(f"def metrics(d):\n    return {returned}\n")
    tab = results.table(exp)  # an AttributeError deep in the table before
    assert len(tab.rows) == 4 and len(tab.errors) == 4
    assert "returned the key" in tab.errors[0] and "for 001: a metric's name must be a str" in tab.errors[0]


def test_a_failing_user_metrics_function_is_reported_and_the_rest_still_read(project: Path) -> None:
    exp = grid_exp(project)
    (project / "mrl_analyze.py").write_text(
        "import os\ndef metrics(d):\n    if d.endswith('003'):\n        raise KeyError('boom')\n    return {'ok': 1}\n"
    )
    tab = results.table(exp)
    assert [r.get("ok") for r in tab.rows] == [1, 1, None, 1]
    assert len(tab.errors) == 1 and "003" in tab.errors[0] and "KeyError" in tab.errors[0]
    assert "mrl_analyze.py line 4" in tab.errors[0]


def test_a_metric_named_like_a_param_gets_a_prefix(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "jsonl": [{"lr": 0.05, "state": 3}]}, {"params": {"lr": 0.2}}])
    tab = results.table(exp)
    assert tab.metrics == ["metric.lr", "metric.state"]
    assert tab.rows[0]["lr"] == 0.1 and tab.rows[0]["metric.lr"] == 0.05 and tab.rows[0]["state"] == "pending"


def test_a_corrupt_metrics_json_is_named_and_the_other_rows_are_kept(project: Path) -> None:
    exp = grid_exp(project)
    (exp.dir / "001" / "metrics.json").write_text("{nope")
    tab = results.table(exp)
    assert len(tab.rows) == 4
    assert any("001/metrics.json" in e for e in tab.errors)


def test_an_experiment_without_sub_experiments_has_an_empty_table(project: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        main(["new", "-cp", "no", "empty"])
    tab = results.table(Project.find(project).load_exp("last"))
    assert tab.rows == [] and tab.columns == ["id", "state", "duration"]


def test_a_single_sub_experiment_shows_all_its_params(project: Path) -> None:
    exp = make_exp(project, [{"params": {"a": 1, "b": 2}}])
    assert results.table(exp).params == ["a", "b"]


def test_sorting_puts_missing_values_last_both_ways(project: Path) -> None:
    tab = results.table(grid_exp(project))
    tab.sort("duration")
    assert [r["id"] for r in tab.rows] == ["001", "003", "002", "004"]  # 10 s, 12.5 s, 20 s, never ran
    tab.sort("duration", reverse=True)
    assert [r["id"] for r in tab.rows] == ["002", "003", "001", "004"]


def test_sorting_puts_numbers_before_text_both_ways() -> None:
    """A metric with an "n/a" here and there: descending puts the largest number first, not
    the text (the whole sort key was reversed, kind included)."""
    rows = [{"id": i, "acc": v} for i, v in enumerate([0.5, "n/a", 0.9, None, True, 0.7, "diverged"])]
    tab = results.Table(params=[], metrics=["acc"], rows=[dict(r) for r in rows])
    tab.sort("acc", reverse=True)
    assert [r["acc"] for r in tab.rows] == [0.9, 0.7, 0.5, True, "n/a", "diverged", None]
    tab.sort("acc")
    assert [r["acc"] for r in tab.rows] == [0.5, 0.7, 0.9, True, "diverged", "n/a", None]


def test_curves_use_step_as_x_else_the_line_number_and_skip_non_numbers() -> None:
    lines = [{"step": 10, "loss": 1.0, "tag": "a"}, {"step": 20, "loss": 0.5, "ok": True}, {"val": 3}]
    c = results.curves(lines)
    assert c["loss"] == ("step", [10.0, 20.0], [1.0, 0.5])
    assert c["val"] == ("line", [2.0], [3.0])
    assert "tag" not in c and "ok" not in c and "step" not in c


def test_curves_of_lines_with_different_x_keys_use_each_line_s_own() -> None:
    lines = [{"step": 1, "loss": 1.0}, {"epoch": 0, "val": 2.0}, {"step": 2, "loss": 0.5}, {"other": 1}]
    c = results.curves(lines)
    assert c["loss"] == ("step", [1.0, 2.0], [1.0, 0.5])
    assert c["val"] == ("epoch", [0.0], [2.0])
    assert c["other"] == ("line", [3.0], [1.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(["a", "b", "step"]), st.integers() | st.floats(allow_nan=False)),
            st.sampled_from(["", "{", "[1, 2]", "garbage", "1, 2", '{"a": 1}, {"b": 2}']),
        ),
        max_size=20,
    )
)
def test_reading_metrics_jsonl_equals_reading_it_line_by_line(tmp_path_factory: Any, items: list[Any]) -> None:
    path = tmp_path_factory.mktemp("m") / "metrics.jsonl"
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in items))
    expected = []
    for line in path.read_text().splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict):
            expected.append(d)
    assert results.read_jsonl(path) == expected


# -- the Python API ---------------------------------------------------------------------------


def test_load_table_is_a_dataframe_indexed_by_sub_experiment_id(project: Path) -> None:
    exp = grid_exp(project)
    df = api.load_table(exp.id, basedir=project)
    assert list(df.index) == ["001", "002", "003", "004"]
    assert list(df.columns[:3]) == ["lr", "wd", "state"]
    assert df.loc["002", "test_acc"] == 0.9
    assert df["duration"].dtype.kind == "f" and math.isnan(df.loc["004", "duration"])


def test_load_table_finds_the_project_from_an_experiment_path(project: Path, monkeypatch: Any, tmp_path: Path) -> None:
    exp = grid_exp(project)
    monkeypatch.chdir(tmp_path)
    assert len(api.load_table(exp.dir)) == 4
    assert list(api.load_table(exp.dir, all_params=True).columns[:3]) == ["lr", "wd", "epochs"]


def test_load_metrics_has_a_row_per_metrics_jsonl_line_with_the_varying_params(project: Path) -> None:
    grid_exp(project)
    df = api.load_metrics(basedir=project, with_params=True)
    assert len(df) == 10
    assert list(df.columns[:4]) == ["id", "line", "lr", "wd"]
    assert list(df[df.id == "002"]["line"]) == [0, 1, 2, 3, 4]


def test_load_params_is_dparams_indexed_by_folder_name(project: Path) -> None:
    grid_exp(project)
    df = api.load_params(basedir=project)
    assert list(df.index) == ["001", "002", "003", "004"] and list(df.columns) == ["lr", "wd", "epochs"]


def test_load_table_raises_when_a_user_metrics_function_fails(project: Path) -> None:
    from metarunlog.errors import MrlError

    grid_exp(project)
    (project / "mrl_analyze.py").write_text("def metrics(d):\n    raise ValueError('nope')\n")
    with pytest.raises(MrlError, match="ValueError: nope"):
        api.load_table(basedir=project)
    assert len(api.load_results(basedir=project).errors) == 4


def test_states_are_the_observed_ones(project: Path) -> None:
    exp = grid_exp(project)
    subs, _ = results.collect(exp)
    assert [s.state for s in subs] == [JobState.DONE, JobState.DONE, JobState.FAILED, JobState.PENDING]


def test_a_running_ones_duration_counts_from_the_exact_start_not_its_whole_second() -> None:
    # `start` is written in whole seconds, cut down: the table's duration of a running one
    # read up to 1 s high (0.75 s here) until the attempt ended
    import datetime
    import time

    from metarunlog.records import Status
    from metarunlog.results import duration_of
    from metarunlog.states import JobState

    exact = math.floor(time.time()) - 5 + 0.75
    start = datetime.datetime.fromtimestamp(exact).astimezone().isoformat(timespec="seconds")
    status = Status(state=JobState.RUNNING, start=start, start_epoch=exact)
    ran = duration_of(status, JobState.RUNNING)
    assert ran is not None and 4.0 < ran <= time.time() - exact
    # a startEpoch that does not agree with start (a writer that changed one alone): start counts
    assert duration_of(Status(state=JobState.RUNNING, start=start, start_epoch=exact - 60), JobState.RUNNING) < 60
    assert Status.from_json(status.to_json()).start_epoch == exact
