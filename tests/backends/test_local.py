"""The local backend: the contract suite, plus slots, signals and concurrent runners."""

from __future__ import annotations

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
    step = subprocess.Popen(["sleep", "60"], start_new_session=True)
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
