"""The local backend: the contract suite, plus slots, signals and concurrent runners."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.backends.contract import BackendContract


class TestLocalContract(BackendContract):
    backend_name = "local"


def test_a_cancel_landing_before_the_runner_records_the_pid_still_stops_the_step(project) -> None:  # noqa: ANN001
    import os
    import socket
    import subprocess
    import threading

    from metarunlog.backends.base import Job
    from metarunlog.backends.local import cancel_records
    from metarunlog.procs import pid_alive, start_id
    from metarunlog.records import Status
    from metarunlog.states import JobState
    from tests.backends.contract import make_experiment

    exp = make_experiment(project, [{"x": 1}], "true")
    sub = exp.sub_experiments()[0]
    # A step as mrl starts one: its own session, MRL_SUBEXP_DIR naming its folder.
    step = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, "MRL_SUBEXP_DIR": str(sub.dir)})
    # What a runner has written just before starting the step: running, no pid yet.
    base = Status(
        JobState.RUNNING,
        attempts=1,
        host=socket.gethostname(),
        runner_pid=os.getpid(),
        runner_start=start_id(os.getpid()),
    )
    sub.write_status(base)
    timer = threading.Timer(0.3, lambda: sub.write_status(base.step_started(step.pid, start_id(step.pid))))
    timer.start()
    try:
        job = Job(sub)
        cancel_records([job], grace=5)
        assert step.wait(timeout=5) == -15
        assert not pid_alive(step.pid)
        # The (pretend) runner is alive and never wrote `cancelled`: mrl must not claim it.
        assert sub.read_status().state == "running"
        assert "did not stop it" in (job.message or "")
    finally:
        timer.cancel()
        if step.poll() is None:
            step.kill()


def test_a_job_counts_as_ended_only_once_its_final_record_is_in_place(project) -> None:  # noqa: ANN001
    """Workers hand each final record over (its fsync overlaps the slot's next step): the
    pool says a job ended only when its record says so, and frees every lock by the end."""
    import time

    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.execute import locked
    from metarunlog.locks import is_running
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment

    exp = make_experiment(project, [{"code": i % 3} for i in range(12)], "exit {{code}}")
    jobs = jobs_for(exp)
    backend = LocalBackend(exp, RunOptions(jobs=2))
    with locked(jobs[4].sub):  # another runner has this one: skipped, its neighbours still recorded
        backend.submit(jobs)
        deadline = time.monotonic() + 60
        try:
            while any(s.active for s in backend.poll(jobs)):
                for job in jobs:
                    if job.state.finished and not job.skipped:
                        assert job.sub.read_status().state == job.state, job.name
                assert time.monotonic() < deadline
                time.sleep(0.001)
        finally:
            backend.close()
    assert jobs[4].skipped
    for i, job in enumerate(jobs):
        if i != 4:
            assert job.state == (JobState.DONE if i % 3 == 0 else JobState.FAILED)
            assert job.sub.read_status().state == job.state
            assert job.sub.read_status().exit_code == i % 3
        assert not is_running(job.sub.dir)
        assert not [p for p in job.sub.dir.iterdir() if p.name.endswith(".tmp")]


def test_the_pool_makes_final_records_durable_in_batches_and_reports_a_job_ended_only_after(
    project,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    """Group commit: no fsync per job; a job counts as ended only after a syncfs that came
    after its final record was in place (so nothing `mrl run` reported ended can be lost)."""
    import os
    import time

    from metarunlog import jsonio
    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment

    exp = make_experiment(project, [{"i": i} for i in range(12)], "true")
    jobs = jobs_for(exp)
    synced: set[int] = set()  # sub ids whose final record was in place when a syncfs began
    syncs, fsyncs = [], []
    real_syncfs, real_fsync = jsonio.syncfs, os.fsync

    def spy_syncfs(path: str) -> None:
        on_disk = {j.id for j in jobs if (s := j.sub.read_status()) is not None and s.state.finished}
        syncs.append(path)
        real_syncfs(path)
        synced.update(on_disk)

    def spy_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(jsonio, "syncfs", spy_syncfs)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    backend = LocalBackend(exp, RunOptions(jobs=2))
    backend.submit(jobs)
    deadline = time.monotonic() + 60
    try:
        while any(s.active for s in backend.poll(jobs)):
            assert {j.id for j in jobs if j.state.finished} <= synced
            assert time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        backend.close()
    assert all(j.state is JobState.DONE for j in jobs)
    assert synced == {j.id for j in jobs}
    assert fsyncs == []  # not one per job
    assert 1 <= len(syncs) < len(jobs)
    assert set(syncs) == {str(exp.dir)}


def test_a_final_record_that_cannot_be_made_durable_fails_its_job_and_says_why(project, monkeypatch) -> None:  # noqa: ANN001
    import errno
    import os

    from metarunlog import jsonio
    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment

    def eio(*args: object) -> None:  # the disk failed under the records
        raise OSError(errno.EIO, "Input/output error")

    exp = make_experiment(project, [{"i": i} for i in range(3)], "true")
    jobs = jobs_for(exp)
    monkeypatch.setattr(jsonio, "syncfs", eio)
    monkeypatch.setattr(os, "fsync", eio)
    _run_all(LocalBackend(exp, RunOptions(jobs=2)), jobs)
    for job in jobs:
        assert job.state is JobState.FAILED
        assert "mrl could not record how it ended" in job.message and "Input/output error" in job.message


# each step waits (up to 30 s) until all four have started: they run at the same time
_ALL_FOUR = (
    "touch {{expDir}}/started.{{subExpNum}}; n=0; "
    "while [ $(ls {{expDir}} | grep -c '^started') -lt 4 ]; do "
    "sleep 0.02; n=$((n+1)); if [ $n -gt 1500 ]; then exit 9; fi; done"
)


def _four_at_once(project) -> tuple[list, int, int]:  # noqa: ANN001
    import threading

    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from tests.backends.contract import jobs_for, make_experiment, run_to_end

    exp = make_experiment(project, [{"i": i} for i in range(4)], _ALL_FOUR)
    backend = LocalBackend(exp, RunOptions(jobs=4))
    before, peak = threading.active_count(), [0]
    real_notify = backend._notify

    def notify() -> None:  # called from the pool while steps run
        peak[0] = max(peak[0], threading.active_count())
        real_notify()

    backend._notify = notify  # type: ignore[method-assign]
    return run_to_end(backend, jobs_for(exp)), before, peak[0]


def test_one_pool_thread_runs_every_slot_at_once(project) -> None:  # noqa: ANN001
    """-j 4: four steps run at the same time, driven by one thread (not a thread per slot
    handing the GIL around): the pool thread and the record committer."""
    from metarunlog.states import JobState

    states, before, peak = _four_at_once(project)
    assert states == [JobState.DONE] * 4
    assert peak <= before + 2, (peak, before)


def test_without_pidfds_a_thread_waits_for_each_step_and_the_run_is_the_same(project, monkeypatch) -> None:  # noqa: ANN001
    import errno
    import os

    from metarunlog.states import JobState

    def no_pidfd(pid: int) -> int:  # Linux before 5.3
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    states, _, _ = _four_at_once(project)
    assert states == [JobState.DONE] * 4


def test_jobs_submitted_while_the_pool_runs_are_run_too(project) -> None:  # noqa: ANN001
    import time

    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment

    exp = make_experiment(project, [{"i": i} for i in range(3)], "sleep 0.3")
    first, *later = jobs_for(exp)
    backend = LocalBackend(exp, RunOptions(jobs=2))
    try:
        backend.submit([first])
        time.sleep(0.1)
        backend.submit(later)
        deadline = time.monotonic() + 60
        while any(s.active for s in backend.poll([first, *later])) and time.monotonic() < deadline:
            backend.wait(0.2)
    finally:
        backend.close()
    assert [j.state for j in (first, *later)] == [JobState.DONE] * 3


def test_a_skip_check_that_fails_fails_its_job_and_the_others_still_run(project) -> None:  # noqa: ANN001
    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment, run_to_end

    exp = make_experiment(project, [{"i": i} for i in range(3)], "true")
    jobs = jobs_for(exp)
    backend = LocalBackend(exp, RunOptions(jobs=2))

    def skip(job: object) -> None:
        if job is jobs[1]:
            raise PermissionError(13, "Permission denied", "/x/.mrl.cancel")

    backend.skip = skip  # type: ignore[assignment]
    assert run_to_end(backend, jobs) == [JobState.DONE, JobState.FAILED, JobState.DONE]
    assert "mrl could not run it: PermissionError" in jobs[1].message


@contextlib.contextmanager
def _one_in_place_one_running(project: Path) -> Iterator[tuple[Any, list[Any], Any]]:
    """Two jobs under a claimed LocalBackend: the first ended (its final record in place, not
    yet durable: the batch waits), the second running `sleep 30`; yields (backend, jobs,
    claim) and closes the backend after."""
    import time

    from metarunlog import ownership
    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment

    exp = make_experiment(project, [{"i": 1}, {"i": 2}], "if [ {{i}} = 2 ]; then sleep 30; fi")
    ended, running = jobs = jobs_for(exp)
    backend = LocalBackend(exp, RunOptions(jobs=2))
    backend._durable.window = 60  # the batch waits while the other step runs: in place, not durable
    with ownership.claim_runner(exp) as claim:
        claim.set_jobs([j.id for j in jobs])
        try:
            backend.submit(jobs)
            deadline = time.monotonic() + 30
            while (s := ended.sub.read_status()) is None or s.state != "done" or running.state is not JobState.RUNNING:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert ended.state is JobState.RUNNING  # not durable yet
            yield backend, jobs, claim
        finally:
            backend.close()


def test_a_cancel_request_for_a_job_whose_record_is_in_place_is_not_answered_as_cancelled(project) -> None:  # noqa: ANN001
    """Between its final record's rename and its durability (group commit) a job still
    counts as running for the run, but it has ended: `mrl cancel` must not hear it was
    cancelled (the step still running beside it is)."""
    from metarunlog import ownership
    from metarunlog.commands.run import _Cancels
    from metarunlog.states import JobState

    with _one_in_place_one_running(project) as (backend, jobs, claim):
        ended, running = jobs
        request = ownership.request_cancel(claim, {ended.id, running.id})
        _Cancels(backend, jobs, claim).apply()
        assert ownership.answer_with_notes(request) == {running.id: ""}
    assert [j.state for j in jobs] == [JobState.DONE, JobState.CANCELLED]


def test_cancelling_all_a_run_had_left_cuts_it_short_whether_or_not_the_others_are_durable_yet(project) -> None:  # noqa: ANN001
    """A job whose final record is in place but not yet durable has ended, as one already
    durable has: cancelling everything else the run had left makes it an interrupted run
    (exit 130) either way, not only once the group commit has caught up."""
    from metarunlog import ownership
    from metarunlog.commands.run import _Cancels
    from metarunlog.states import JobState

    with _one_in_place_one_running(project) as (backend, jobs, claim):
        cancels = _Cancels(backend, jobs, claim)
        ownership.request_cancel(claim, {jobs[1].id})
        cancels.apply()
    assert [j.state for j in jobs] == [JobState.DONE, JobState.CANCELLED]
    assert cancels.all_cancelled and cancels.cut_short()


def test_without_pidfds_no_waiting_thread_wakes_the_pool_after_it_closed(project, monkeypatch) -> None:  # noqa: ANN001
    # A waiting thread appends its slot, then writes to the wake pipe; the pool may see the
    # slot before that write (here: while it polls another slot's leftovers) and end.
    # Its pipe must not be closed before every waiting thread is done with it: a closed
    # descriptor's number may be a record file's by then.
    import errno
    import os
    import threading
    import time

    from metarunlog.backends import local
    from metarunlog.backends.base import RunOptions
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment

    def no_pidfd(pid: int) -> int:  # Linux before 5.3
        raise OSError(errno.ENOSYS, "Function not implemented")

    late: list[bool] = []
    calls: list[int] = []
    closed = threading.Event()
    real_set, real_close = local._Wake.set, local._Wake.close

    def slow_set(self: local._Wake) -> None:
        if threading.current_thread().name != "MainThread" and calls:  # the second waiting thread: late
            time.sleep(2.5)
            late.append(closed.is_set())
        if threading.current_thread().name != "MainThread":
            calls.append(1)
        real_set(self)

    def close(self: local._Wake) -> None:
        closed.set()
        real_close(self)

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    monkeypatch.setattr(local._Wake, "set", slow_set)
    monkeypatch.setattr(local._Wake, "close", close)
    leftover = "sh -c 'trap \"\" TERM; sleep 30' > /dev/null 2>&1 & sleep 0.1"
    command = "{% if i == 1 %}" + leftover + "{% else %}sleep 0.5{% endif %}"
    exp = make_experiment(project, [{"i": 1}, {"i": 2}], command)
    jobs = jobs_for(exp)
    _run_all(local.LocalBackend(exp, RunOptions(jobs=2)), jobs)
    assert [j.state for j in jobs] == [JobState.DONE] * 2
    assert late and not any(late)


def _run_all(backend, jobs) -> None:  # noqa: ANN001
    """Submit `jobs` and wait until the backend is idle, then close it."""
    backend.submit(jobs)
    try:
        while backend.busy:
            backend.wait(0.2)
    finally:
        backend.close()


def test_a_cancel_arriving_as_its_slot_takes_a_job_reaches_it(project) -> None:  # noqa: ANN001
    """Between leaving the queue and its first step (the skip check runs then) a job had no
    stop handle yet: a cancel then did nothing, and the job ran to its end though the
    cancel was answered. Now it starts nothing and is recorded cancelled."""
    from metarunlog.backends.base import RunOptions
    from metarunlog.backends.local import LocalBackend
    from metarunlog.states import JobState
    from tests.backends.contract import jobs_for, make_experiment, run_to_end

    exp = make_experiment(project, [{"i": 1}], "touch ran")
    jobs = jobs_for(exp)
    backend = LocalBackend(exp, RunOptions(jobs=1))

    def skip(job: object) -> None:
        backend.cancel([job])  # type: ignore[list-item]  (the cancel lands in this window)

    backend.skip = skip  # type: ignore[assignment]
    assert run_to_end(backend, jobs) == [JobState.CANCELLED]
    assert not (jobs[0].sub.dir / "ran").exists()
    assert jobs[0].read_status().state is JobState.CANCELLED
