"""Sub-experiment states, and the state a record shows once liveness is checked.

`.mrl.status` holds what the executing process last wrote; `observed_state` turns that
into what is true now: a `running` record whose process is gone is `stale`. The Slurm
backend refines this with what the scheduler says (backends/slurm.py).
"""

from __future__ import annotations

import socket
from enum import Enum
from typing import TYPE_CHECKING

from metarunlog.backends.registry import judged_by_liveness
from metarunlog.procs import pid_alive

if TYPE_CHECKING:
    from metarunlog.records import Status


class JobState(str, Enum):
    PENDING = "pending"  # never started (no .mrl.status)
    QUEUED = "queued"  # submitted to a scheduler, not started
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    OOM = "oom"
    NODE_FAIL = "node_fail"
    STALE = "stale"  # derived: the record says running/queued but nothing runs it

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

_HOST = socket.gethostname()


def recorded_state(status: Status | None) -> JobState:
    """The state as written, without any liveness check (no record: pending)."""
    return JobState.PENDING if status is None else status.state


def observed_state(status: Status | None) -> JobState:
    """The recorded state, with a local `running` record whose runner died shown as stale.

    Only records of backends the registry says are judged by liveness (local) are
    checked; the others (Slurm) are returned as written, for their backend's `poll`.
    """
    state = recorded_state(status)
    if not state.active or status is None or not judged_by_liveness(status.backend):
        return state
    if status.host not in (None, _HOST):
        return state  # another machine's process: we cannot tell from here
    # The step's process group outlives a runner killed with -9 (and holds .mrl.lock):
    # it is stale only once both are gone.
    pids = [p for p in (status.runner_pid, status.pid) if p is not None]
    if pids and not any(pid_alive(p) for p in pids):
        return JobState.STALE
    return state
