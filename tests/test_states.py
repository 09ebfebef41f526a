"""metarunlog/states.py: the states a record can say, and what is true once liveness is
checked (real processes: a live one, and one that has exited and been reaped)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from metarunlog.procs import start_id
from metarunlog.records import Status
from metarunlog.states import FAILED_LIKE, FINISHED, JobState, ended_by_itself, observed_state, recorded_state


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def running(**fields: object) -> Status:
    return Status(**{"state": JobState.RUNNING, "host": socket.gethostname(), "backend": "local", **fields})


def test_a_state_prints_and_compares_as_the_word_written_in_the_record() -> None:
    assert str(JobState.NODE_FAIL) == "node_fail"
    assert f"{JobState.DONE}" == "done"
    assert JobState("timeout") is JobState.TIMEOUT
    assert JobState.FAILED == "failed"


def test_finished_and_active_split_the_states_and_pending_and_stale_are_neither() -> None:
    for state in JobState:
        assert not (state.finished and state.active)
    assert {s for s in JobState if s.active} == {JobState.QUEUED, JobState.RUNNING}
    assert {s for s in JobState if s.finished} == FINISHED
    assert not JobState.PENDING.finished and not JobState.STALE.finished
    assert not JobState.PENDING.active and not JobState.STALE.active


def test_what_run_failed_reruns_is_every_ending_but_done_plus_stale() -> None:
    assert (FINISHED - {JobState.DONE}) | {JobState.STALE} == FAILED_LIKE


def test_no_record_is_pending() -> None:
    assert recorded_state(None) is JobState.PENDING
    assert observed_state(None) is JobState.PENDING


def test_a_running_record_whose_process_is_alive_stays_running(live_pid: int) -> None:
    assert observed_state(running(runner_pid=live_pid, runner_start=start_id(live_pid))) is JobState.RUNNING
    assert observed_state(running(runner_pid=os.getpid(), runner_start=start_id(os.getpid()))) is JobState.RUNNING


def test_a_live_pid_that_is_not_the_recorded_process_is_stale(live_pid: int) -> None:
    # pid reuse: alive, but not the process the record names (no start id, or another one)
    assert observed_state(running(runner_pid=live_pid)) is JobState.STALE
    assert observed_state(running(pid=live_pid, pid_start="other-boot:1")) is JobState.STALE


def test_a_running_record_whose_runner_and_step_are_gone_is_stale(dead_pid: int) -> None:
    status = running(runner_pid=dead_pid, pid=dead_pid)
    assert recorded_state(status) is JobState.RUNNING  # as written
    assert observed_state(status) is JobState.STALE


def test_a_step_that_outlives_its_killed_runner_keeps_the_record_running(dead_pid: int, live_pid: int) -> None:
    status = running(runner_pid=dead_pid, pid=live_pid, pid_start=start_id(live_pid))
    assert observed_state(status) is JobState.RUNNING


def test_another_machines_record_is_not_judged_from_here(dead_pid: int) -> None:
    status = running(runner_pid=dead_pid, pid=dead_pid, host="some-other-node")
    assert observed_state(status) is JobState.RUNNING


def test_a_scheduler_backends_record_is_left_for_its_backend_to_judge(dead_pid: int) -> None:
    status = running(runner_pid=dead_pid, pid=dead_pid, backend="slurm")
    assert observed_state(status) is JobState.RUNNING
    queued = Status(state=JobState.QUEUED, backend="slurm", job_id="12_3")
    assert observed_state(queued) is JobState.QUEUED


def test_a_finished_record_is_shown_as_written_whatever_its_pids(dead_pid: int) -> None:
    for state in FINISHED:
        assert observed_state(running(state=state, runner_pid=dead_pid)) is state


def test_a_running_record_without_pids_is_stale_as_nothing_proves_it_runs() -> None:
    # issue 10: what mrl cannot prove is running is stale (the run lock still keeps a
    # live runner's sub-experiment from running twice)
    assert observed_state(running()) is JobState.STALE


def test_a_pid_that_cannot_be_a_process_is_read_as_none_and_never_probed() -> None:
    # pid 0 or a negative one in a damaged record must never reach os.kill (it would probe our group)
    status = Status.from_json(
        {"state": "running", "host": socket.gethostname(), "backend": "local", "runnerPid": 0, "pid": -5}
    )
    assert status.runner_pid is None and status.pid is None
    assert observed_state(status) is JobState.STALE


@pytest.mark.parametrize(
    ("state", "code", "whole"),
    [
        (JobState.DONE, 0, True),
        (JobState.FAILED, 1, True),  # an exception: Python flushed its output on the way out
        (JobState.FAILED, 127, True),
        (JobState.FAILED, 137, False),  # SIGKILLed (OOM killer) through the shell
        (JobState.FAILED, -9, False),
        (JobState.FAILED, None, False),  # failed by mrl (requeue limit, changed plan): no exit of its own
        (JobState.CANCELLED, 143, False),
        (JobState.TIMEOUT, None, False),
        (JobState.OOM, None, False),
        (JobState.STALE, None, False),
        (JobState.RUNNING, None, False),
        (JobState.QUEUED, None, False),
        (JobState.PENDING, None, False),
    ],
)
def test_only_a_step_that_ended_by_itself_has_left_its_last_line_whole(
    state: JobState, code: int | None, whole: bool
) -> None:
    status = Status(state=state, exit_code=code)
    assert ended_by_itself(state, status) is whole
    assert ended_by_itself(state, None) is (state is JobState.DONE)
