"""A failed `--force` rerun (or a retry) never shows an earlier attempt's metrics as its
own: they move to SUBDIR/.mrl.attempts/<N>/ when an attempt starts from its first step
(issue 10, "Silent wrong results")."""

from __future__ import annotations

import json
from pathlib import Path

from metarunlog import results
from metarunlog.project import Project
from tests.backends.contract import make_experiment
from tests.helpers.repo import run_mrl

# First run: writes metrics (and prints them); any later run fails without writing any.
COMMAND = (
    'if [ -e once ]; then exit 1; fi; touch once; v=0.9; echo "acc=$v"; '
    'echo \'{"acc": 0.9}\' > metrics.json; echo \'{"step": 1, "loss": 2}\' > metrics.jsonl'
)


def _row(project: Path) -> dict:
    exp = Project.find(project).load_exp("last")
    return results.table(exp).rows[0]


def test_a_failed_force_rerun_does_not_show_the_previous_attempts_metrics(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], COMMAND)
    assert run_mrl("run", cwd=project).returncode == 0
    assert _row(project)["acc"] == 0.9
    assert run_mrl("run", "--force", cwd=project).returncode == 1
    row = _row(project)
    assert row["state"] == "failed" and row.get("acc") is None, row
    sub = exp.dir / "001"
    assert json.loads((sub / ".mrl.attempts" / "1" / "metrics.json").read_text()) == {"acc": 0.9}  # kept
    assert (sub / ".mrl.attempts" / "1" / "metrics.jsonl").exists()
    assert not (sub / "metrics.json").exists()
    table = run_mrl("table", cwd=project)
    assert "0.9" not in table.stdout, table.stdout


def test_run_log_metrics_of_an_earlier_attempt_are_not_this_attempts(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], COMMAND)
    (exp.dir / ".mrl.cfg").write_text(
        json.dumps({"run": {"command": COMMAND}, "metrics": {"patterns": ["acc=(?P<val_acc>[0-9.]+)"]}})
    )
    assert run_mrl("run", cwd=project).returncode == 0
    assert _row(project)["val_acc"] == 0.9
    assert run_mrl("run", "--force", cwd=project).returncode == 1
    assert _row(project).get("val_acc") is None
    log = (exp.dir / "001" / "run.log").read_text()
    assert log.count("==== mrl attempt") == 2  # run.log keeps both attempts


def test_a_retried_failure_shows_only_the_last_attempts_metrics(project: Path) -> None:
    command = (
        "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; "
        "if [ $n = 0 ]; then echo '{\"acc\": 0.5}' > metrics.json; fi; exit 1"
    )
    exp = make_experiment(project, [{"x": 1}], command)
    assert run_mrl("run", "--retries", "1", cwd=project).returncode == 1
    assert _row(project).get("acc") is None
    assert (exp.dir / "001" / ".mrl.attempts" / "1" / "metrics.json").exists()


def test_the_attempt_header_quoting_the_command_is_not_read_as_a_metric(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo 'acc=0.9' > /dev/null")
    (exp.dir / ".mrl.cfg").write_text(
        json.dumps(
            {"run": {"command": "echo 'acc=0.9' > /dev/null"}, "metrics": {"patterns": ["acc=(?P<val_acc>[0-9.]+)"]}}
        )
    )
    assert run_mrl("run", cwd=project).returncode == 0
    assert _row(project).get("val_acc") is None
