"""metarunlog/backends/base.py: the Backend base class's defaults, Job, and how records of
any backend are observed (local ones by their pids, the others by their backend's poll)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from metarunlog.backends import registry
from metarunlog.backends.base import Backend, Job, RunOptions, observe, observe_any
from metarunlog.backends.registry import BackendSpec
from metarunlog.errors import MrlError
from metarunlog.project import Project
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import jobs_for, make_experiment
from tests.helpers.repo import old_one_job_exp

HOST = socket.gethostname()


class Scheduler(Backend):
    """A backend whose records only its `poll` can judge (like Slurm): it answers from `said`."""

    name = "sched"
    said: dict[str, JobState] = {}
    reachable = True

    def poll(self, jobs: Sequence[Job]) -> list[JobState]:
        if not self.reachable:
            raise MrlError("squeue: command not found")
        for job in jobs:
            job.state = self.said[job.status.job_id]  # type: ignore[union-attr]
        return [j.state for j in jobs]

    @staticmethod
    def unsettled(status: Status | None) -> bool:
        return status is not None and status.state is JobState.FAILED and status.extra.get("settled") is None


@pytest.fixture
def scheduler() -> Iterator[type[Scheduler]]:
    registry.register(BackendSpec("sched", f"{__name__}:Scheduler"))
    Scheduler.said, Scheduler.reachable = {}, True
    try:
        yield Scheduler
    finally:
        registry.unregister("sched")


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_base_class_defaults_suit_a_backend_that_runs_jobs_until_they_end(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    backend = Backend(exp)
    assert backend.waits and not backend.interrupted and not backend.halted
    assert backend.options == RunOptions()
    assert backend.note == "" and tuple(backend.slots) == ()
    assert Backend.run_options({}, {}) is None
    assert Backend.unsettled(Status()) is False
    assert Backend.owners(exp, []) == []
    assert Backend.task_ids() == (None, None)
    with pytest.raises(NotImplementedError):
        backend.submit([])
    with pytest.raises(NotImplementedError):
        backend.cancel([])
    backend.close()


def test_where_is_the_backends_name_by_default() -> None:
    assert Scheduler.where(RunOptions()) == "sched"


def test_own_options_are_the_backends_options_object_or_its_defaults(project: Path) -> None:
    @dataclass
    class Mine:
        partition: str = "gpu"

    exp = make_experiment(project, [{"x": 1}], "true")
    assert Backend(exp).own_options(Mine) == Mine()
    assert Backend(exp, RunOptions(backend_options=Mine("cpu"))).own_options(Mine) == Mine("cpu")
    assert Backend(exp, RunOptions(backend_options="not mine")).own_options(Mine) == Mine()


def test_a_job_is_named_by_its_folder_and_a_one_job_experiment_by_the_experiment(project: Path) -> None:
    job = jobs_for(make_experiment(project, [{"x": 1}, {"x": 2}], "true"))[1]
    assert (job.id, job.name, job.state) == (2, "002", JobState.PENDING)
    exp_dir = old_one_job_exp(project, "x = {{x}}\n", "x = 1\n", params={"x": 1})
    [sub] = Project.find(project).load_exp(exp_dir.name).sub_experiments()
    assert Job(sub).name == exp_dir.name and Job(sub).id == 1


def test_read_status_keeps_what_it_read_on_the_job(project: Path) -> None:
    job = jobs_for(make_experiment(project, [{"x": 1}], "true"))[0]
    assert job.read_status() is None and job.status is None
    job.sub.write_status(Status(state=JobState.DONE, exit_code=0))
    assert job.read_status() is job.status and job.status.state is JobState.DONE


def test_the_default_poll_reads_each_record_and_finds_a_dead_runner_stale(project: Path, dead_pid: int) -> None:
    jobs = jobs_for(make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "true"))
    jobs[0].sub.write_status(Status(state=JobState.DONE, exit_code=0))
    jobs[1].sub.write_status(Status(state=JobState.RUNNING, host=HOST, runner_pid=dead_pid, backend="local"))
    states = Backend(jobs[0].sub.exp).poll(jobs)
    assert states == [JobState.DONE, JobState.STALE, JobState.PENDING]
    assert [j.state for j in jobs] == states
    assert observe(jobs) == states


def test_observe_any_asks_each_records_own_backend(project: Path, scheduler, dead_pid: int) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 5)], "true")
    jobs = jobs_for(exp)
    jobs[0].sub.write_status(Status(state=JobState.RUNNING, host=HOST, runner_pid=dead_pid, backend="local"))
    jobs[1].sub.write_status(Status(state=JobState.QUEUED, backend="sched", job_id="7_2"))
    jobs[2].sub.write_status(Status(state=JobState.DONE, backend="sched", job_id="7_3"))
    scheduler.said = {"7_2": JobState.RUNNING}
    assert observe_any(exp, jobs) == [JobState.STALE, JobState.RUNNING, JobState.DONE, JobState.PENDING]


def test_a_finished_record_its_backend_calls_unsettled_is_asked_again(project: Path, scheduler) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    jobs = jobs_for(exp)
    jobs[0].sub.write_status(Status(state=JobState.FAILED, backend="sched", job_id="8_1"))
    scheduler.said = {"8_1": JobState.OOM}
    assert observe_any(exp, jobs) == [JobState.OOM]


def test_a_backend_that_cannot_answer_leaves_its_records_as_written_and_says_why(project: Path, scheduler) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    jobs = jobs_for(exp)
    jobs[0].sub.write_status(Status(state=JobState.RUNNING, backend="sched", job_id="9_1"))
    scheduler.reachable = False
    assert observe_any(exp, jobs) == [JobState.RUNNING]
    assert jobs[0].message == "could not ask sched: squeue: command not found; shown is the last recorded state"
    assert jobs[0].unread == ("sched", "squeue: command not found")


def test_a_record_of_a_backend_this_mrl_does_not_know_is_shown_as_written(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    jobs = jobs_for(exp)
    jobs[0].sub.write_status(Status(state=JobState.RUNNING, backend="pbs", job_id="1"))
    jobs[1].sub.write_status(Status(state=JobState.FAILED, backend="pbs", job_id="2"))
    assert observe_any(exp, jobs) == [JobState.RUNNING, JobState.FAILED]
    assert "could not ask pbs: unknown backend 'pbs'" in jobs[0].message


_HOLDER = """
import sys
from pathlib import Path
from metarunlog.locks import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_record_read_just_before_its_runner_put_the_final_one_in_place_is_not_stale(project: Path) -> None:
    # `mrl cancel` read 001's `running` record, its live runner then wrote `cancelled` and
    # let go of the lock, and the lock was checked after that: "001: stale", of a job its
    # runner had just recorded cancelled.
    from metarunlog.procs import start_id
    from tests.helpers.repo import REPO_ROOT

    job = jobs_for(make_experiment(project, [{"x": 1}], "true"))[0]
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(job.sub.dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        running = Status(
            state=JobState.RUNNING,
            host=HOST,
            runner_pid=holder.pid,
            runner_start=start_id(holder.pid),
            start="2024-01-01T10:00:00+00:00",
            backend="local",
        )
        job.sub.write_status(running)
        read = job.read_status()
        assert job.observe(read) is JobState.RUNNING
        job.sub.write_status(running.finished(JobState.CANCELLED, -15, "2024-01-01T10:00:05+00:00", 5.0))
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
        assert job.observe(read) is JobState.CANCELLED  # read again: its final record is in place
    finally:
        holder.kill()
        holder.wait()
