"""The JSON records mrl keeps on disk, as dataclasses; raw dicts stop at `from_json`/`to_json`.

- `ExperimentRecord`: `EXPDIR/.mrl` (written by `mrl new`), with its `BatchRecord` (the
  `batch` block `mrl makebatch` adds).
- `SubRecord`: `SUBDIR/.mrl`, a sub-experiment's id and params.
- `Status`: `SUBDIR/.mrl.status`, what the process executing a sub-experiment (or the
  backend that queued it) last wrote; its transitions (`queued`, `begin`, `step_started`,
  `finished`, `cancelled`, ...) return the next record.

Reading never raises on a field: a record written by another mrl version, or edited by
hand, may hold anything. A wrong-typed value reads as None (or the field's default), and
keys this mrl does not know are kept in `extra` and written back unchanged, so old and
newer mrl versions can share folders.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from metarunlog.backends.registry import DEFAULT
from metarunlog.procs import valid_pid
from metarunlog.states import JobState

__all__ = ["BatchRecord", "ExperimentRecord", "Status", "SubRecord", "fingerprint", "valid_pid"]

# -- coercion: a value read from disk, or None -----------------------------------------------


def _int(v: Any) -> int | None:
    return v if type(v) is int else None  # type() is: a JSON true is not a count


def _count(v: Any) -> int:
    return v if type(v) is int and v >= 0 else 0


def _str(v: Any) -> str | None:
    return v if type(v) is str else None


def _id_str(v: Any) -> str | None:
    """A string, or a number written where a string belongs (a job id, a resource)."""
    if type(v) is str:
        return v
    return str(v) if type(v) is int else None


def _seconds(v: Any) -> float | None:
    if type(v) in (int, float) and math.isfinite(v) and v >= 0:
        return float(v)
    return None


def _str_list(v: Any) -> list[str]:
    return [x for x in v if type(x) is str] if type(v) is list else []


def _dict(v: Any) -> dict[str, Any]:
    return v if type(v) is dict else {}


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


# -- SUBDIR/.mrl.status --------------------------------------------------------------------------

_STATUS_KEYS = frozenset(
    {
        "state",
        "exitCode",
        "attempts",
        "stepsDone",
        "steps",
        "start",
        "end",
        "duration",
        "host",
        "pid",
        "runnerPid",
        "resource",
        "backend",
        "jobId",
        "node",
        "command",
        "submitted",
        "slurmState",
        "pidStart",
        "runnerStart",
        "packed",
        "reason",
        "requeues",
        "doneBefore",
        "startEpoch",
    }
)


def _state(v: Any) -> JobState:
    if v is None:
        return JobState.PENDING
    try:
        return JobState(v)
    except (ValueError, TypeError):
        return JobState.UNKNOWN  # a newer mrl's: what it is, never failed (nor done)


class _JsonView(Mapping[str, Any]):
    """A record read as the JSON object it is stored as (`status["exitCode"]`,
    `exp.record.get("gitHash")`): the form hook files, notebooks and report templates
    written against the files have always used. Read-only; code uses the fields."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())

    def __bool__(self) -> bool:  # a record is never empty (and `status or ...` must not build the JSON)
        return True


@dataclass
class Status(_JsonView):
    """`SUBDIR/.mrl.status`. `state` is as written; `states.observed_state` adds liveness."""

    state: JobState = JobState.PENDING
    exit_code: int | None = None
    attempts: int = 0
    steps_done: int = 0  # a rerun resumes here
    steps: int = 0
    start: str | None = None  # ISO time the attempt started
    end: str | None = None
    duration: float | None = None  # seconds of the last attempt
    host: str | None = None
    pid: int | None = None  # the running step's process group leader
    runner_pid: int | None = None  # the process executing it (mrl run, or the array task)
    resource: str | None = None
    backend: str = DEFAULT  # a record without one is the default backend's (local)
    job_id: str | None = None  # Slurm: "<array job>_<task>"
    node: str | None = None
    command: list[str] = field(default_factory=list)  # the rendered steps
    submitted: str | None = None  # Slurm: when it was queued
    slurm_state: str | None = None  # Slurm's final word, once the scheduler settled it
    # Who `pid` / `runner_pid` are (`procs.start_id`: boot id and start time): a pid that
    # does not match is another process (reused pid, reboot) and is never signalled.
    pid_start: str | None = None
    runner_start: str | None = None
    packed: bool = False  # Slurm: one of several sub-experiments its array task runs (--pack)
    reason: str | None = None  # why mrl ended it, when no command said so (a requeue limit...)
    requeues: int = 0  # times its task was requeued since it was submitted (the next attempt continues)
    # Slurm: the done record a --force submission queued this one over, until the rerun
    # starts: what it goes back to when its task ends first (`dropped_rerun`)
    done_before: dict[str, Any] | None = None
    # `start` to the microsecond, as seconds since the epoch: `start` is whole seconds (its
    # documented form), so a running one's time since it would read up to 1 s high
    start_epoch: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other mrl versions
    # `state` as written when this mrl does not know it (UNKNOWN): written back as it was
    written_state: Any = None

    @property
    def unknown_state(self) -> str:
        """The name of a state this mrl does not know (a newer mrl's), for messages; "" else."""
        if self.state is not JobState.UNKNOWN:
            return ""
        text = self.written_state if isinstance(self.written_state, str) else json.dumps(self.written_state)
        return text if len(text) <= 40 else text[:37] + "..."

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Status:
        """The record from its JSON object; never raises on a field (see the module doc)."""
        g = data.get
        extra = {} if _STATUS_KEYS.issuperset(data) else _extra(data, _STATUS_KEYS)
        state = _state(g("state"))
        return cls(
            state,
            _int(g("exitCode")),
            _count(g("attempts")),
            _count(g("stepsDone")),
            _count(g("steps")),
            _str(g("start")),
            _str(g("end")),
            _seconds(g("duration")),
            _str(g("host")),
            valid_pid(g("pid")),
            valid_pid(g("runnerPid")),
            _id_str(g("resource")),
            _str(g("backend")) or DEFAULT,
            _id_str(g("jobId")),
            _str(g("node")),
            _str_list(g("command")),
            _str(g("submitted")),
            _str(g("slurmState")),
            _str(g("pidStart")),
            _str(g("runnerStart")),
            g("packed") is True,
            _str(g("reason")),
            _count(g("requeues")),
            _dict(g("doneBefore")) or None,
            _seconds(g("startEpoch")),
            extra,
            g("state") if state is JobState.UNKNOWN else None,
        )

    def to_json(self) -> dict[str, Any]:
        unknown = self.state is JobState.UNKNOWN and self.written_state is not None
        out: dict[str, Any] = {
            "state": self.written_state if unknown else self.state.value,
            "exitCode": self.exit_code,
            "attempts": self.attempts,
            "stepsDone": self.steps_done,
            "steps": self.steps,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "host": self.host,
            "pid": self.pid,
            "runnerPid": self.runner_pid,
            "resource": self.resource,
            "backend": self.backend,
            "jobId": self.job_id,
            "node": self.node,
            "command": list(self.command),
        }
        if self.submitted is not None:
            out["submitted"] = self.submitted
        if self.slurm_state is not None:
            out["slurmState"] = self.slurm_state
        if self.pid_start is not None:
            out["pidStart"] = self.pid_start
        if self.runner_start is not None:
            out["runnerStart"] = self.runner_start
        if self.packed:
            out["packed"] = True
        if self.reason is not None:
            out["reason"] = self.reason
        if self.requeues:
            out["requeues"] = self.requeues
        if self.done_before is not None:
            out["doneBefore"] = self.done_before
        if self.start_epoch is not None:
            out["startEpoch"] = self.start_epoch
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    # -- transitions: each returns the next record, this one is left as it was ---------------

    def _next(self, **changes: Any) -> Status:
        # dataclasses.replace at a fifth of its cost (a runner makes five per job)
        if not _STATUS_FIELDS.issuperset(changes):
            raise TypeError(f"not fields of Status: {sorted(set(changes) - _STATUS_FIELDS)}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__, extra=dict(self.extra))
        new.__dict__.update(changes)
        return new

    def queued(self, backend: str, job_id: str, now: str, *, packed: bool = False) -> Status:
        """Submitted to a scheduler: earlier attempts and finished steps kept (`--force`
        on a done one runs every step again, and keeps the done record in `done_before`
        until the rerun starts); `packed`: its task runs others too."""
        before = self.to_json() if self.state is JobState.DONE else None
        return self._next(
            done_before=before,
            packed=packed,
            reason=None,
            requeues=0,
            state=JobState.QUEUED,
            exit_code=None,
            start=None,
            start_epoch=None,
            end=None,
            duration=None,
            host=None,
            pid=None,
            pid_start=None,
            runner_pid=None,
            runner_start=None,
            resource=None,
            backend=backend,
            job_id=job_id,
            node=None,
            submitted=now,
            slurm_state=None,
            steps_done=0 if self.state is JobState.DONE else self.steps_done,
        )

    def begin(
        self,
        steps: list[str],
        *,
        first: int,
        host: str,
        runner_pid: int,
        runner_start: str | None = None,
        resource: str | None,
        backend: str,
        job_id: str | None,
        node: str | None,
    ) -> Status:
        """A process takes it up to run `steps` from step `first` (attempts so far kept)."""
        return self._next(
            state=JobState.RUNNING,
            exit_code=None,
            steps_done=first,
            steps=len(steps),
            start=None,
            start_epoch=None,
            end=None,
            duration=None,
            host=host,
            pid=None,
            pid_start=None,
            runner_pid=runner_pid,
            runner_start=runner_start,
            resource=resource,
            backend=backend,
            job_id=job_id,
            node=node,
            command=list(steps),
            slurm_state=None,
            reason=None,
            submitted=self.submitted if backend == self.backend else None,  # who queued it
            packed=self.packed and backend == self.backend,
            requeues=self.requeues if backend == self.backend else 0,
            done_before=None,  # the rerun starts: the earlier result is being replaced
        )

    def attempt_started(self, now: str) -> Status:
        return self._next(
            attempts=self.attempts + 1, start=now, start_epoch=time.time(), end=None, duration=None, exit_code=None
        )

    def step_started(self, pid: int, start: str | None = None) -> Status:
        """The step's process group leader `pid` started (`start`: its `procs.start_id`)."""
        return self._next(pid=pid, pid_start=start)

    def step_done(self, k: int) -> Status:
        """Step `k` (0-based) ended well: a rerun starts after it."""
        return self._next(steps_done=k + 1)

    def finished(
        self, state: JobState, exit_code: int | None, now: str, duration: float, *, reason: str | None = None
    ) -> Status:
        """The attempt ended (done, failed or cancelled) with the step's exit code; `reason`:
        why mrl ended it, when the command did not (a USR1 with no requeue left)."""
        new = self._next(state=state, exit_code=exit_code, end=now, duration=duration, pid=None, pid_start=None)
        return new if reason is None else new._next(reason=reason)

    def retrying(self, exit_code: int | None, now: str, duration: float) -> Status:
        """An attempt failed and another follows: still `running` (between attempts, no
        step pid), so `mrl status` and `mrl cancel` see it as the live work it is."""
        return self._next(state=JobState.RUNNING, exit_code=None, end=None, duration=duration, pid=None, pid_start=None)

    def dropped_rerun(self) -> Status | None:
        """The done record a `--force` submission queued this one over, while that rerun
        has not started; None otherwise. What the record goes back to when its task ends
        first (cancelled in the queue, a time limit): the rerun never happened, and the
        earlier attempt's result (its metrics, run with these params) stands, as locally."""
        if self.state is not JobState.QUEUED or self.done_before is None:
            return None
        return Status.from_json(self.done_before)

    def cancelled(self, now: str, *, slurm_state: str | None = None) -> Status:
        """Stopped from outside (`mrl cancel`, scancel) while its runner could not say so
        (a done one whose --force rerun never started: done, as it was)."""
        if (before := self.dropped_rerun()) is not None:
            return before
        return self._next(
            state=JobState.CANCELLED,
            end=self.end or now,
            pid=None,
            pid_start=None,
            slurm_state=slurm_state or self.slurm_state,
        )

    def cancelled_unstarted(self, now: str) -> Status:
        """Cancelled in a runner's queue, before this run started it: no exit code, duration or
        start of an earlier attempt stays next to `cancelled` as if this run had made them
        (attempts unchanged: the earlier ones are in run.log)."""
        gone = dict(exit_code=None, start=None, start_epoch=None, duration=None, pid=None, pid_start=None)
        return self._next(state=JobState.CANCELLED, end=now, **gone)

    def settled(self, slurm_state: str, state: JobState | None, node: str, now: str) -> Status:
        """The scheduler's final word written in; `state` when it changes the record's."""
        before = self.dropped_rerun()
        if before is not None and state is not None and state.finished:  # it never started: done, as it was
            return before
        new = self._next(slurm_state=slurm_state)
        if state is not None and state is not self.state:
            new = new._next(state=state, end=self.end or now, pid=None, pid_start=None, node=self.node or node or None)
        return new

    def reason_shown(self, shown: JobState) -> str:
        """`reason` (why mrl ended it or never started it), while `shown`, the state a
        command shows, is this record's own; "" otherwise: a later word (Slurm's verdict, a
        stale runner) is about something else. `mrl status`, `mrl info` and the report ask this."""
        return (self.reason or "") if self.state is shown else ""

    def gave_up(self, reason: str, now: str) -> Status:
        """Failed without running its command again: `reason` says why (a requeue limit)."""
        return self._next(state=JobState.FAILED, exit_code=None, end=now, pid=None, reason=reason)

    def not_started(self, reason: str) -> Status:
        """Never started by the task it was queued for, which ended first (its time limit,
        its requeue limit): `pending` again, nothing of an attempt in it, `reason` saying
        why; its job id kept (which task dropped it), so a plain `mrl run` runs it. A done
        one whose --force rerun this was is done again, as it was (`dropped_rerun`)."""
        if (before := self.dropped_rerun()) is not None:
            return before
        return self._without_attempt(state=JobState.PENDING, reason=reason)

    def requeued(self, now: str) -> Status:
        """Back in its scheduler's queue (a requeue): same job id, the next attempt to come."""
        return self._without_attempt(state=JobState.QUEUED, submitted=now, requeues=self.requeues + 1)

    def _without_attempt(self, **changes: Any) -> Status:
        """Nothing of a running or ended attempt left in it: no process, node, times or verdict."""
        return self._next(
            exit_code=None,
            start=None,
            start_epoch=None,
            end=None,
            duration=None,
            pid=None,
            pid_start=None,
            runner_pid=None,
            runner_start=None,
            host=None,
            node=None,
            slurm_state=None,
            **changes,
        )


# -- SUBDIR/.mrl ---------------------------------------------------------------------------------

_SUB_KEYS = frozenset({"subExpId", "params"})


@dataclass
class SubRecord:
    """`SUBDIR/.mrl`: which sub-experiment this is and its params."""

    sub_exp_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubRecord:
        return cls(_int(data.get("subExpId")), dict(_dict(data.get("params"))), _extra(data, _SUB_KEYS))

    def to_json(self) -> dict[str, Any]:
        return {"subExpId": self.sub_exp_id, "params": self.params, **_without(self.extra, _SUB_KEYS)}


_STATUS_FIELDS = frozenset(f.name for f in dataclasses.fields(Status))


def fingerprint(params: Mapping[str, Any] | None, files: Iterable[tuple[str, bytes | None]] = ()) -> str:
    """A digest of what a sub-experiment was planned from: its params (None: its `.mrl` is
    gone) and the files makebatch rendered into its folder (name, bytes or None if absent).

    A runner or task records it when planning and compares it, under the sub-experiment's
    lock, right before starting (`SubExperiment.fingerprint`, `ExecOptions.fingerprint`).
    """
    import hashlib
    import json

    h = hashlib.sha256(b"-" if params is None else json.dumps(params, sort_keys=True, default=str).encode())
    for name, data in files:
        h.update(b"\0" + name.encode() + (b"\0-" if data is None else b"\0+" + data))
    return h.hexdigest()[:32]


def _without(extra: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k not in known}


# -- EXPDIR/.mrl: batch block ----------------------------------------------------------------------

# field name -> JSON key, for the fields written only when set
_BATCH_OPTIONAL = {
    "params": "params",
    "rendered": "rendered",
    "first_made": "firstMade",
    "added": "added",
    "trash": "trash",
    "defaults": "defaults",
    "grids": "grids",
    "cli": "cli",
}
_BATCH_KEYS = frozenset(
    {
        "n",
        "single",
        "templates",
        "made",
        "grid",
        "paramsList",
        "set",
        "repeat",
        "sample",
        "seed",
        "duplicates",
        *_BATCH_OPTIONAL.values(),
    }
)


@dataclass
class BatchRecord:
    """The `batch` block of `EXPDIR/.mrl`: what `mrl makebatch` made, and from what."""

    n: int = 0  # sub-experiments
    single: bool = False  # a one-job experiment: EXPDIR is its own only sub-experiment
    templates: list[str] = field(default_factory=list)
    made: str | None = None  # ISO time
    grid: dict[str, Any] = field(default_factory=dict)
    params_list: list[Any] | None = None  # MRL:params as written
    set: dict[str, Any] = field(default_factory=dict)
    repeat: int | None = None
    sample: int | None = None
    seed: int | None = None  # the seed a sample used
    duplicates: int = 0
    params: dict[str, Any] | None = None  # single: the one job's params
    rendered: dict[str, str] | None = None  # single: sha256 of each rendered file
    first_made: str | None = None  # --extend: when the first batch was made
    added: int | None = None  # --extend: how many this time
    trash: str | None = None  # -replace: where the old ones went (relative to EXPDIR)
    defaults: dict[str, Any] | None = None  # MRL:defaults
    grids: list[Any] | None = None  # MRL:grids
    cli: dict[str, Any] | None = None  # --set/--grid/--repeat as given: --extend applies them again
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchRecord:
        g = data.get
        params_list = g("paramsList")
        return cls(
            _count(g("n")),
            g("single") is True,
            _str_list(g("templates")),
            _str(g("made")),
            _dict(g("grid")),
            params_list if type(params_list) is list else None,
            _dict(g("set")),
            _int(g("repeat")),
            _int(g("sample")),
            _int(g("seed")),
            _count(g("duplicates")),
            _dict(g("params")) if "params" in data else None,
            _dict(g("rendered")) if "rendered" in data else None,
            _str(g("firstMade")),
            _int(g("added")),
            _str(g("trash")),
            _dict(g("defaults")) if "defaults" in data else None,
            g("grids") if type(g("grids")) is list else None,
            _dict(g("cli")) if "cli" in data else None,
            _extra(data, _BATCH_KEYS),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "single": self.single,
            "templates": self.templates,
            "made": self.made,
            "grid": self.grid,
            "paramsList": self.params_list,
            "set": self.set,
            "repeat": self.repeat,
            "sample": self.sample,
            "seed": self.seed,
            "duplicates": self.duplicates,
        }
        for name, key in _BATCH_OPTIONAL.items():
            value = getattr(self, name)
            if value is not None:
                out[key] = value
        return {**out, **_without(self.extra, _BATCH_KEYS)}


# -- EXPDIR/.mrl ---------------------------------------------------------------------------------


def _bool(v: Any) -> bool:
    return v is True


def _text(v: Any) -> str:
    return v if type(v) is str else ""


# field name -> (JSON key, how a value read from disk becomes the field)
# The original metarunlog's gitHash suffix for an experiment made with -nc.
SLOPPY = "-sloppy"
_EXP_FIELDS: dict[str, tuple[str, Any]] = {
    "exp_id": ("expId", _int),
    "basedir": ("basedir", _str),
    "code_subdir": ("codeSubdir", _str),
    "git_hash": ("gitHash", _str),
    "git_description": ("gitDescription", _str),
    "git_describe": ("gitDescribe", _str),
    "branch": ("branch", _str),
    "dirty": ("dirty", _bool),
    "dirty_files": ("dirtyFiles", _str_list),
    "git_fail_untracked": ("gitFailUntracked", _str),
    "timestamp": ("timestamp", _str),
    "user": ("user", _str),
    "host": ("host", _str),
    "description": ("description", _text),
    "copied_from": ("copiedFrom", _str),
    "copied_files": ("copiedFiles", _str_list),
    "mrl_version": ("mrlVersion", _str),
    "snapshot": ("snapshot", _dict),
    "tags": ("tags", _str_list),
    "copied": ("copied", _dict),
    "run": ("run", _dict),
    "rerun_of": ("rerunOf", _dict),
    "reproduces": ("reproduces", _dict),
}
_EXP_KEYS = frozenset([*(key for key, _ in _EXP_FIELDS.values()), "batch"])
# Written only when not empty (records of older mrl versions lack them).
_EXP_WHEN_SET = frozenset({"tags", "copied", "run", "rerunOf", "reproduces"})


@dataclass
class ExperimentRecord(_JsonView):
    """`EXPDIR/.mrl`: what `mrl new` pinned, plus the `batch` block once expanded.

    Also a read-only mapping over its JSON keys (`exp.record["gitHash"]`), the form hook
    files and notebooks have always used. A field whose value on disk had another type
    (an older tool's record) reads as its default and is written back as it was found,
    unless something set it since.
    """

    exp_id: int | None = None
    basedir: str | None = None  # the project's folder when it was made
    code_subdir: str | None = None  # the project's folder inside code/ ("" at the repository's top)
    git_hash: str | None = None
    git_description: str | None = None  # the commit's subject
    git_describe: str | None = None  # `git describe --always --dirty`
    branch: str | None = None
    dirty: bool = False
    dirty_files: list[str] = field(default_factory=list)
    git_fail_untracked: str | None = None  # "yes": untracked files counted as changes
    timestamp: str | None = None
    user: str | None = None
    host: str | None = None
    description: str = ""
    copied_from: str | None = None
    copied_files: list[str] = field(default_factory=list)
    mrl_version: str | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)  # how code/ was written (metarunlog.snapshot)
    tags: list[str] = field(default_factory=list)  # `mrl tag`; written only once set
    # Where each copied file came from: {"conf.lua": "0001" | "basedir@<sha>" | ...}
    # (copiedFrom stays: the experiment -cp named, as the original wrote it).
    copied: dict[str, Any] = field(default_factory=dict)
    # The effective `run` block at `mrl new`: what this experiment runs (empty: none pinned,
    # the project's block applies, as for experiments made before mrl pinned it).
    run: dict[str, Any] = field(default_factory=dict)
    rerun_of: dict[str, Any] = field(default_factory=dict)  # `mrl rerun`: {"expId", "subExpIds", "gitHash"}
    reproduces: dict[str, Any] = field(default_factory=dict)  # `mrl reproduce`: the same keys
    batch: BatchRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, and raw values of coerced ones
    # Keys the file did not have: not written back while unset (an older record stays as
    # its own mrl version reads it).
    absent: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentRecord:
        values, extra = {}, _extra(data, _EXP_KEYS)
        for name, (key, coerce) in _EXP_FIELDS.items():
            values[name] = v = coerce(data.get(key))
            if key in data and v != data[key]:
                extra[key] = data[key]
        batch = data.get("batch")
        if "batch" in data and type(batch) is not dict:
            extra["batch"] = batch
        absent = frozenset(key for key, _ in _EXP_FIELDS.values() if key not in data)
        return cls(
            **values, batch=BatchRecord.from_json(batch) if type(batch) is dict else None, extra=extra, absent=absent
        )

    @property
    def commit(self) -> str | None:
        """The pinned commit: gitHash without the `-sloppy` the original metarunlog appended
        for an experiment made from a dirty tree (`mrl new -nc`; it saved no diff)."""
        if self.git_hash and self.git_hash.endswith(SLOPPY):
            return self.git_hash[: -len(SLOPPY)] or None
        return self.git_hash

    @property
    def sloppy(self) -> bool:
        """Made by the original metarunlog with -nc: the commit plus changes it did not keep."""
        return bool(self.git_hash and self.git_hash.endswith(SLOPPY))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (key, coerce) in _EXP_FIELDS.items():
            value = getattr(self, name)
            if value == coerce(None) and (key in self.absent or key in _EXP_WHEN_SET):
                continue
            out[key] = self.extra[key] if key in self.extra and coerce(self.extra[key]) == value else value
        if self.batch is not None:
            out["batch"] = self.batch.to_json()
        elif "batch" in self.extra:
            out["batch"] = self.extra["batch"]
        return {**out, **_without(self.extra, _EXP_KEYS)}
