"""The Slurm backend: script generation and state merging (no cluster), then Slurm-only
behaviour against a real single-node Slurm (the `slurm` fixture of conftest.py).

The behaviour both backends share (same experiment, same results and records) is in
tests/backends/contract.py, run against Slurm by test_contract_slurm.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from metarunlog.backends import slurm
from metarunlog.backends.base import Job, RunOptions
from metarunlog.backends.slurm import SlurmBackend, SlurmOptions, SlurmRunOptions, TaskInfo, array_spec, merged_state
from metarunlog.experiment import Experiment
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import jobs_for, make_experiment, run_to_end
from tests.helpers.repo import run_mrl

# -- no cluster needed ----------------------------------------------------------------------


def test_array_spec_compresses_consecutive_ids_into_ranges_and_adds_the_throttle() -> None:
    assert array_spec([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    assert array_spec([4]) == "4"
    assert array_spec([3, 1, 2], max_parallel=2) == "1-3%2"


def test_sbatch_lines_come_from_the_config_then_extra_lines_then_slurm_opt() -> None:
    cfg = {
        "partition": "gpu",
        "time": 30,
        "mem": "4G",
        "cpus_per_task": 2,
        "gpus": 1,
        "account": None,
        "qos": "",
        "extra": ["--constraint=a100", "#SBATCH --exclusive"],
        "max_parallel": 3,
    }
    opts = SlurmOptions.from_config(cfg, ["--partition=debug"])
    assert opts.sbatch_lines() == [
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --mem=4G",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --gpus=1",
        "#SBATCH --constraint=a100",
        "#SBATCH --exclusive",
        "#SBATCH --partition=debug",  # later lines win in sbatch
    ]
    assert opts.max_parallel == 3
    assert SlurmOptions.from_config(cfg, [], max_parallel=5).max_parallel == 5


def test_an_option_that_is_not_an_option_is_refused_before_anything_is_submitted() -> None:
    with pytest.raises(slurm.SlurmError, match="must start with '-'"):
        SlurmOptions.from_config({}, ["partition=gpu"]).sbatch_lines()


def test_the_script_runs_each_array_task_through_the_same_mrl_and_interpreter(tmp_path: Path) -> None:
    import sys

    import metarunlog

    head = slurm.ScriptHead(tmp_path, "0003", max_parallel=2)
    plan = tmp_path / ".mrl.slurm" / "submit-001.json"
    text = slurm.render_script(head, slurm.ArrayPlan(("#SBATCH --mem=1G",), [[1], [2], [4]]), plan)
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-2%2\n" in text  # indices into the plan, not sub-experiment ids
    assert "#SBATCH --mem=1G\n" in text
    assert f"#SBATCH --output={tmp_path}/.mrl.slurm/slurm-%A_%a.out" in text
    assert (
        f"{sys.executable} -m metarunlog.backends.task {tmp_path} $SLURM_ARRAY_TASK_ID --backend slurm --plan {plan}"
    ) in text
    assert str(Path(metarunlog.__file__).resolve().parent.parent) in text


def test_scripts_are_numbered_and_never_overwritten(tmp_path: Path) -> None:
    a = slurm.write_script(tmp_path, "one\n")
    b = slurm.write_script(tmp_path, "two\n")
    assert (a.name, b.name) == ("submit-001.sh", "submit-002.sh")
    assert a.read_text() == "one\n"


@pytest.mark.parametrize(
    ("recorded", "scheduler", "shown"),
    [
        ("queued", None, "stale"),  # the scheduler forgot the job
        ("running", None, "stale"),
        ("done", None, "done"),
        ("queued", "PENDING", "queued"),
        ("queued", "RUNNING", "running"),
        ("running", "RUNNING", "running"),
        ("done", "COMPLETING", "done"),
        ("failed", "COMPLETING", "running"),  # until Slurm says why (oom?)
        ("cancelled", "COMPLETING", "running"),  # a time limit? wait for Slurm's verdict (issue 10)
        ("cancelled", "RUNNING", "running"),
        ("cancelled", "TIMEOUT", "timeout"),
        ("cancelled", "CANCELLED by 0", "cancelled"),
        ("running", "CANCELLED by 0", "cancelled"),  # scancel behind mrl's back
        ("running", "FAILED", "failed"),
        ("running", "OUT_OF_MEMORY", "oom"),
        ("queued", "NODE_FAIL", "node_fail"),
        ("running", "COMPLETED", "stale"),  # ended without writing its end
        ("failed", "FAILED", "failed"),
    ],
)
def test_merged_state_combines_the_record_with_what_slurm_says(
    recorded: str, scheduler: str | None, shown: str
) -> None:
    info = None if scheduler is None else TaskInfo("12_3", scheduler)
    assert merged_state(Status(JobState(recorded), backend="slurm", job_id="12_3"), info) is JobState(shown)


@pytest.mark.parametrize(
    ("recorded", "scheduler", "shown"),
    [
        # its task got SIGTERM (a time limit, a requeue): execute wrote `cancelled` a moment
        # before the task's own word (`timeout`, requeued): shown as a cancel nobody asked for
        ("cancelled", "RUNNING", "running"),
        ("cancelled", "COMPLETING", "running"),
        ("cancelled", "TIMEOUT", "timeout"),
        ("cancelled", "CANCELLED by 0", "cancelled"),  # scancel of the task: a cancel
        ("failed", "RUNNING", "failed"),  # by itself, while its task runs the others: final
        ("done", "RUNNING", "done"),
        ("queued", "RUNNING", "queued"),  # waiting in its packed task
    ],
)
def test_a_packed_sub_experiments_record_is_merged_with_its_tasks_state(
    recorded: str, scheduler: str, shown: str
) -> None:
    rec = Status(JobState(recorded), backend="slurm", job_id="12_3", packed=True, start="t")
    assert merged_state(rec, TaskInfo("12_3", scheduler)) is JobState(shown)


def test_a_packed_cancelled_record_its_task_has_not_ended_shows_running_unless_mrl_cancel_asked(
    project: Path,
) -> None:
    exp, b, jobs, _ = packed_pair(project, "RUNNING")
    ran = jobs[0].sub
    ran.write_status(dataclasses.replace(ran.read_status(), state=JobState.CANCELLED, exit_code=-15))  # type: ignore[arg-type]
    assert b.poll(jobs)[0] is JobState.RUNNING
    (ran.dir / slurm.CANCEL_MARK).write_text("now\n")  # `mrl cancel EXP 1`: a cancel
    assert b.poll([Job(ran), jobs[1]])[0] is JobState.CANCELLED


def packed_pair(project: Path, scheduler: str) -> tuple[Any, slurm.SlurmBackend, list[Job], Status]:
    """A packed task 77_0 running 001 while 002 waits `queued`; Slurm says `scheduler` of it."""
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    ran, waiting = exp.sub_experiments()
    queued = Status(JobState.QUEUED, backend="slurm", job_id="77_0", attempts=0, packed=True)
    ran.write_status(Status(JobState.RUNNING, backend="slurm", job_id="77_0", attempts=1, start="t", packed=True))
    waiting.write_status(queued)
    b = slurm.SlurmBackend(exp)
    b._infos = {"77_0": slurm.TaskInfo("77_0", scheduler)}
    b._asked = time.monotonic()
    return exp, b, [Job(ran), Job(waiting)], queued


@pytest.mark.parametrize("verdict", ["TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "NODE_FAIL"])
def test_a_packed_sub_experiment_its_task_never_started_is_pending_not_the_tasks_verdict(
    project: Path, verdict: str
) -> None:
    # Its packed task hit its time limit while running another: it was shown `timeout`
    # (with no duration), a verdict on a sub-experiment that never ran.
    exp, b, jobs, _ = packed_pair(project, verdict)
    waiting = jobs[1].sub
    b.poll(jobs)
    assert jobs[0].state is slurm.SLURM_STATES[verdict]
    assert jobs[1].state is JobState.PENDING, jobs[1]
    rec = waiting.read_status()
    assert rec is not None and rec.state is JobState.PENDING and rec.slurm_state is None
    assert rec.reason == f"not started: its Slurm task 77_0 ended first (Slurm: {verdict})"
    assert jobs[1].message == rec.reason
    # a plain `mrl run` runs it again; `mrl status` shows it apart, with why
    assert run_mrl("status", str(exp.id)).stdout.count("not started: its Slurm task 77_0 ended first") == 1


def test_a_packed_sub_experiment_its_task_wrote_pending_drops_the_waiting_message(project: Path) -> None:
    # Seen `queued` while its task ran another ("waiting in its packed task 77_0"), then
    # the task wrote it `pending` ("not started: ...") at its time limit: `mrl run --wait`
    # still ended with "mrl: 002: waiting in its packed task 77_0", of a task that had ended.
    _, b, jobs, queued = packed_pair(project, "RUNNING")
    waiting = jobs[1].sub
    b.poll(jobs)
    assert jobs[1].state is JobState.QUEUED and jobs[1].message == "waiting in its packed task 77_0"
    reason = "not started: its Slurm task 77_0 reached its time limit first"
    waiting.write_status(queued.not_started(reason))
    b.poll(jobs)
    assert jobs[1].state is JobState.PENDING
    assert jobs[1].message == reason


def test_a_missing_sbatch_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(slurm.SlurmError, match="sbatch not found on PATH"):
        slurm.sbatch(tmp_path / "x.sh")


# -- against a real single-node Slurm --------------------------------------------------------


def on_slurm(test: Any) -> Any:
    """A test against the real cluster (the `slurm` fixture), selectable with `-m slurm`."""
    return pytest.mark.slurm(pytest.mark.usefixtures("slurm")(test))


TIMEOUT = 90.0


def backend(exp: Experiment, **options: Any) -> SlurmBackend:
    general = {k: options.pop(k) for k in ("retries", "fail_fast", "force") if k in options}
    return SlurmBackend(exp, RunOptions(**general, backend_options=SlurmRunOptions(**options)))


def wait_for(what: str, cond: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def squeue_rows(job: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i %T"], capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines())


@on_slurm
def test_the_array_throttle_keeps_at_most_n_tasks_running_at_once(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"x": i} for i in range(5)],
        "date +%s.%N > t0; sleep 1; date +%s.%N > t1",
        slurm={"max_parallel": 2},
    )
    b = backend(exp)
    assert run_to_end(b, jobs_for(exp), TIMEOUT) == [JobState.DONE] * 5
    assert "#SBATCH --array=0-4%2\n" in b.submissions[0].script.read_text()
    spans = [(float((s.dir / "t0").read_text()), float((s.dir / "t1").read_text())) for s in exp.sub_experiments()]
    most = max(sum(1 for a, b_ in spans if a <= t < b_) for t, _ in spans)
    assert most <= 2, spans


@on_slurm
def test_each_record_holds_its_array_task_id_and_node_and_the_script_is_kept(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo {{x}}")
    b = backend(exp, max_parallel=1)
    run_to_end(b, jobs_for(exp), TIMEOUT)
    job = b.submissions[0].job
    for sub in exp.sub_experiments():
        status = sub.read_status()
        assert status is not None
        assert (status.state, status.backend, status.job_id) == ("done", "slurm", f"{job}_{sub.id - 1}")
        assert status.node == "localhost"
    script = exp.dir / ".mrl.slurm" / "submit-001.sh"
    assert b.submissions[0].script == script and "#SBATCH --array=0-1%1" in script.read_text()
    plan = json.loads((exp.dir / ".mrl.slurm" / "submit-001.json").read_text())
    assert plan["tasks"] == [[1], [2]]  # task index -> the sub-experiments it runs
    log = [json.loads(line) for line in (exp.dir / ".mrl.slurm" / "submissions.jsonl").read_text().splitlines()]
    assert log[0]["jobId"] == job and log[0]["array"] == "1-2" and log[0]["plan"] == "submit-001.json"


@on_slurm
def test_cancel_stops_the_running_task_and_takes_the_queued_ones_out_of_the_queue(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(3)], "touch started; sleep 60", slurm={"max_parallel": 1})
    b = backend(exp)
    jobs = jobs_for(exp)
    b.submit(jobs)
    job = b.submissions[0].job
    wait_for("one task to start", lambda: any((s.dir / "started").exists() for s in exp.sub_experiments()))
    assert sorted(squeue_rows(job).values()) == ["PENDING", "PENDING", "RUNNING"]
    backend(exp).cancel([Job(s) for s in exp.sub_experiments()])  # like `mrl cancel`, a fresh backend
    assert [s.read_status().state for s in exp.sub_experiments()] == ["cancelled"] * 3  # type: ignore[union-attr]
    wait_for("Slurm to let go of the tasks", lambda: not set(squeue_rows(job).values()) - {"CANCELLED"})
    assert b.poll(jobs) == [JobState.CANCELLED] * 3


@on_slurm
def test_cancel_of_a_copy_of_a_submitted_experiment_never_cancels_the_originals_jobs(project: Path) -> None:
    """`cp -a output/0001 output/0002` while 0001's array runs copies records naming 0001's
    Slurm tasks: their job ids are provably 0001's (Slurm runs 0001's script), not the
    copy's. The copy shows them stale, and `mrl cancel 2` scancels nothing of 0001."""
    import shutil

    from metarunlog.project import Project

    exp = make_experiment(project, [{"x": i} for i in range(2)], "touch started; sleep 60")
    b = backend(exp)
    b.submit(jobs_for(exp))
    job = b.submissions[0].job
    try:
        wait_for("the tasks to start", lambda: all((s.dir / "started").exists() for s in exp.sub_experiments()))
        copy_dir = exp.dir.parent / "0002"
        shutil.copytree(exp.dir, copy_dir, symlinks=True)
        record = json.loads((copy_dir / ".mrl").read_text())
        (copy_dir / ".mrl").write_text(json.dumps({**record, "expId": 2}))
        copy = Project.find(project).load_exp("2")
        copy_jobs = [Job(s) for s in copy.sub_experiments()]
        assert backend(copy).poll(copy_jobs) == [JobState.STALE] * 2
        backend(copy).cancel([Job(s) for s in copy.sub_experiments()])
        time.sleep(1)
        assert sorted(squeue_rows(job).values()) == ["RUNNING", "RUNNING"], "the original's tasks were cancelled"
        assert [s.read_status().state for s in exp.sub_experiments()] == ["running"] * 2  # type: ignore[union-attr]
        assert [s.read_status().state for s in copy.sub_experiments()] == ["cancelled"] * 2  # type: ignore[union-attr]
    finally:
        subprocess.run(["scancel", job], check=False)


@on_slurm
def test_a_failing_task_is_failed_with_its_exit_code_and_the_others_still_run(project: Path) -> None:
    exp = make_experiment(project, [{"c": 0}, {"c": 3}, {"c": 0}], "echo trying; exit {{c}}")
    assert run_to_end(backend(exp), jobs_for(exp), TIMEOUT) == [JobState.DONE, JobState.FAILED, JobState.DONE]
    status = exp.sub_experiments()[1].read_status()
    assert status is not None and status.exit_code == 3 and status.slurm_state == "FAILED"
    assert "trying" in exp.sub_experiments()[1].log_path.read_text()


@on_slurm
def test_a_rejected_submission_is_one_error_with_slurms_message_and_marks_nothing(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo {{x}}")
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--slurm-opt=--partition=nosuchpartition")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mrl: error:")]
    assert len(errors) == 1 and "Invalid partition name specified" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert all(s.read_status() is None for s in exp.sub_experiments())


@on_slurm
def test_an_unreachable_controller_is_one_error_and_marks_nothing(project: Path, tmp_path: Path) -> None:
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    bad = tmp_path / "slurm.conf"  # the same cluster, but a port nobody listens on
    bad.write_text(
        conf.replace("SlurmctldHost=localhost", "SlurmctldHost=localhost\nSlurmctldPort=9") + "MessageTimeout=1\n"
    )
    exp = make_experiment(project, [{"x": 1}], "echo {{x}}")
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", env={"SLURM_CONF": str(bad)})
    assert proc.returncode == 1, proc.stderr
    assert "Unable to contact slurm controller" in proc.stderr and "Traceback" not in proc.stderr
    assert exp.sub_experiments()[0].read_status() is None


@on_slurm
def test_a_task_killed_with_scancel_behind_mrls_back_is_shown_cancelled(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch started; sleep 60")
    b = backend(exp)
    jobs = jobs_for(exp)
    b.submit(jobs)
    sub = exp.sub_experiments()[0]
    wait_for("the task to start", lambda: (sub.dir / "started").exists())
    # SIGKILL: mrl's task gets no chance to write anything; only Slurm knows
    subprocess.run(["scancel", "--signal=KILL", jobs[0].job_id], check=True)  # type: ignore[list-item]
    wait_for("Slurm to see the task end", lambda: backend(exp).poll([Job(sub)])[0] is not JobState.RUNNING)
    assert backend(exp).poll([Job(sub)]) == [JobState.CANCELLED]
    status = sub.read_status()
    assert status is not None and status.state == "cancelled" and status.slurm_state == "CANCELLED"
    _kill_leftover(status)


@on_slurm
def test_a_task_whose_runner_was_killed_is_shown_failed(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch started; sleep 60")
    b = backend(exp)
    jobs = jobs_for(exp)
    b.submit(jobs)
    sub = exp.sub_experiments()[0]
    wait_for("the task to start", lambda: (sub.dir / "started").exists())
    wait_for("the record to say running", lambda: getattr(sub.read_status(), "pid", None) is not None)
    status = sub.read_status()
    assert status is not None
    os.kill(status.runner_pid, signal.SIGKILL)  # the OOM killer, say
    try:
        wait_for("Slurm to see the task end", lambda: b.poll(jobs)[0] is not JobState.RUNNING)
        assert jobs[0].state is JobState.FAILED
        assert "Slurm: FAILED" in jobs[0].message
        assert sub.read_status().state == "failed"  # type: ignore[union-attr]
    finally:
        _kill_leftover(status)


@on_slurm
def test_a_record_whose_job_slurm_no_longer_knows_is_stale_and_is_never_written_so(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo {{x}}")
    sub = exp.sub_experiments()[0]
    record = Status(JobState.RUNNING, backend="slurm", job_id="987654_1", attempts=1)
    sub.write_status(record)
    job = Job(sub)
    assert backend(exp).poll([job]) == [JobState.STALE]
    assert "no longer knows" in job.message
    assert sub.read_status() == record


@on_slurm
def test_cancel_of_a_record_whose_job_slurm_forgot_does_not_say_slurm_cancelled_it(project: Path) -> None:
    # past MinJobAge: Slurm's word is lost, so `slurmState: CANCELLED` would be made up
    exp = make_experiment(project, [{"x": 1}], "echo {{x}}")
    sub = exp.sub_experiments()[0]
    sub.write_status(Status(JobState.RUNNING, backend="slurm", job_id="987654_1", attempts=1))
    proc = run_mrl("cancel", str(exp.id))
    assert proc.returncode == 0 and "001: cancelled" in proc.stdout, proc.stdout + proc.stderr
    st = sub.read_status()
    assert st is not None and st.state is JobState.CANCELLED and st.slurm_state is None, st
    assert "no longer knew its job" in (st.reason or ""), st
    rows = json.loads(run_mrl("status", str(exp.id), "--json", check=True).stdout)
    assert rows[0]["state"] == "cancelled"


def _kill_leftover(status: dict[str, Any]) -> None:
    """The step's own process group outlives a runner killed with -9: end it."""
    pgid = status.get("pid")
    if isinstance(pgid, int):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


@on_slurm
def test_mrl_run_wait_shows_progress_exits_1_on_a_failure_and_a_failed_rerun_fixes_it(project: Path) -> None:
    exp = make_experiment(
        project, [{"x": 1}, {"x": 2}, {"x": 3}], "test -e ../ok{{x}} || test {{x}} != 2", backend="slurm"
    )  # run.backend in .mrl.cfg
    proc = run_mrl("run", str(exp.id), "--wait", "--max-parallel", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "on slurm" in proc.stdout and "002 failed" in proc.stdout and "2 done, 1 failed" in proc.stdout
    assert "#SBATCH --array=0-2%2" in (exp.dir / ".mrl.slurm" / "submit-001.sh").read_text()
    (exp.dir / "ok2").write_text("")
    proc = run_mrl("run", str(exp.id), "--failed", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running 1 of 3" in proc.stdout
    rows = json.loads(run_mrl("status", str(exp.id), "--json", check=True).stdout)
    assert [(r["state"], r["attempts"]) for r in rows] == [("done", 1), ("done", 2), ("done", 1)]
    assert rows[1]["jobId"].endswith("_0") and rows[1]["node"] == "localhost"  # the only task of its array
    assert rows[1]["jobId"].split("_")[0] != rows[0]["jobId"].split("_")[0]  # a new array job
    assert (exp.dir / ".mrl.done").exists()


@on_slurm
def test_status_shows_why_a_task_waits_and_mrl_cancel_empties_the_queue(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(3)], "sleep 60", slurm={"max_parallel": 1})
    proc = run_mrl("run", str(exp.id), "--backend", "slurm")
    assert proc.returncode == 0, proc.stderr
    assert "3 submitted as Slurm job" in proc.stdout and "submit-001.sh" in proc.stdout
    job = exp.sub_experiments()[0].read_status().job_id.split("_")[0]  # type: ignore[union-attr]
    wait_for("one task to run", lambda: "RUNNING" in squeue_rows(job).values())
    out = run_mrl("status", str(exp.id), check=True).stdout
    assert "pending in Slurm (JobArrayTaskLimit)" in out, out
    proc = run_mrl("cancel", str(exp.id))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": cancelled") == 3
    wait_for("Slurm to let go of the tasks", lambda: not set(squeue_rows(job).values()) - {"CANCELLED"})
    rows = json.loads(run_mrl("status", str(exp.id), "--json", check=True).stdout)
    assert [r["state"] for r in rows] == ["cancelled"] * 3


def _slow_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, submits: bool) -> None:
    """An sbatch whose answer never comes in time (a controller slow to reply): it submits
    through the real sbatch first when `submits`, then hangs past mrl's client timeout."""
    import shutil

    real = shutil.which("sbatch")
    bin_dir = tmp_path / "slow-bin"
    bin_dir.mkdir()
    submit = f'"{real}" "$@" > /dev/null\n' if submits else ""
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{submit}exec sleep 60\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(slurm, "TIMEOUT_S", 3.0)


@on_slurm
def test_an_sbatch_that_submitted_but_answered_too_late_is_found_by_its_script_and_runs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sbatch timed out after the controller had taken the held array: mrl undid the
    # submission but the held job, unknown to it, stayed in the queue for ever.
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo {{x}}")
    _slow_sbatch(tmp_path, monkeypatch, submits=True)
    b = backend(exp)
    jobs = jobs_for(exp)
    assert run_to_end(b, jobs, TIMEOUT) == [JobState.DONE] * 2
    job = b.submissions[0].job
    assert [s.read_status().job_id for s in exp.sub_experiments()] == [f"{job}_0", f"{job}_1"]  # type: ignore[union-attr]
    [warning] = b.warnings
    assert "got no answer in 3 s" in warning and f"submit-001.sh as job {job}" in warning


@on_slurm
def test_an_sbatch_that_timed_out_without_submitting_is_one_error_and_marks_nothing(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo {{x}}")
    _slow_sbatch(tmp_path, monkeypatch, submits=False)
    with pytest.raises(slurm.SlurmError, match=r"got no answer in 3 s .*Slurm shows no job running submit-001\.sh"):
        backend(exp).submit(jobs_for(exp))
    assert all(s.read_status() is None for s in exp.sub_experiments())
    mine = subprocess.run(["squeue", "--me", "-h", "-o", "%o"], capture_output=True, text=True).stdout
    assert str(exp.dir) not in mine
