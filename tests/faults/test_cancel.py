"""`mrl cancel` reaches the runner; retries and SIGKILLed steps never lie (issue 10,
"State that lies")."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from metarunlog.backends.base import RunOptions
from metarunlog.backends.local import LocalBackend
from metarunlog.execute import ExecOptions, execute
from metarunlog.states import JobState
from tests.backends.contract import jobs_for, make_experiment
from tests.helpers.processes import alive, start_mrl, statuses, wait_for
from tests.helpers.repo import run_mrl


def test_cancel_during_a_one_worker_run_of_four_stops_the_runner_and_the_queued_never_start(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 5)], "echo $$ > pid.txt; sleep 60")
    runner = start_mrl("run", "-j", "1", cwd=project)
    first = exp.dir / "001" / "pid.txt"
    wait_for(lambda: first.exists() and first.read_text().strip(), what="the first job to start")
    proc = run_mrl("cancel", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "001: cancelled", proc.stdout
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == ["001", "002", "003", "004"]
    assert all(": cancelled" in line for line in proc.stdout.splitlines()), proc.stdout
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, out + err  # as a cancelled run exits
    assert "Traceback" not in err
    assert not alive(int(first.read_text()))
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled"] * 4
    for name in ("002", "003", "004"):  # never started
        assert not (exp.dir / name / "run.log").exists() and not (exp.dir / name / "pid.txt").exists()
        assert statuses(exp.dir)[name]["attempts"] == 0


def test_a_record_between_retries_says_running_never_failed(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "exit 3")
    sub = exp.sub_experiments()[0]
    written = []
    real = type(sub).write_status

    def spy(self, status, *, durable=True):  # type: ignore[no-untyped-def]
        written.append(status.state.value)
        real(self, status, durable=durable)

    type(sub).write_status = spy  # type: ignore[method-assign]
    try:
        final = execute(sub, ExecOptions(retries=2))
    finally:
        type(sub).write_status = real  # type: ignore[method-assign]
    assert final.state is JobState.FAILED and final.attempts == 3 and final.exit_code == 3
    assert written[-1] == "failed" and "failed" not in written[:-1], written


def test_cancel_during_a_retry_sees_it_running_and_stops_the_retries(project: Path) -> None:
    # the first attempt fails at once, the second runs until cancelled
    command = "if [ -e tried ]; then echo $$ > pid.txt; sleep 60; fi; touch tried; exit 1"
    exp = make_experiment(project, [{"x": 1}], command)
    runner = start_mrl("run", "--retries", "5", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    wait_for(lambda: pid.exists() and pid.read_text().strip(), what="the second attempt")
    assert statuses(exp.dir)["001"]["state"] == "running"
    proc = run_mrl("cancel", cwd=project)
    assert proc.stdout.strip() == "001: cancelled", proc.stdout + proc.stderr
    runner.communicate(timeout=30)
    assert runner.returncode == 130
    st = statuses(exp.dir)["001"]
    assert st["state"] == "cancelled" and st["attempts"] == 2  # never retried after the cancel


def test_a_step_ignoring_sigterm_killed_by_cancel_is_cancelled_and_never_retried(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "trap '' TERM; echo $$ > pid.txt; sleep 60 & wait; sleep 60")
    backend = LocalBackend(exp, RunOptions(jobs=1, retries=3))
    backend.cancel_grace = 0.5  # what `mrl cancel` asks of the runner, without its 10 s grace
    jobs = jobs_for(exp)
    backend.submit(jobs)
    pid = exp.dir / "001" / "pid.txt"
    try:
        wait_for(lambda: pid.exists() and pid.read_text().strip(), what="the step to start")
        wait_for(lambda: jobs[0].status is not None and jobs[0].status.pid is not None, what="its pid")
        backend.cancel(jobs)
        deadline = time.monotonic() + 30
        while backend.poll(jobs)[0].active or backend.busy:
            assert time.monotonic() < deadline, "the step was not stopped"
            backend.wait(0.05)
    finally:
        backend.close()
    st = statuses(exp.dir)["001"]
    assert st["state"] == "cancelled", st
    assert st["exitCode"] == -signal.SIGKILL and st["attempts"] == 1, st  # SIGKILLed, no retry
    assert not alive(int(pid.read_text()))


def test_a_failed_one_cancelled_before_its_rerun_started_shows_no_earlier_exit_code_or_duration(project: Path) -> None:
    # `mrl run` queued 002 (failed before: exit 3, 0.0s) after 001; a cancel reached it in the
    # queue: the run printed "002 cancelled in 0.0s (exit code 3)" and status showed
    # cancelled with exit 3, as if this run had started it and it had exited 3
    command = "if [ {{x}} = 2 ]; then exit 3; fi; echo $$ > pid.txt; sleep 60"
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], command)
    first = run_mrl("run", f"{exp.id}/2", cwd=project)
    assert first.returncode == 1 and statuses(exp.dir)["002"]["exitCode"] == 3
    runner = start_mrl("run", "-j", "1", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    wait_for(lambda: pid.exists() and pid.read_text().strip(), what="001 to start")
    assert run_mrl("cancel", cwd=project).returncode == 0
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, out + err
    line = next(line for line in out.splitlines() if " 002 " in line)
    assert "exit code" not in line and " in " not in line, line
    st = statuses(exp.dir)["002"]
    assert st["state"] == "cancelled" and st["exitCode"] is None and st["duration"] is None, st
    assert st["attempts"] == 1  # the attempt that failed: this run never started one
    rows = {r["name"]: r for r in json.loads(run_mrl("status", "--json", cwd=project).stdout)}
    assert rows["002"]["state"] == "cancelled" and rows["002"]["exitCode"] is None


def test_done_ones_a_force_rerun_never_started_are_not_reported_done_by_this_run(project: Path) -> None:
    # `mrl run --force` of three done ones, `mrl cancel` while the first runs: the queued two
    # stay done (they were, before), but the run printed "[2/3] 002 done in 0.0s" and
    # "interrupted in 1.2s: 2 done, 1 cancelled", as if it had run them
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "echo $$ > pid.txt; sleep {{x}}0")
    for sub in exp.sub_experiments():
        (sub.dir / ".mrl.status").write_text(
            json.dumps({"state": "done", "exitCode": 0, "attempts": 1, "duration": 7.0})
        )
    runner = start_mrl("run", "--force", "-j", "1", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    wait_for(lambda: pid.exists() and pid.read_text().strip(), what="001 to start")
    assert run_mrl("cancel", cwd=project).returncode == 0
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, out + err
    lines = out.splitlines()
    assert not [line for line in lines if " 002 done" in line or " 003 done" in line], out
    for name in ("002", "003"):
        assert any(f"{name} not run: cancelled before it started (its record says done)" in line for line in lines), out
    assert lines[-1].endswith(": 1 cancelled; 2 never started again (their records say done)"), out
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled", "done", "done"]
