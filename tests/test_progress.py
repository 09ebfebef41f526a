"""metarunlog/progress.py: what `mrl run` shows while jobs run: one plain line per finished
sub-experiment in a pipe, a live block redrawn in place on a terminal, failures with the tail
of their run.log either way."""

from __future__ import annotations

import io
import os
import pty
from pathlib import Path

import pytest

from metarunlog.backends.base import Job
from metarunlog.progress import Progress, counts_line, is_live
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import jobs_for, make_experiment


@pytest.fixture
def jobs(project: Path) -> list[Job]:
    return jobs_for(make_experiment(project, [{"x": i} for i in range(1, 4)], "true"))


def end(job: Job, state: JobState, exit_code: int | None = 0, duration: float = 65.0) -> None:
    job.state = state
    job.status = Status(state=state, exit_code=exit_code, duration=duration, attempts=1)


def test_counts_line_lists_the_states_in_a_fixed_order_and_leaves_out_zeros() -> None:
    states = [JobState.PENDING, JobState.DONE, JobState.RUNNING, JobState.DONE, JobState.STALE, JobState.FAILED]
    assert counts_line(states) == "2 done, 1 failed, 1 running, 1 pending, 1 stale"
    assert counts_line([]) == ""


def test_in_a_pipe_each_finished_job_is_one_line_with_its_count_and_duration(jobs: list[Job]) -> None:
    out = io.StringIO()
    progress = Progress(jobs, stream=out)
    assert not progress.live
    progress.update(jobs)
    assert out.getvalue() == ""
    end(jobs[1], JobState.DONE)
    progress.update(jobs)
    progress.update(jobs)  # nothing new: nothing printed twice
    end(jobs[0], JobState.TIMEOUT, exit_code=None, duration=3.25)
    progress.close(jobs)
    assert out.getvalue() == "[1/3] 002 done in 1:05\n[2/3] 001 timeout in 3.2s\n"


def test_a_failure_is_printed_with_its_exit_code_message_and_log_tail(jobs: list[Job]) -> None:
    job = jobs[2]
    job.sub.log_path.write_text("".join(f"line {i}\n" for i in range(1, 31)))
    job.message = "could not write .mrl.status"
    out = io.StringIO()
    progress = Progress(jobs, stream=out, tail=3)
    end(job, JobState.FAILED, exit_code=2)
    progress.update(jobs)
    assert out.getvalue().splitlines() == [
        "[1/3] 003 failed in 1:05 (exit code 2)",
        "    could not write .mrl.status",
        f"    last 3 lines of {job.sub.log_path}:",
        "    | line 28",
        "    | line 29",
        "    | line 30",
    ]


def test_a_job_that_ended_before_the_first_update_still_gets_its_line(jobs: list[Job]) -> None:
    out = io.StringIO()
    progress = Progress(jobs, stream=out)
    end(jobs[0], JobState.DONE, duration=1.0)
    progress.update(jobs)
    assert out.getvalue() == "[1/3] 001 done in 1.0s\n"


def test_a_skipped_job_is_neither_counted_nor_printed(jobs: list[Job]) -> None:
    out = io.StringIO()
    progress = Progress(jobs, stream=out)
    jobs[0].skipped = True
    end(jobs[0], JobState.DONE)
    end(jobs[1], JobState.DONE)
    progress.close(jobs)
    assert out.getvalue() == "[1/3] 002 done in 1:05\n"


def test_the_live_view_draws_counts_and_slots_then_clears_them(jobs: list[Job]) -> None:
    out = io.StringIO()
    progress = Progress(jobs, ["0", None], stream=out, live=True)
    jobs[0].state, jobs[0].slot = JobState.RUNNING, 1
    progress.update(jobs, force=True)
    drawn = out.getvalue()
    assert drawn.splitlines()[0].startswith("1 running, 2 pending | elapsed ")
    assert drawn.splitlines()[1:] == ["  slot 0 (resource 0): idle", "  slot 1: 001"]
    end(jobs[0], JobState.DONE)
    progress.close(jobs)
    rest = out.getvalue()[len(drawn) :]
    assert rest.startswith("\x1b[3F\x1b[J")  # the block is erased before anything else is written
    assert "[1/3]" not in rest  # on a terminal a done job needs no line of its own
    assert rest.endswith("\x1b[3F\x1b[J")


def test_only_a_terminal_that_can_redraw_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not is_live(io.StringIO())
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            monkeypatch.setenv("TERM", "xterm")
            assert is_live(tty)
            monkeypatch.setenv("TERM", "dumb")
            assert not is_live(tty)
            monkeypatch.delenv("TERM")
            assert not is_live(tty)
    finally:
        os.close(leader)
        os.close(follower)


def test_a_job_whose_end_is_corrected_is_counted_once_and_its_line_says_so(jobs: list[Job]) -> None:
    """A packed Slurm task at its time limit: its record said `cancelled` (the SIGTERM) before
    the task wrote Slurm's verdict, `timeout`: `mrl run --wait` printed `[1/3] 001 cancelled`
    then `[2/3] 001 timeout`, one job counted twice, and never reached [3/3]."""
    out = io.StringIO()
    progress = Progress(jobs, stream=out)
    end(jobs[0], JobState.CANCELLED, exit_code=-15)
    progress.update(jobs)
    end(jobs[0], JobState.TIMEOUT, exit_code=-15)
    progress.update(jobs)
    end(jobs[1], JobState.FAILED, exit_code=1)
    end(jobs[2], JobState.DONE)
    progress.close(jobs)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert lines == [
        "[1/3] 001 cancelled in 1:05 (exit code -15)",
        "[1/3] 001 timeout in 1:05 (exit code -15)",
        "[2/3] 002 failed in 1:05 (exit code 1)",
        "[3/3] 003 done in 1:05",
    ]
    assert "    its record now says timeout, not cancelled" in out.getvalue().splitlines()
