"""run.after's batch-job lines and their record (metarunlog/after.py), run by a real bash
without Slurm; what `mrl status` makes of the record (backends/slurm.py's observe_after)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from metarunlog import after, jsonio
from metarunlog.backends import slurm
from metarunlog.backends.slurm import AfterJob, after_jobs, observe_after
from metarunlog.states import JobState


def _run_job(expdir: Path, commands: list[str]) -> tuple[int, dict[str, object]]:
    """The run.after job's lines in bash, as Slurm's job would run them; (exit code, record)."""
    record = expdir / ".mrl.slurm" / "after-007.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    script = "\n".join(after.recorded_script(expdir, commands, record)) + "\n"
    env = {**os.environ, "SLURM_JOB_ID": "4242", "SLURMD_NODENAME": "node7"}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(record.read_text())


def test_the_run_after_job_records_running_then_done_with_the_exit_code(tmp_path: Path) -> None:
    code, rec = _run_job(tmp_path, ["touch one", "touch two"])
    assert code == 0
    assert (tmp_path / "one").exists() and (tmp_path / "two").exists()  # in the experiment folder
    assert rec["state"] == "done" and rec["exitCode"] == 0
    assert rec["jobId"] == "4242" and rec["node"] == "node7" and rec["start"] and rec["end"]


def test_the_run_after_job_stops_at_the_first_failing_step_and_records_failed_with_its_code(tmp_path: Path) -> None:
    code, rec = _run_job(tmp_path, ["touch one", "exit 5", "touch never"])
    assert code == 5
    assert (tmp_path / "one").exists() and not (tmp_path / "never").exists()
    assert rec["state"] == "failed" and rec["exitCode"] == 5


def test_the_run_after_job_runs_no_step_where_the_experiment_folder_cannot_be_entered(tmp_path: Path) -> None:
    # Before: the batch job's lines had no `set -e` before the steps' `( )`, so a failed `cd`
    # (the folder not visible on the node) ran `mrl analyze` and the rest in the job's cwd.
    gone, cwd = tmp_path / "gone", tmp_path / "cwd"
    cwd.mkdir()
    script = "\n".join(after.recorded_script(gone, ["touch ran"], tmp_path / "after-001.json")) + "\n"
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert not (cwd / "ran").exists()


def test_run_after_steps_see_the_callers_pythonpath_and_mrl_in_them_is_still_this_mrl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run_here (the local backend's run.after): mrl's code root was exported to every step
    monkeypatch.setenv("PYTHONPATH", "/opt/their-lib")
    exp = SimpleNamespace(dir=tmp_path)  # run_here needs only the experiment's folder
    code = after.run_here(exp, ['echo "$PYTHONPATH" > pp.txt', "mrl --version > v.txt"])  # type: ignore[arg-type]
    assert code == 0
    assert (tmp_path / "pp.txt").read_text() == "/opt/their-lib\n"
    assert (tmp_path / "v.txt").read_text().strip()


def test_a_record_that_cannot_be_written_never_fails_the_job(tmp_path: Path) -> None:
    record = tmp_path / "no-such-dir" / "after-001.json"
    assert after.main([str(record), "start"]) == 0
    assert not record.exists()
    assert after.main([str(record)]) == 2  # a usage error is one


def _log_submission(expdir: Path, *lines: dict[str, object]) -> None:
    d = expdir / slurm.SLURM_DIR
    d.mkdir(parents=True, exist_ok=True)
    (d / slurm.SUBMISSIONS).write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_after_jobs_reads_every_run_and_the_script_of_lines_from_earlier_versions(tmp_path: Path) -> None:
    _log_submission(
        tmp_path,
        {"jobId": "10", "script": "submit-001.sh", "after": "12"},
        {"jobId": "11", "script": "submit-002.sh", "after": "12"},  # one run, two arrays (no afterScript yet)
        {"jobId": "20", "script": "submit-003.sh"},
        {"jobId": "30", "script": "submit-004.sh", "after": "31", "afterScript": "after-004.sh"},
    )
    assert after_jobs(tmp_path) == [AfterJob("12", "after-002.sh"), AfterJob("31", "after-004.sh")]


def test_a_finished_record_is_shown_without_asking_slurm(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".mrl.slurm").mkdir()
    jsonio.write_json(tmp_path / ".mrl.slurm" / "after-004.json", {"jobId": "31", "state": "failed", "exitCode": 3})
    (tmp_path / ".mrl.slurm" / "after-31.out").write_text("what its steps printed\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no scontrol: it must not be needed
    seen = observe_after(tmp_path, AfterJob("31", "after-004.sh"))
    assert seen.state is JobState.FAILED and seen.exit_code == 3
    assert seen.describe() == "run.after: Slurm job 31: failed (exit code 3); its output: .mrl.slurm/after-31.out"


def test_an_unfinished_record_without_slurm_says_so_and_keeps_its_state(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".mrl.slurm").mkdir()
    jsonio.write_json(tmp_path / ".mrl.slurm" / "after-004.json", {"jobId": "31", "state": "running"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    seen = observe_after(tmp_path, AfterJob("31", "after-004.sh"))
    assert seen.state is JobState.RUNNING and "could not ask Slurm" in seen.note


@pytest.mark.parametrize("name", ["subExpId", "x", "params"])
def test_an_undefined_variable_in_run_after_names_the_variables_run_after_has(project: Path, name: str) -> None:
    # run.after is the experiment's, not a sub-experiment's: the message listed subExpId,
    # subExpNum, subExpDir, resource and params as its variables ("'subExpId' is undefined;
    # the variables are ... subExpId ...")
    from tests.backends.contract import make_experiment
    from tests.helpers.repo import run_mrl

    exp = make_experiment(project, [{"x": 1}], "true", after=f"echo {{{{ {name} }}}}")
    proc = run_mrl("run", str(exp.id))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrl: error: run.after in "), proc.stderr
    assert lines[0].endswith(f"'{name}' is undefined; the variables are codeDir, expDir, expId"), lines[0]
