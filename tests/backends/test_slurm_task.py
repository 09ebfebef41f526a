"""metarunlog/backends/slurm_task.py at unit level, without Slurm: the steps' environment, the
GPUs a task was given, the pool's slots, and a plan's task run as a Slurm array task runs it
(`python -m metarunlog.backends.task EXPDIR INDEX --backend slurm --plan FILE`, a real
process with Slurm's environment variables set) as long as nothing asks the scheduler. The
same against the real Slurm is in tests/backends/test_slurm_scale.py."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from metarunlog import jsonio
from metarunlog.backends import slurm, slurm_task
from metarunlog.backends.base import Job
from metarunlog.backends.slurm import TaskPlan
from metarunlog.backends.slurm_task import allocated_gpus, slots, step_environment
from metarunlog.experiment import Experiment
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.repo import REPO_ROOT


def test_the_steps_get_the_submitter_s_pythonpath_back() -> None:
    task_env = {"PYTHONPATH": "/mrl/itself", "HOME": "/h", slurm.PYTHONPATH_WAS: "set:/my/lib:/other"}
    assert step_environment(task_env) == {"PYTHONPATH": "/my/lib:/other", "HOME": "/h"}
    # the submitter had none: the steps have none (not the one the script set for mrl)
    assert step_environment({"PYTHONPATH": "/mrl/itself", slurm.PYTHONPATH_WAS: ""}) == {}
    # set but empty is kept as set
    assert step_environment({"PYTHONPATH": "/mrl", slurm.PYTHONPATH_WAS: "set:"}) == {"PYTHONPATH": ""}
    # a script written by an earlier mrl did not say: the task's environment as it is
    assert step_environment({"PYTHONPATH": "/x"}) == {"PYTHONPATH": "/x"}


def test_step_environment_leaves_the_task_s_own_environment_alone() -> None:
    env = {"PYTHONPATH": "/mrl", slurm.PYTHONPATH_WAS: "set:/a"}
    step_environment(env)
    assert env == {"PYTHONPATH": "/mrl", slurm.PYTHONPATH_WAS: "set:/a"}


@pytest.mark.parametrize(
    ("env", "gpus"),
    [
        ({}, []),
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, []),  # the submitting shell's, exported by sbatch: not this task's
        ({"SLURM_JOB_GPUS": "4,5"}, ["4", "5"]),
        ({"SLURM_JOB_GPUS": "4,5", "CUDA_VISIBLE_DEVICES": "0,1"}, ["0", "1"]),  # as the task sees them
        ({"SLURM_STEP_GPUS": "2", "CUDA_VISIBLE_DEVICES": ""}, ["2"]),
        ({"SLURM_GPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": " 0 , 1 ,"}, ["0", "1"]),
        ({"SLURM_JOB_GPUS": "  "}, []),  # blank is none
    ],
)
def test_allocated_gpus_are_only_those_slurm_says_it_gave(env: dict[str, str], gpus: list[str]) -> None:
    assert allocated_gpus(env) == gpus


@pytest.mark.parametrize(
    ("pack_jobs", "env", "expected"),
    [
        (None, {}, [None]),
        (None, {"SLURM_CPUS_PER_TASK": "3"}, [None, None, None]),
        (None, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_GPUS": "4,5"}, ["0", "1"]),  # as Slurm numbers them
        (None, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_GPUS_ON_NODE": "2"}, ["0", "1"]),
        (None, {"SLURM_JOB_GPUS": "2,3", "SLURM_CPUS_PER_TASK": "8"}, ["2", "3"]),  # GPUs decide
        (4, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_GPUS": "0,1"}, ["0", "1", "0", "1"]),  # two workers per GPU
        # no GPU from Slurm: a CUDA_VISIBLE_DEVICES exported by the submitting shell sizes nothing
        (None, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, [None]),
        (None, {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "SLURM_CPUS_PER_TASK": "2"}, [None, None]),
        (3, {"CUDA_VISIBLE_DEVICES": "0,1"}, [None, None, None]),
        (16, {}, [None] * 5),  # never more workers than sub-experiments
        (None, {"SLURM_CPUS_PER_TASK": "lots"}, [None]),  # not a number: one
        (0, {}, [None]),  # at least one
    ],
)
def test_a_packed_task_has_one_worker_per_gpu_or_cpu_or_pack_jobs(
    pack_jobs: int | None, env: dict[str, str], expected: list[str | None]
) -> None:
    assert slots(pack_jobs, 5, env) == expected


# -- a plan's task in a real process, without the scheduler --------------------------------------


def plan_file(exp: Experiment, plan: TaskPlan) -> Path:
    path = exp.dir / ".mrl.slurm" / "submit-001.json"
    path.parent.mkdir(exist_ok=True)
    jsonio.write_json(path, plan.to_json())
    return path


def queued(exp: Experiment) -> None:
    """The records `mrl run --backend slurm` writes at submission."""
    for i, sub in enumerate(exp.sub_experiments()):
        sub.write_status(Status(JobState.QUEUED, backend="slurm", job_id=f"77_{i // 10}", packed=True))


def run_task(exp: Experiment, plan: Path, index: int, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "CUDA_VISIBLE"))}
    full = {**base, "PYTHONPATH": str(REPO_ROOT), "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": str(index), **env}
    argv = [sys.executable, "-m", "metarunlog.backends.task", str(exp.dir), str(index), "--backend", "slurm"]
    return subprocess.run([*argv, "--plan", str(plan)], env=full, capture_output=True, text=True, timeout=120)


def records(exp: Experiment) -> dict[str, Status | None]:
    return {s.name: s.read_status() for s in exp.sub_experiments()}


def test_a_task_runs_the_sub_experiments_its_plan_gives_it_and_records_the_task(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3, 4)], "echo x={{x}} gpu=$CUDA_VISIBLE_DEVICES")
    queued(exp)
    plan = plan_file(exp, TaskPlan([[1, 3], [2, 4]], pack_jobs=2))
    proc = run_task(exp, plan, 0, SLURMD_NODENAME="node7", SLURM_JOB_GPUS="0,1", CUDA_VISIBLE_DEVICES="0,1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "mrl: sub-experiment 001: done\nmrl: sub-experiment 003: done\n"
    recs = records(exp)
    assert [recs[n].state for n in ("001", "003")] == [JobState.DONE, JobState.DONE]  # type: ignore[union-attr]
    assert recs["001"].job_id == "77_0" and recs["001"].node == "node7" and recs["001"].backend == "slurm"  # type: ignore[union-attr]
    assert recs["002"].state is JobState.QUEUED and recs["004"].state is JobState.QUEUED  # type: ignore[union-attr]
    gpus = sorted((exp.subexp_dir(i) / "run.log").read_text().splitlines()[-1] for i in (1, 3))
    assert gpus == ["x=1 gpu=0", "x=3 gpu=1"] or gpus == ["x=1 gpu=1", "x=3 gpu=0"]


def test_a_task_index_the_plan_lacks_is_one_error_line_and_runs_nothing(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch ran")
    plan = plan_file(exp, TaskPlan([[1]]))
    proc = run_task(exp, plan, 3)
    assert proc.returncode == 1
    assert proc.stderr == f"mrl: error: {plan} has no task 3 (it has 1)\n"
    assert not (exp.subexp_dir(1) / "ran").exists()


def test_a_task_whose_plan_names_a_missing_sub_experiment_says_which(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    proc = run_task(exp, plan_file(exp, TaskPlan([[1, 9]])), 0)
    assert proc.returncode == 1 and proc.stderr == f"mrl: error: experiment {exp.dir} has no sub-experiment 9\n"


def test_a_queued_sub_experiment_with_a_cancel_mark_is_skipped_and_recorded_cancelled(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in (1, 2)], "touch ran")
    queued(exp)
    (exp.subexp_dir(2) / slurm.CANCEL_MARK).touch()
    proc = run_task(exp, plan_file(exp, TaskPlan([[1, 2]], pack_jobs=1)), 0)
    assert proc.returncode == 130, proc.stderr
    recs = records(exp)
    assert recs["001"].state is JobState.DONE and (exp.subexp_dir(1) / "ran").exists()  # type: ignore[union-attr]
    assert recs["002"].state is JobState.CANCELLED and recs["002"].slurm_state == "CANCELLED"  # type: ignore[union-attr]
    assert not (exp.subexp_dir(2) / "ran").exists()


def test_a_sub_experiment_changed_since_submission_is_not_run_and_says_why(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "touch ran")
    queued(exp)
    subs = exp.sub_experiments()
    fps = {s.id: s.fingerprint() for s in subs}
    jsonio.write_json(subs[1].dir / ".mrl", {"subExpId": 2, "params": {"x": 20}})  # a makebatch -replace since
    proc = run_task(exp, plan_file(exp, TaskPlan([[1, 2]], fingerprints=fps)), 0)
    assert proc.returncode == 1
    assert "mrl: 002: " in proc.stderr and not (subs[1].dir / "ran").exists()
    rec = subs[1].read_status()
    assert rec is not None and rec.state is JobState.FAILED and (rec.reason or "").startswith("not run: ")


def test_the_steps_see_the_submitter_s_pythonpath(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], 'echo "pp=${PYTHONPATH-unset}"')
    plan = plan_file(exp, TaskPlan([[1], [2]]))
    assert run_task(exp, plan, 0, MRL_PYTHONPATH_WAS="set:/my/lib").returncode == 0
    assert run_task(exp, plan, 1, MRL_PYTHONPATH_WAS="").returncode == 0
    assert (exp.subexp_dir(1) / "run.log").read_text().splitlines()[-1] == "pp=/my/lib"
    assert (exp.subexp_dir(2) / "run.log").read_text().splitlines()[-1] == "pp=unset"


def test_a_task_requeued_more_often_than_allowed_fails_what_had_not_ended_and_runs_nothing(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "touch ran")
    queued(exp)
    done_one, interrupted = exp.sub_experiments()[1:]
    done_one.write_status(dataclasses.replace(done_one.read_status(), state=JobState.DONE, exit_code=0))  # type: ignore[arg-type]
    interrupted.write_status(interrupted.read_status().requeued("t"))  # type: ignore[union-attr]
    proc = run_task(exp, plan_file(exp, TaskPlan([[1, 2, 3]], requeue=1)), 0, SLURM_RESTART_COUNT="2")
    assert proc.returncode == 1
    assert proc.stderr == "mrl: requeued 2 times, more than run.slurm.requeue (1): not run\n"
    recs = records(exp)
    # never started by this submission: pending (it did not fail), saying why
    assert recs["001"].state is JobState.PENDING  # type: ignore[union-attr]
    assert recs["001"].reason == "not started: its Slurm task was requeued 2 times, more than run.slurm.requeue (1)"  # type: ignore[union-attr]
    assert recs["003"].state is JobState.FAILED and recs["003"].reason.startswith("requeued 2 times")  # type: ignore[union-attr]
    assert recs["002"].state is JobState.DONE and not (exp.subexp_dir(1) / "ran").exists()  # type: ignore[union-attr]


# -- ending a task past its limits ------------------------------------------------------------------


def _ended_and_waiting(project: Path) -> tuple[Experiment, list[Any]]:
    """Five sub-experiments of one packed task: failed by itself (exit 3), cancelled with
    mrl cancel, still queued in the task (never started), done, and queued again after a
    requeue interrupted it (`requeues`: it did run)."""
    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3, 4, 5)], "true")
    subs = exp.sub_experiments()
    base = Status(JobState.QUEUED, backend="slurm", job_id="77_0", attempts=1, packed=True)
    subs[0].write_status(dataclasses.replace(base, state=JobState.FAILED, exit_code=3))
    subs[1].write_status(base.cancelled("t", slurm_state="CANCELLED"))
    subs[2].write_status(base)
    subs[3].write_status(dataclasses.replace(base, state=JobState.DONE, exit_code=0))
    subs[4].write_status(dataclasses.replace(base, attempts=2).requeued("t"))
    return exp, subs


def _after_giving_up(subs: list[Any]) -> list[tuple[JobState, int | None, str | None]]:
    recs = [s.read_status() for s in subs]
    return [(r.state, r.exit_code, r.reason) for r in recs]


def test_a_task_past_its_requeue_limit_fails_only_what_had_not_ended(project: Path) -> None:
    _, subs = _ended_and_waiting(project)
    slurm_task._give_up(subs, "requeued 2 times, more than run.slurm.requeue (1)")
    assert _after_giving_up(subs) == [
        (JobState.FAILED, 3, None),  # its own failure, exit code kept
        (JobState.CANCELLED, None, None),  # the user's cancel stays a cancel
        # never started: it did not fail, and a plain `mrl run` runs it
        (JobState.PENDING, None, "not started: its Slurm task was requeued 2 times, more than run.slurm.requeue (1)"),
        (JobState.DONE, 0, None),
        (JobState.FAILED, None, "requeued 2 times, more than run.slurm.requeue (1)"),  # it had run
    ]
    assert subs[2].read_status().attempts == 1 and subs[2].read_status().start is None


def test_usr1_past_the_requeue_limit_fails_only_what_had_not_ended(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, subs = _ended_and_waiting(project)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    runner = slurm_task.PackRunner(exp, subs, TaskPlan([[1, 2, 3, 4, 5]], requeue=1), restarts=1)
    runner._requeue([Job(s) for s in subs])  # the limit is reached: no scontrol requeue
    states = _after_giving_up(subs)
    assert states[:2] == [(JobState.FAILED, 3, None), (JobState.CANCELLED, None, None)], states
    # the one it never started says so (it was not "stopped by SIGUSR1")
    assert states[2][0] is JobState.PENDING and (states[2][2] or "").startswith("not started: its Slurm task 77_0 ")
    assert states[3] == (JobState.DONE, 0, None)
    assert states[4][0] is JobState.FAILED and (states[4][2] or "").startswith("stopped by SIGUSR1"), states


@pytest.mark.parametrize("ending", [True, False], ids=["Slurm is ending the task", "a resume"])
def test_a_step_that_ended_while_its_runner_is_being_ended_is_not_done_whatever_its_exit_code(
    project: Path, ending: bool
) -> None:
    # Slurm kills the deepest processes first: the command dies, a `;` list goes on and its
    # shell exits 0, which read `done`. The runner's `ending` (the task: a SIGCONT came and
    # Slurm says the job is ending) decides.
    from metarunlog.execute import ExecOptions, Stopper, execute

    exp = make_experiment(project, [{"x": 1}], ["echo over > seen", "echo two > seen2"])
    sub = exp.sub_experiments()[0]
    asked: list[bool] = []
    runner = Stopper()
    runner.ending = lambda: asked.append(ending) or ending
    rec = execute(sub, ExecOptions(stop=Stopper(runner)))
    assert (sub.dir / "seen").read_text() == "over\n"
    if ending:
        assert asked == [True]
        assert rec.state is JobState.CANCELLED and rec.exit_code is None and rec.steps_done == 0, rec
        assert not (sub.dir / "seen2").exists()
    else:
        assert asked == [False, False]  # at each step's end
        assert rec.state is JobState.DONE and rec.exit_code == 0 and rec.steps_done == 2, rec


def test_the_cont_watch_says_a_sigcont_came_once_and_a_kill_for_good() -> None:
    import signal
    import time

    from metarunlog.backends.slurm_task import ContWatch

    watch = ContWatch()
    assert watch.pid is not None
    try:
        assert not watch.continued()
        os.kill(watch.pid, signal.SIGCONT)  # as Slurm's first pass, or a resume
        assert watch.continued()
        assert not watch.continued()  # armed again
        os.kill(watch.pid, signal.SIGCONT)
        os.kill(watch.pid, signal.SIGTERM)
        time.sleep(0.2)
        assert watch.continued() and watch.continued()
    finally:
        watch.close()
    assert watch.pid is None and not watch.continued()
