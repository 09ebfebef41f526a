"""The Backend protocol shared by the local pool and Slurm, the Job record, the registry.

A backend is made per command for one experiment, `Backend(exp, options)`, and answers:

- `submit(jobs)`: start (local) or queue (Slurm) these jobs; returns without waiting.
- `poll(jobs) -> list[JobState]`: what is true now for each job (also stored in
  `job.state`); jobs this instance did not submit are read from their `.mrl.status`,
  checked for liveness (local) or against the scheduler (Slurm).
- `cancel(jobs)`: stop the running or queued ones among them.
- `wait(timeout)`: block until something may have changed, at most `timeout` seconds.
- `close()`: give back what the backend holds (signal handlers, threads).

Executing one sub-experiment (rendering its command, writing `run.log` and
`.mrl.status`) is not a backend's business: every backend ends up in
`metarunlog.execute`, in-process (local) or in an array task (Slurm), so records look the
same wherever a job ran.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from metarunlog.errors import MrlError
from metarunlog.states import JobState, observed_state, recorded_state

if TYPE_CHECKING:
    from metarunlog.experiment import Experiment, SubExperiment
    from metarunlog.records import Status

__all__ = ["Backend", "Job", "JobState", "RunOptions", "get_backend", "BACKENDS"]

# name -> "module:Class"; imported only when asked for, so `mrl status` stays light.
BACKENDS = {
    "local": "metarunlog.backends.local:LocalBackend",
    "slurm": "metarunlog.backends.slurm:SlurmBackend",
}


@dataclass
class RunOptions:
    """What `mrl run` (or `.mrl.cfg` run.*) asks of a backend; each backend uses its part."""

    jobs: int = 1  # local: workers when no resources are given
    resources: list[str] = field(default_factory=list)  # local: one worker per entry
    retries: int = 0
    fail_fast: bool = False
    force: bool = False  # rerun done ones
    slurm_opts: list[str] = field(default_factory=list)  # --slurm-opt, in order
    max_parallel: int | None = None  # Slurm's %N throttle
    wait: bool = False  # Slurm: stay until the jobs end (--wait), like a local run


@dataclass(eq=False)
class Job:
    """One sub-experiment as a backend sees it."""

    sub: SubExperiment
    steps: list[str] = field(default_factory=list)  # the rendered run.command
    state: JobState = JobState.PENDING
    status: Status | None = None  # the last `.mrl.status` read or written
    resource: str | None = None  # local: the slot's resource while it runs
    slot: int | None = None  # local: the worker slot running it
    job_id: str | None = None  # Slurm: "<array job>_<task>"
    message: str = ""  # why it was skipped, or what went wrong outside the command
    skipped: bool = False  # left alone: another runner has it (its state is theirs)

    @property
    def id(self) -> int:
        return self.sub.id

    @property
    def name(self) -> str:
        return self.sub.name if self.sub.name != "." else self.sub.exp.name

    def read_status(self) -> Status | None:
        self.status = self.sub.read_status()
        return self.status


class Backend(Protocol):
    """What every backend provides. Subclass it to inherit `wait` and `close`.

    `waits`: whether `mrl run` stays until the jobs end (local) or returns once they are
    queued (a scheduler's backend may say False).
    """

    name: str
    waits: bool = True

    def __init__(self, exp: Experiment, options: RunOptions) -> None: ...

    def submit(self, jobs: Sequence[Job]) -> None: ...

    def poll(self, jobs: Sequence[Job]) -> list[JobState]: ...

    def cancel(self, jobs: Sequence[Job]) -> None: ...

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)

    def close(self) -> None:
        return None


def observe(jobs: Sequence[Job]) -> list[JobState]:
    """Read each job's `.mrl.status` and derive its state on this machine (stale included)."""
    out = []
    for job in jobs:
        job.state = observed_state(job.read_status())
        out.append(job.state)
    return out


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as `name` ('local', 'slurm')."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise MrlError(
            f"unknown backend {name!r}: use one of {', '.join(sorted(BACKENDS))} "
            "(--backend, or run.backend in .mrl.cfg)"
        ) from None
    module, cls = target.split(":")
    try:
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as e:
        raise MrlError(f"the {name} backend is not available in this mrl ({e})") from e


def observe_any(exp: Experiment, jobs: Sequence[Job]) -> list[JobState]:
    """States of jobs run by any backend: each record's own backend judges it.

    Local records are checked for liveness here; the others are handed to their backend's
    `poll` (Slurm asks the scheduler). A backend that cannot answer (no `squeue` on this
    machine) leaves its records as written and says why in `job.message`.
    """
    by_backend: dict[str, list[Job]] = {}
    for job in jobs:
        status = job.read_status()
        name = status.backend if status else "local"
        if name == "local" or not (recorded_state(status).active or _unsettled(name, status)):
            job.state = observed_state(status)
        else:
            by_backend.setdefault(name, []).append(job)
    for name, group in by_backend.items():
        try:
            get_backend(name)(exp, RunOptions()).poll(group)
        except MrlError as e:
            for job in group:
                job.state = recorded_state(job.status)
                job.message = f"state as last written (could not ask {name}: {e})"
    return [j.state for j in jobs]


def _unsettled(name: str, rec: Status | None) -> bool:
    """A finished record its backend still wants to check (Slurm: why a task ended)."""
    try:
        check = getattr(get_backend(name), "unsettled", None)
    except MrlError:
        return False
    return bool(check and check(rec))
