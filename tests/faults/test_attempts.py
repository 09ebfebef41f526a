"""A failed `--force` rerun (or a retry) never shows an earlier attempt's metrics as its
own: they move to SUBDIR/.mrl.attempts/<N>/ when an attempt starts from its first step
(issue 10, "Silent wrong results")."""

from __future__ import annotations

import json
import os
from pathlib import Path

from metarunlog import results
from metarunlog.project import Project
from tests.backends.contract import make_experiment
from tests.faults.conftest import fill
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


def _metrics_where_the_record_says(exp_dir: Path) -> list[str]:
    """Each sub whose record says done but whose metrics.json is not in its folder."""
    lost = []
    for sub in sorted(p for p in exp_dir.iterdir() if p.name.isdigit()):
        record = json.loads((sub / ".mrl.status").read_text())
        if record["state"] == "done" and not (sub / "metrics.json").exists():
            lost.append(
                f"{sub.name}: done (attempt {record['attempts']}), metrics in {sorted(sub.rglob('metrics.json'))}"
            )
    return lost


def test_a_force_rerun_whose_step_never_starts_leaves_the_done_attempts_metrics_in_place(project: Path) -> None:
    # before: the metrics moved to .mrl.attempts/1/, then run.log (a FIFO) stopped the
    # attempt: the record still said done, attempt 1, with no metrics beside it
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo '{\"acc\": 0.9}' > metrics.json")
    assert run_mrl("run", cwd=project).returncode == 0
    log = exp.dir / "001" / "run.log"
    log.unlink()
    os.mkfifo(log)
    proc = run_mrl("run", "--force", cwd=project)
    assert proc.returncode == 1 and "001 not run: mrl could not record it: not a plain file" in proc.stdout, proc.stdout
    assert _metrics_where_the_record_says(exp.dir) == []
    assert _row(project)["acc"] == 0.9
    assert not list((exp.dir / "001").glob(".mrl.attempts/*/*"))


def test_a_force_rerun_on_a_full_disk_leaves_each_done_attempts_metrics_beside_its_record(
    project: Path, full_disk
) -> None:  # type: ignore[no-untyped-def]
    # before: each sub whose header line could not be written kept `done` with its metrics
    # moved away to .mrl.attempts/N/
    exp = make_experiment(project, [{"x": i} for i in range(1, 5)], "echo '{\"acc\": 0.9}' > metrics.json")
    assert run_mrl("run", cwd=project).returncode == 0
    for log in exp.dir.glob("*/run.log"):  # a full page: the next header line needs a new one
        log.write_bytes(log.read_bytes().ljust(4095, b"-") + b"\n")
    out = full_disk(project / "output", "2m")
    for left in range(0, 40960, 4096):  # the disk fills up somewhere in the run
        filler = fill(out, left)
        proc = run_mrl("run", "--force", cwd=project)
        filler.unlink()
        assert "Traceback" not in proc.stdout, proc.stdout
        assert _metrics_where_the_record_says(exp.dir) == [], (left, proc.stdout)
