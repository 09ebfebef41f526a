"""Never signal a process mrl cannot prove is the recorded step; one unparsable record
never blocks the others (issue 10, "Harm outside mrl", "Jobs that cannot be run")."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from metarunlog.procs import start_id
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.processes import alive, start_mrl, statuses, wait_for
from tests.helpers.repo import run_mrl


@pytest.mark.parametrize("recorded_start", [None, "another-boot:12345"])
def test_a_stranger_whose_pid_a_running_record_holds_is_stale_and_never_signalled(
    project: Path, recorded_start: str | None
) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        sub = exp.sub_experiments()[0]
        record = {
            "state": "running",
            "attempts": 1,
            "host": socket.gethostname(),
            "backend": "local",
            "pid": stranger.pid,
            "runnerPid": stranger.pid,
        }
        if recorded_start:
            record.update(pidStart=recorded_start, runnerStart=recorded_start)
        sub.status_path.write_text(json.dumps(record))
        rows = json.loads(run_mrl("status", "--json", cwd=project, check=True).stdout)
        assert rows[0]["state"] == "stale"
        proc = run_mrl("cancel", cwd=project)
        assert "Traceback" not in proc.stderr
        assert stranger.poll() is None and alive(stranger.pid)  # left alone
        assert sub.read_status().state is JobState.CANCELLED  # the record was stale: now it says so
    finally:
        stranger.kill()
        stranger.wait()


def test_the_recorded_step_itself_is_proven_and_cancelled(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    sub = exp.sub_experiments()[0]
    # A step as mrl starts one: its own session, MRL_SUBEXP_DIR naming its folder.
    step = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, "MRL_SUBEXP_DIR": str(sub.dir)})
    try:
        sub.write_status(
            Status(JobState.RUNNING, attempts=1, host=socket.gethostname(), pid=step.pid, pid_start=start_id(step.pid))
        )
        _status_shows_it_running_and_cancel_stops_it(project, step)
    finally:
        if step.poll() is None:
            step.kill()


def test_one_unparsable_status_is_reported_by_path_and_the_others_still_work(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3)], "echo ran > out.txt")
    bad = exp.dir / "002" / ".mrl.status"
    bad.write_text('{"state": "runn')
    status = run_mrl("status", cwd=project)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert str(bad) in status.stdout and "003" in status.stdout
    run = run_mrl("run", cwd=project)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert str(bad) in run.stderr
    assert (exp.dir / "001" / "out.txt").exists() and (exp.dir / "003" / "out.txt").exists()
    assert not (exp.dir / "002" / "out.txt").exists()
    assert bad.read_text() == '{"state": "runn'  # left for the user to look at
    cancel = run_mrl("cancel", cwd=project)
    assert cancel.returncode == 0 and str(bad) in cancel.stderr, cancel.stdout + cancel.stderr
    assert "Traceback" not in cancel.stderr


def test_cancel_still_stops_the_others_when_one_record_is_unparsable(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    (exp.dir / "001" / ".mrl.status").write_text("not json")
    sub = exp.sub_experiments()[1]
    step = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, "MRL_SUBEXP_DIR": str(sub.dir)})
    try:
        sub.write_status(
            Status(JobState.RUNNING, attempts=1, host=socket.gethostname(), pid=step.pid, pid_start=start_id(step.pid))
        )
        proc = run_mrl("cancel", cwd=project)
        assert "002: cancelled" in proc.stdout, proc.stdout + proc.stderr
        assert step.wait(timeout=15) == -signal.SIGTERM
    finally:
        if step.poll() is None:
            os.kill(step.pid, signal.SIGKILL)


def test_a_step_of_an_older_mrl_without_start_ids_is_proven_by_its_environment(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    sub = exp.sub_experiments()[0]
    step = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, "MRL_SUBEXP_DIR": str(sub.dir)})
    try:
        sub.status_path.write_text(
            json.dumps(
                {"state": "running", "attempts": 1, "host": socket.gethostname(), "backend": "local", "pid": step.pid}
            )
        )
        _status_shows_it_running_and_cancel_stops_it(project, step)
    finally:
        if step.poll() is None:
            step.kill()


def _status_shows_it_running_and_cancel_stops_it(project: Path, step: subprocess.Popen[bytes]) -> None:
    rows = json.loads(run_mrl("status", "--json", cwd=project, check=True).stdout)
    assert rows[0]["state"] == "running"
    assert run_mrl("cancel", cwd=project).stdout.strip() == "001: cancelled"
    assert step.wait(timeout=15) == -signal.SIGTERM


# A step that stops its runner once its own pid is recorded, then ends: the runner lives
# (stopped) and still holds the sub-experiment, but no step of it is alive.
_STOPS_ITS_RUNNER = [
    'until grep -q "\\"pid\\": $$," .mrl.status; do sleep 0.05; done; kill -STOP $PPID',
    "true",
]


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0] == b"T"


@contextlib.contextmanager
def _copy_of_a_running_experiment(project: Path, between_steps: bool = False) -> Iterator[Path]:
    """Experiment 0001 running `sleep 60` under a live `mrl run`, and 0002 its `cp -a` copy
    made while it runs (its records name 0001's runner and step); yields 0001's folder.
    `between_steps`: the copy is made when 0001's runner lives but none of its steps does."""
    exp = make_experiment(project, [{"x": 1}], _STOPS_ITS_RUNNER if between_steps else "sleep 60")
    runner = start_mrl("run", "1", cwd=project)
    try:
        wait_for(lambda: statuses(exp.dir).get("001", {}).get("pidStart"), what="the step's pid in its record")
        if between_steps:
            wait_for(lambda: _stopped(runner.pid), what="the runner stopped by its first step")
        copy = exp.dir.parent / "0002"
        shutil.copytree(exp.dir, copy, symlinks=True)
        record = json.loads((copy / ".mrl").read_text())
        (copy / ".mrl").write_text(json.dumps({**record, "expId": 2}))
        yield exp.dir
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        os.killpg(runner.pid, signal.SIGCONT)
        runner.communicate(timeout=60)


def test_cancel_of_a_copy_of_a_running_experiment_never_signals_the_originals_step(project: Path) -> None:
    """`cp -a output/0001 output/0002` (a backup, a variant to edit) while 0001 runs copies
    its running records, with the pid and start id of 0001's live step: that step is proven
    the recorded process, but it is not the step of the copy's sub-experiment."""
    with _copy_of_a_running_experiment(project) as original:
        step = statuses(original)["001"]["pid"]
        cancel = run_mrl("cancel", "2", cwd=project)
        assert "Traceback" not in cancel.stderr, cancel.stderr
        assert alive(step), f"mrl cancel 2 killed experiment 0001's step: {cancel.stdout}{cancel.stderr}"
        assert statuses(original)["001"]["state"] == "running"


def test_a_copy_of_a_running_experiment_does_not_show_the_originals_step_as_its_own(project: Path) -> None:
    """The copy's records name 0001's live runner and step: `mrl status 2` said running,
    though nothing runs the copy's sub-experiment (its step's MRL_SUBEXP_DIR is 0001's)."""

    def state(exp_id: str) -> str:
        return json.loads(run_mrl("status", exp_id, "--json", cwd=project).stdout)[0]["state"]

    with _copy_of_a_running_experiment(project):
        assert state("1") == "running"
        assert state("2") == "stale"


def test_a_copy_made_between_two_steps_of_the_original_is_not_running(project: Path) -> None:
    """The copy's records name 0001's live runner and a step that has ended: the runner
    holds 0001's sub-experiment (its .mrl.lock), not the copy's, which nothing runs."""

    def state(exp_id: str) -> str:
        return json.loads(run_mrl("status", exp_id, "--json", cwd=project).stdout)[0]["state"]

    with _copy_of_a_running_experiment(project, between_steps=True) as original:
        assert state("1") == "running"
        assert state("2") == "stale"
        cancel = run_mrl("cancel", "2", cwd=project)
        assert "Traceback" not in cancel.stderr, cancel.stderr
        assert state("2") == "cancelled", cancel.stdout + cancel.stderr
        assert statuses(original)["001"]["state"] == "running"  # the original is left alone


def _fake_slurm(tmp_path: Path, body: str | None = None) -> tuple[dict[str, str], Path]:
    """squeue, sacct, scancel and scontrol on PATH that run `body` (default: append their
    argv to the log): (the env putting them first, the log)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "slurm-argv"
    bin_dir.mkdir()
    for tool in ("squeue", "sacct", "scancel", "scontrol"):
        line = body or f'echo {tool} "$@" >> {log}'
        (bin_dir / tool).write_text(f"#!/bin/sh\n{line}\n")
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def test_a_slurm_record_whose_job_id_is_no_job_id_never_reaches_squeue_or_scancel(
    project: Path, tmp_path: Path
) -> None:
    # before: `"jobId": "--user=root"` (a hand-edited or hostile record on a shared file
    # system) made `mrl cancel` run `scancel --user=root`: every job of that user cancelled
    env, log = _fake_slurm(tmp_path)
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "true")
    ids = ["--user=root", "-A", "4242_1"]
    for sub, job_id in zip(exp.sub_experiments(), ids, strict=True):
        sub.write_status(Status(JobState.RUNNING, backend="slurm", job_id=job_id, attempts=1, host="elsewhere"))
    for command in ("status", "cancel"):
        proc = run_mrl(command, cwd=project, env=env)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert not [c for c in calls if "--user=root" in c or "-A" in c.split(" ")], calls
    assert "scancel 4242_1" in calls, calls  # the record that holds a job id is still cancelled


def test_a_slurm_run_after_job_id_that_is_no_job_id_never_reaches_scontrol_or_sacct(
    project: Path, tmp_path: Path
) -> None:
    # submissions.jsonl's `"after": "--user=root"` (hand-edited, a shared file system) went
    # to `scontrol show job` and `sacct -j` as an option; only job ids reach Slurm's tools
    env, log = _fake_slurm(tmp_path)
    exp = make_experiment(project, [{"x": 1}], "true")
    for sub in exp.sub_experiments():
        sub.write_status(Status(JobState.RUNNING, backend="slurm", job_id="4242_1", attempts=1, host="elsewhere"))
    (exp.dir / ".mrl.slurm").mkdir()
    line = {"job": "4242", "script": "submit-001.sh", "after": "--user=root", "afterScript": "after-001.sh"}
    (exp.dir / ".mrl.slurm" / "submissions.jsonl").write_text(json.dumps(line) + "\n")
    for command in ("status", "cancel"):
        proc = run_mrl(command, cwd=project, env=env)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert not [c for c in calls if "--user=root" in c], calls


def test_a_scontrol_answer_without_a_job_state_records_no_verdict_of_the_run_after_job(
    project: Path, tmp_path: Path
) -> None:
    # an answer that names no JobState (a site's wrapper, a cut reply) is no word of Slurm's:
    # before, it read `failed`, was written into the run.after job's record as Slurm's
    # verdict, and its empty state was an IndexError traceback
    env, _ = _fake_slurm(tmp_path, "exit 0")
    exp = make_experiment(project, [{"x": 1}], "true")
    for sub in exp.sub_experiments():
        sub.write_status(Status(JobState.DONE, backend="slurm", job_id="4242_1", attempts=1, host="elsewhere"))
    (exp.dir / ".mrl.slurm").mkdir()
    line = {"job": "4242", "script": "submit-001.sh", "after": "4243", "afterScript": "after-001.sh"}
    (exp.dir / ".mrl.slurm" / "submissions.jsonl").write_text(json.dumps(line) + "\n")
    proc = run_mrl("status", cwd=project, env=env)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert not (exp.dir / ".mrl.slurm" / "after-001.json").exists()
