"""Sub-experiment states, and the state a record shows once liveness is checked.

`.mrl.status` holds what the executing process last wrote; `observed_state` turns that
into what is true now: a `running` record whose process is gone is `stale`. The Slurm
backend refines this with what the scheduler says (backends/slurm.py).
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from metarunlog.backends.registry import judged_by_liveness
from metarunlog.locks import RUN_LOCK
from metarunlog.procs import HOST, holds_file, is_same_process, is_step_of, names_folder

if TYPE_CHECKING:
    from metarunlog.records import Status


class JobState(str, Enum):
    PENDING = "pending"  # never started (no .mrl.status, or a Slurm task's that ended before starting it)
    QUEUED = "queued"  # submitted to a scheduler, not started
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    OOM = "oom"
    NODE_FAIL = "node_fail"
    STALE = "stale"  # derived: the record says running/queued but nothing runs it
    # derived, `mrl status` only: its folder was removed while a run ran it, and not made
    # again; what is known of it is what that run kept (`metarunlog.gone`)
    GONE = "gone"
    # a state this mrl does not know (a newer mrl wrote it): neither finished nor active, never
    # claimed failed or done; the record keeps the name it has (`Status.unknown_state`), and
    # `mrl run` leaves it alone unless --force
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING)


FINISHED = frozenset(
    {JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.OOM, JobState.NODE_FAIL}
)
# Failed one way or another: what `mrl run --failed` reruns.
FAILED_LIKE = frozenset(
    {JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.OOM, JobState.NODE_FAIL, JobState.STALE}
)


def unknown_note(name: str) -> str:
    """What `mrl status`, `info` and `run` say of a record in a state this mrl does not know."""
    return (
        f"its .mrl.status says state {name}, which this mrl does not know (a newer mrl wrote it?): shown as "
        "unknown and left as it is (upgrade mrl, or `mrl run --force` runs it again)"
    )


def recorded_state(status: Status | None) -> JobState:
    """The state as written, without any liveness check (no record: pending)."""
    return JobState.PENDING if status is None else status.state


DEFAULT_STALE_AFTER = 600.0  # run.stale_after's default, seconds


def observed_state(status: Status | None, path: Path | None = None, stale_after: float | None = None) -> JobState:
    """The recorded state, with a local `running` record nothing runs any more shown as stale.

    Only records of backends the registry says are judged by liveness (local) are
    checked; the others (Slurm) are returned as written, for their backend's `poll`.
    On this machine, a record is live while its runner or its step is provably the process
    it recorded (pid and start id: a reused pid is not). A record of another machine (a
    shared filesystem) is live while its runner's heartbeat keeps `path` (its
    `.mrl.status`) younger than `stale_after` seconds.
    """
    state = recorded_state(status)
    if not state.active or status is None or not judged_by_liveness(status.backend):
        return state
    if status.host not in (None, HOST):
        return JobState.STALE if _not_refreshed(path, stale_after) else state
    # The step's process group outlives a runner killed with -9: stale only once both are gone.
    subdir = path.parent if path is not None else None
    if is_same_process(status.runner_pid, status.runner_start):
        # A copy of a running experiment (`cp -a`) holds records naming the original's live
        # runner and step. A runner holds a sub-experiment's .mrl.lock from before its first
        # step until its final record is in place, so whether it holds this folder's says
        # whose the record is, at every moment (between steps and attempts too).
        held = runner_holds(status, subdir)
        if held is not None:
            return state if held else JobState.STALE
        # Its descriptors unreadable: the step, alive, says whose it is (its MRL_SUBEXP_DIR).
        copied = (
            subdir is not None
            and status.pid is not None
            and is_same_process(status.pid, status.pid_start)
            and names_folder(status.pid, subdir) is False
        )
        return JobState.STALE if copied else state
    if is_step_of(status.pid, status.pid_start, subdir):
        return state
    return JobState.STALE


def runner_holds(status: Status, subdir: Path | None) -> bool | None:
    """Whether the live runner of a `running` record holds `subdir`'s .mrl.lock (it does
    from before the first step until the final record is in place); None when that cannot
    be told (not a running record, no start id, its descriptors unreadable)."""
    if subdir is None or status.state is not JobState.RUNNING or status.runner_pid is None or not status.runner_start:
        return None
    return holds_file(status.runner_pid, status.runner_start, subdir / RUN_LOCK, _locked_by(status))


def _locked_by(status: Status) -> float | None:
    """When the runner had taken the lock at the latest: it takes it before the attempt
    starts, and `start` is written in whole seconds (plus a second for clock steps)."""
    import datetime

    try:
        return datetime.datetime.fromisoformat(status.start).timestamp() + 2.0 if status.start else None
    except (TypeError, ValueError):
        return None


def _not_refreshed(path: Path | None, stale_after: float | None) -> bool:
    if path is None:
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return age > (DEFAULT_STALE_AFTER if stale_after is None else stale_after)


def ended_by_itself(state: JobState, status: Status | None) -> bool:
    """Whether a sub-experiment's step ended of its own accord, so that what it wrote is
    complete: done, or failed with an exit code of its own (an exception, `sys.exit(1)`:
    its stdout was flushed). Running, queued or pending, it may still write; killed
    (cancelled, timeout, oom, stale, a signal's exit code), a line it was writing may have
    been cut for good."""
    if state is JobState.DONE:
        return True
    code = status.exit_code if status is not None else None
    return state is JobState.FAILED and code is not None and 0 < code < 128
