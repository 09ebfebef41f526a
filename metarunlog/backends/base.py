"""The Backend base class shared by the local pool and Slurm, the Job, RunOptions.

A backend is made per command for one experiment, `Backend(exp, options)`, and answers:

- `submit(jobs)`: start (local) or queue (Slurm) these jobs; returns without waiting.
- `poll(jobs) -> list[JobState]`: what is true now for each job (also stored in
  `job.state`); jobs this instance did not submit are read from their `.mrl.status`,
  checked for liveness (local) or against the scheduler (Slurm).
- `cancel(jobs)`: stop the running or queued ones among them.
- `wait(timeout)`: block until something may have changed, at most `timeout` seconds.
- `close()`: give back what the backend holds (signal handlers, threads).

and tells `mrl run` what it needs through the attributes `Backend` declares (`waits`,
`interrupted`, `slots`, `note`, `halted`). Which backends exist, their config block and
their `mrl run` options: `metarunlog.backends.registry`.

Executing one sub-experiment (rendering its command, writing `run.log` and
`.mrl.status`) is not a backend's business: every backend ends up in
`metarunlog.execute.execute(sub, options)`, in-process (local) or in an array task
(`python -m metarunlog.backends.task`, Slurm), so records look the same wherever a job ran.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from metarunlog.backends.registry import DEFAULT, blamed, get_backend, judged_by_liveness, spec
from metarunlog.errors import CorruptRecord, MrlError
from metarunlog.states import DEFAULT_STALE_AFTER, JobState, observed_state, recorded_state

if TYPE_CHECKING:
    from pathlib import Path

    from metarunlog.experiment import Experiment, SubExperiment
    from metarunlog.ownership import Claim
    from metarunlog.records import Status

__all__ = ["Backend", "FollowUp", "Job", "JobState", "RunOptions", "follow_ups", "get_backend"]

T = TypeVar("T")


@dataclass
class RunOptions:
    """What `mrl run` (or `.mrl.cfg` run.*) asks of a backend; each backend uses its part."""

    jobs: int = 1  # workers when no resources are given (local)
    resources: list[str] = field(default_factory=list)  # one worker per entry (local)
    retries: int = 0
    fail_fast: bool = False
    force: bool = False  # rerun done ones
    backend_options: Any = None  # the chosen backend's own options, from its `run_options` (None: defaults)
    heartbeat: Any = None  # an execute.Heartbeat refreshing live records (`run.heartbeat`), or None


@dataclass
class FollowUp:
    """A job a backend scheduled to run once a run's sub-experiments ended (Slurm: the
    `run.after` job), as `mrl status` shows it and `mrl cancel` of a whole experiment stops it."""

    what: str  # "run.after"
    job_id: str  # the scheduler's id
    state: JobState
    exit_code: int | None = None
    log: str = ""  # its output file, relative to the experiment folder
    note: str = ""  # why it waits, or what ended it

    def describe(self) -> str:
        """One line: `run.after: Slurm job 1240: failed (exit code 3); its output: ...`."""
        code = f" (exit code {self.exit_code})" if self.exit_code is not None and self.state.finished else ""
        note = f"; {self.note}" if self.note else ""
        log = f"; its output: {self.log}" if self.log else ""
        return f"{self.what}: Slurm job {self.job_id}: {self.state.value}{code}{note}{log}"


class _Unset:
    pass


UNSET = _Unset()


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
    fingerprint: str | None = None  # `sub.fingerprint()` when planned: execute checks it before starting
    changed: bool = False  # skipped: it changed after it was planned (execute.Changed)
    # ... because its folder was removed (execute.Removed): before it started (`not_run`
    # too) or while it ran; nothing of this run is recorded for it, and `state` says nothing
    removed: bool = False
    unreadable: str = ""  # its `.mrl.status` cannot be read (corrupt): why, naming the path
    # this run could not even start it (its folder read-only, the disk full): `state` is what
    # its record on disk says, from an earlier run, and `message` says why
    not_run: bool = False
    # cancelled while queued: this run never started it; `state` is what its record says
    # (`done` for a done one queued by --force, else `cancelled`)
    unstarted: bool = False
    # its backend could not say its state now: (who, why); `state` is its record's (observe_any)
    unread: tuple[str, str] | None = None

    @property
    def id(self) -> int:
        return self.sub.id

    @property
    def name(self) -> str:
        return self.sub.name if self.sub.name != "." else self.sub.exp.name

    def read_status(self) -> Status | None:
        """`.mrl.status` (None: never ran). A corrupt one reads as None with `unreadable`
        saying why: one bad file must not stop a command on the whole experiment."""
        try:
            self.status, self.unreadable = self.sub.read_status(), ""
        except CorruptRecord as e:
            self.status, self.unreadable = None, str(e)
        return self.status

    def observe(self, status: Status | None | _Unset = UNSET) -> JobState:
        """The state now of `status` (default: `.mrl.status` read again), liveness and
        heartbeat checked (`states.observed_state`); also stored in `job.state`. An
        unreadable record is `failed` (as `mrl table` shows it), its message naming the file."""
        if isinstance(status, _Unset):
            status = self.read_status()
        if self.unreadable:
            self.state, self.message = JobState.FAILED, self.unreadable
            return self.state
        self.state = observed_state(status, self.sub.status_path, stale_after(self.sub.exp))
        if self.state is JobState.STALE and status is not None:
            # read before its runner put the final record in place and let go of the lock
            # (checked after): the record read again says what happened ("001: stale" was
            # printed by mrl cancel of a job its runner had just recorded cancelled)
            again = self.read_status()
            if self.unreadable:  # as it was: what it had read stands
                self.status, self.unreadable = status, ""
            elif again != status:
                self.state = observed_state(again, self.sub.status_path, stale_after(self.sub.exp))
        return self.state


def stale_after(exp: Experiment) -> float:
    """`run.stale_after`: seconds without a heartbeat after which another host's record is stale."""
    value = exp.cfg["run"].get("stale_after")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else DEFAULT_STALE_AFTER


class NotProvided(MrlError, NotImplementedError):
    """A backend lacks a method the command needs: one `mrl: error:` line, not a traceback."""


class Backend:
    """What every backend provides; subclass it (see the module docstring).

    The attributes are what `mrl run` reads; the defaults suit a backend that runs jobs
    until they end.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how messages name it ("Slurm"); "" is its name
    waits: bool = True  # `mrl run` stays until the jobs end; False: it returns once they are queued
    interrupted: bool = False  # a signal stopped the run (`mrl run` exits 130)
    hung_up: bool = False  # ... and it was SIGHUP (the terminal closed): `mrl run` exits 129
    halted: bool = False  # --fail-fast saw a failure: nothing new starts
    submits_after: bool = False  # it schedules run.after itself (else `mrl run` runs it when the run ends)
    # how long `mrl cancel` waits, after cancel(jobs) returned, for jobs it said nothing about
    # (no job.message) to be no longer queued or running; then they are shown "still running".
    # 0: none (a cancel() that waits itself, as the built-in ones do)
    cancel_wait: float = 15.0

    def __init__(self, exp: Experiment, options: RunOptions | None = None) -> None:
        self.exp = exp
        self.options = options or RunOptions()
        self.warnings: list[str] = []  # for `mrl run` to say once, as `mrl: warning: ...` (it clears them)

    def own_options(self, kind: type[T]) -> T:
        """This backend's own options (`options.backend_options`), or `kind()`: its defaults."""
        got = self.options.backend_options
        return got if isinstance(got, kind) else kind()

    @property
    def note(self) -> str:
        """What `mrl run` prints after submitting (a scheduler's job id), or ""."""
        return ""

    @property
    def slots(self) -> Sequence[str | None]:
        """The workers `mrl run`'s progress shows, each with its resource (none: no slot lines)."""
        return ()

    # -- what the registry's declarations turn into -------------------------------------------
    @classmethod
    def run_options(cls, values: Mapping[str, Any], block: Mapping[str, Any]) -> Any:
        """This backend's options object from its `mrl run` options (`values`, by dest)
        and its config block `run.<name>`; None when it has none."""
        return None

    @classmethod
    def where(cls, options: RunOptions) -> str:
        """Where `mrl run` says the jobs go ("mrl: running 9 of 9 in EXPDIR on <where>")."""
        return cls.name

    @classmethod
    def preflight(cls, exp: Experiment, options: RunOptions) -> None:
        """Raise MrlError when this machine cannot run `options` at all (local: an open-file
        limit below what one job needs), before `mrl run` plans, claims or prints anything.
        Default: nothing to check."""
        return None

    @staticmethod
    def unsettled(status: Status | None) -> bool:
        """A finished record only this backend can settle (Slurm: did the scheduler end it?)."""
        return False

    @classmethod
    def owners(cls, exp: Experiment, claims: Sequence[Claim]) -> list[str]:
        """Which of this backend's claims in `EXPDIR/.mrl.owners/` (written at submit with
        `metarunlog.ownership.write_claim`) still own `exp`: one line each saying who
        ("slurm job(s) 1234"). While any does, `makebatch -replace`/`--extend` refuse.
        Default: none (an `mrl run` process's own claim is judged by `ownership`)."""
        return []

    @staticmethod
    def task_ids() -> tuple[str | None, str | None]:
        """(job id, node) of the task running now, from the scheduler's environment, for
        `python -m metarunlog.backends.task`; (None, None) outside a scheduler."""
        return None, None

    @classmethod
    def run_plan(cls, expdir: Path, plan: Path, index: int) -> int:
        """Inside a scheduler's task: run task `index` of a submission's `plan` file; the
        exit code of `python -m metarunlog.backends.task EXPDIR INDEX --plan PLAN`."""
        raise MrlError(f"the {cls.name} backend has no submission plans")

    @classmethod
    def follow_ups(cls, exp: Experiment) -> list[FollowUp]:
        """The jobs this backend scheduled after `exp`'s latest run (Slurm: its run.after
        job), with their state now; default: none."""
        return []

    @classmethod
    def cancel_follow_ups(cls, exp: Experiment) -> list[FollowUp]:
        """Stop every follow-up job of `exp` still queued or running (`mrl cancel` of the
        whole experiment); returns them with their state after that."""
        return []

    def dry_run(self, jobs: Sequence[Job]) -> str | None:
        """What `mrl run --dry-run` prints for this backend (Slurm: the sbatch scripts), or
        None: the rendered commands."""
        return None

    # -- the interface ------------------------------------------------------------------------
    def submit(self, jobs: Sequence[Job]) -> None:
        raise NotProvided(f"the {self.name or type(self).__name__} backend defines no submit(jobs): it cannot run jobs")

    def poll(self, jobs: Sequence[Job]) -> list[JobState]:
        """By default: what each job's `.mrl.status` says, with liveness checked."""
        return observe(jobs)

    def cancel(self, jobs: Sequence[Job]) -> None:
        raise NotProvided(
            f"the {self.name or type(self).__name__} backend defines no cancel(jobs): stop its jobs "
            "where they run (its scheduler's own command)"
        )

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)

    def close(self) -> None:
        return None


def observe(jobs: Sequence[Job]) -> list[JobState]:
    """Read each job's `.mrl.status` and derive its state on this machine (stale included)."""
    out = []
    for job in jobs:
        out.append(job.observe())
    return out


def observe_any(exp: Experiment, jobs: Sequence[Job], *, read: bool = True) -> list[JobState]:
    """States of jobs run by any backend: each record's own backend judges it.

    Local records are checked for liveness here; the others are handed to their backend's
    `poll` (Slurm asks the scheduler). A backend that cannot answer (no `squeue` on this
    machine, a controller that does not answer in time) leaves its records as written, says
    why in `job.message` (`unread_note`) and sets `job.unread`. `read=False`:
    each `job.status` was just read by the caller (`mrl table` reads them with the metrics).
    """
    by_backend: dict[str, list[Job]] = {}
    for job in jobs:
        status = job.read_status() if read else job.status
        if not asks_backend(status):
            job.observe(status)
        else:
            by_backend.setdefault(status.backend if status else DEFAULT, []).append(job)
    for name, group in by_backend.items():
        try:
            with blamed(name):
                get_backend(name)(exp, RunOptions()).poll(group)
        except MrlError as e:
            who = _label(name)
            for job in group:
                job.state, job.unread = recorded_state(job.status), (who, str(e))
                job.message = unread_note(who, str(e))
    return [j.state for j in jobs]


def unread_note(who: str, why: str, subject: str = "") -> str:
    """One line: the state `who` (Slurm) gives could not be read, and what is shown instead."""
    of = f" for the state of {subject}" if subject else ""
    return f"could not ask {who}{of}: {why}; shown is the last recorded state"


def _label(name: str) -> str:
    try:
        return get_backend(name).label or name
    except MrlError:
        return name


def follow_ups(exp: Experiment, records: Iterable[Status | None], *, cancel: bool = False) -> list[FollowUp]:
    """The follow-up jobs of `exp` (`Backend.follow_ups`), asked of the backends that its
    sub-experiments' `records` name; with `cancel`, those still active are stopped."""
    out: list[FollowUp] = []
    for name in dict.fromkeys(r.backend for r in records if r is not None and r.backend):
        try:
            if not spec(name).follow_ups:
                continue
            cls = get_backend(name)
        except MrlError:
            continue
        with blamed(name):
            out += cls.cancel_follow_ups(exp) if cancel else cls.follow_ups(exp)
    return out


def asks_backend(status: Status | None) -> bool:
    """Only the record's backend can say its state now (Slurm: a task queued or running, or
    one that ended without a verdict yet); the others are judged here, by liveness."""
    name = status.backend if status else DEFAULT
    return not judged_by_liveness(name) and (recorded_state(status).active or _unsettled(name, status))


def _unsettled(name: str, rec: Status | None) -> bool:
    """A finished record its backend still wants to check (Slurm: why a task ended)."""
    try:
        with blamed(name):
            return get_backend(name).unsettled(rec)
    except MrlError:
        return False
