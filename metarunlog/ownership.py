"""Who owns an experiment: the `mrl run` processes and scheduler submissions working on it.

While a run owns an experiment, `mrl makebatch -replace` and `--extend` refuse (the run
planned the sub-experiments as they are). Ownership is a claim file in
`EXPDIR/.mrl.owners/`, one per owner:

- an `mrl run` process writes `runner-<host>-<pid>.json` and holds a flock on it
  (O_CLOEXEC: its steps never inherit it) for as long as it runs; the heartbeat refreshes
  its mtime. On this host it owns the experiment while that flock is held; on another host
  (shared filesystem) while its mtime is younger than `run.stale_after`.
- a backend whose jobs outlive `mrl run` (Slurm) writes its own claim with `write_claim`
  (`backend` set, `job_ids`), and judges it in `Backend.owners(exp, claims)` (Slurm: tasks
  still pending or running).

Claims and checks both happen under the experiment's batch lock (`batch_lock`): a
makebatch either finished before a runner planned, or sees the runner's claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog import jsonio
from metarunlog.errors import MrlError
from metarunlog.experiment import finish_batch_journal
from metarunlog.locks import is_flocked
from metarunlog.procs import HOST

if TYPE_CHECKING:
    from metarunlog.backends.base import Job
    from metarunlog.experiment import Experiment
    from metarunlog.procs import FoundStep
    from metarunlog.records import Status

OWNERS = ".mrl.owners"
RUNNER = "runner"  # the `backend` of a claim written by an `mrl run` process itself
DEFAULT_STALE_AFTER = 600.0  # run.stale_after's default (seconds)
BATCH_WAIT_S = 10.0  # how long a runner waits for a makebatch in progress


@dataclass
class Claim:
    """One claim file of `EXPDIR/.mrl.owners/`."""

    backend: str  # RUNNER, or the backend that wrote it (its `owners` judges it)
    host: str
    pid: int | None
    started: str
    job_ids: list[str] = field(default_factory=list)  # a scheduler's jobs
    path: Path | None = None  # where it was read from
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> Claim:
        from metarunlog.procs import valid_pid

        ids = data.get("jobIds")
        return cls(
            str(data.get("backend") or RUNNER),
            str(data.get("host") or ""),
            valid_pid(data.get("pid")),
            str(data.get("started") or ""),
            [str(i) for i in ids] if isinstance(ids, list) else [],
            path,
            {k: v for k, v in data.items() if k not in ("backend", "host", "pid", "started", "jobIds")},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "host": self.host, "pid": self.pid, "started": self.started}
        if self.job_ids:
            out["jobIds"] = list(self.job_ids)
        return {**out, **self.extra}

    def describe(self) -> str:
        """Who this is, for the one line makebatch prints."""
        if self.job_ids:
            return f"{self.backend} job(s) {', '.join(self.job_ids)}"
        return f"mrl run (pid {self.pid} on {self.host}, since {self.started})"


# -- writing --------------------------------------------------------------------------------------


class RunnerClaim:
    """The claim of this `mrl run` process: held (flock) until `release()` or death.

    Next to it (same stem): `<stem>.jobs`, the ids this run planned (`set_jobs`), and the
    cancel requests `mrl cancel` leaves for it (`<stem>.cancel-<pid>.req`, a JSON list of
    ids), renamed `<stem>.cancel-<pid>.taken` once it is taken up (`mrl cancel` then waits
    for the answer while the runner lives) and answered with `<stem>.cancel-<pid>.done` (the
    ids it cancelled).
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        orphans: dict[int, Unrecorded] | None = None,
        others: dict[int, str] | None = None,
    ) -> None:
        self.path = path
        self._fd: int | None = fd
        self.stem = path.name[: -len(".json")]
        # {id: step}: live steps that runners killed on this host may have left (see `claim_runner`)
        self.orphans = orphans or {}
        # {id: "step (pid N) of the mrl run (pid M)"}: live steps of this host's other live runners
        self.others = others or {}

    def set_jobs(self, ids: list[int]) -> None:
        """The sub-experiments this run will execute: what `mrl cancel` may ask it to stop."""
        jsonio.write_json(self.path.parent / f"{self.stem}.jobs", ids, durable=False)

    def take_requests(self) -> list[tuple[Path, set[int]]]:
        """Cancel requests waiting for this run: (request, ids); answer each with `answer`."""
        out = []
        try:
            names = [n for n in os.listdir(self.path.parent) if n.startswith(self.stem + ".cancel-")]
        except OSError:
            return []
        for name in names:
            if not name.endswith(".req"):
                continue
            path = self.path.parent / name
            try:
                ids = jsonio.read_json(path)
                # taken: `mrl cancel` waits for the answer while this runner lives, however
                # long stopping thousands takes, instead of giving up on it after a while
                os.replace(path, path.with_suffix(".taken"))
            except (OSError, MrlError):
                continue
            out.append((path, {i for i in ids if type(i) is int} if isinstance(ids, list) else set()))
        return out

    @staticmethod
    def answer(request: Path, cancelled: list[int], notes: Mapping[int, str] | None = None) -> None:
        """`cancelled`: the ids this run cancelled; `notes`: what `mrl cancel` prints beside
        those whose state alone misleads (a done one queued by --force: "cancelled before it
        started"). Without notes, the answer is the plain list (as before notes existed)."""
        try:
            jsonio.write_json(request.with_suffix(".done"), _answer_body(cancelled, notes or {}), durable=False)
        except OSError:  # no room for it (disk full): into the space the request already holds
            with contextlib.suppress(OSError):
                _answer_in_place(request, cancelled, notes or {})
            return
        for path in (request, request.with_suffix(".taken")):
            with contextlib.suppress(OSError):
                path.unlink()

    def serve(self) -> None:
        """This run takes up cancel requests from now on (`serving`): `mrl cancel` waits
        for its answer from this moment, however long its plan and submit took. On a full
        disk, an empty file (no data block) says it as well."""
        path = self.path.parent / f"{self.stem}.serving"
        try:
            jsonio.write_text(path, jsonio.now() + "\n", durable=False)
        except OSError:
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))

    def touch(self) -> None:
        """The heartbeat: another host tells a live runner from a crashed one by the mtime."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def release(self) -> None:
        if self._fd is None:
            return
        _remove_claim_files(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunnerClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def write_claim(exp: Experiment, claim: Claim, name: str) -> Path:
    """Write `claim` as `EXPDIR/.mrl.owners/<name>.json` (for a backend's own claims)."""
    folder = exp.dir / OWNERS
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:  # a file of that name (made by hand): one line naming it, not a traceback
        raise MrlError(
            f"not a directory: {folder} (a file stands where mrl keeps a folder: move or remove it)"
        ) from None
    path = folder / f"{name}.json"
    jsonio.write_json(path, claim.to_json())
    return path


def claim_runner(exp: Experiment) -> RunnerClaim:
    """Claim `exp` for this process (call under `batch_lock`); drops dead runners' claims.

    The claim's `orphans` are the steps of dead runners' jobs still alive: a runner killed
    with -9 between starting a step and recording its pid left a step no record names, and
    this run must not start that sub-experiment again beside it."""
    from metarunlog.procs import start_id

    orphans = _drop_dead_runner_claims(exp)
    others = _live_runners_steps(exp)
    # its start id: once it is dead, only processes started after it can be its steps; and
    # that each of its steps carries MRL_RUNNER: a session without it is none of its steps
    extra = {"runnerStart": start_id(os.getpid()), STEPS_NAMED: RUNNER_VAR}
    claim = Claim(RUNNER, HOST, os.getpid(), jsonio.now(), extra=extra)
    path = write_claim(exp, claim, f"{RUNNER}-{HOST}-{os.getpid()}")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # never inherited by a step
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return RunnerClaim(path, fd, orphans, others)


def _live_runners_steps(exp: Experiment, present: Collection[int] | None = None) -> dict[int, str]:
    """{id: "step (pid N) of the mrl run (pid M)"} of the live steps of this host's other live
    runners' jobs, each proven by its MRL_RUNNER (that runner's pid and start id). A step
    that cleaned its own folder (its cwd: `.mrl.status` and `.mrl.lock` gone) is still that
    runner's, and a run that finds no record and no lock must not start it again beside
    it. One /proc scan, only while another run of this experiment lives on this host.
    `present`: only those not among these ids (the folders there: no scan unless one is not)."""
    from metarunlog.procs import live_steps

    dirs: dict[str, int] = {}
    runners: dict[str, int] = {}
    for claim in claims(exp):
        start = claim.extra.get("runnerStart")
        if claim.backend != RUNNER or claim.host != HOST or claim.pid in (None, os.getpid()) or not start:
            continue
        if claim.path is None or not is_flocked(claim.path):
            continue
        runners[f"{claim.pid}:{start}"] = claim.pid  # type: ignore[assignment]
        with contextlib.suppress(OSError, MrlError):
            ids = runner_jobs(claim)
            dirs.update({str(exp.subexp_dir(i)): i for i in (ids if present is None else ids.difference(present))})
    found = live_steps(dirs) if dirs else {}
    return {
        i: f"step (pid {s.pid}) of the mrl run (pid {runners[s.runner]})"
        for i, s in found.items()
        if s.runner in runners
    }


def _drop_dead_runner_claims(exp: Experiment) -> dict[int, Unrecorded]:
    """Remove the claims of this host's runners that are gone; {id: step} of the live steps
    of their jobs. A claim whose jobs still have a live step stays (with its `.jobs`), so
    that every later run finds them too, until they end."""
    orphans: dict[int, Unrecorded] = {}
    for claim, alive in _dead_runners(exp):
        if alive:
            orphans.update(alive)
        else:
            assert claim.path is not None
            _remove_claim_files(claim.path)
    return orphans


RUNNER_VAR = "MRL_RUNNER"  # execute.RUNNER_VAR: what every step of a runner carries
STEPS_NAMED = "stepsCarry"  # a claim's key: its runner gave each step RUNNER_VAR (absent: an older mrl)


@dataclass(frozen=True)
class Unrecorded:
    """A live process that may be a dead runner's step no record names (the runner was
    killed with -9 between starting it and recording it): a session leader whose
    MRL_SUBEXP_DIR names the sub-experiment's folder, started after that runner."""

    pid: int
    start: str | None  # its start id when found (`procs.start_id`)
    proven: bool  # its MRL_RUNNER names that runner (pid and start id): it is provably its step
    runner: str | None = None  # that dead runner, "<pid>:<start id>" (None: it wrote no start id)
    command: str = ""  # what it runs (`procs.command_line`): how messages name it
    runner_pid: int | None = None  # that dead runner's pid

    def note(self) -> str:
        """What `mrl status` says of it: exactly what is seen."""
        if self.proven:
            return f"its step (pid {self.pid}), started by an mrl run that was killed, runs with no record naming it"
        return (
            f"pid {self.pid} (`{self.command}`) names this folder in its MRL_SUBEXP_DIR and started after the mrl "
            f"run (pid {self.runner_pid}) that was killed, but carries no MRL_RUNNER: mrl cannot prove it is that "
            "run's step (an older mrl's, or a look-alike) and never signals it"
        )

    def blocks(self) -> str:
        """Why `mrl run` does not start its sub-experiment beside it, and what to do."""
        if self.proven:
            return (
                f"not run: its step (pid {self.pid}, `{self.command}`), started by the mrl run (pid "
                f"{self.runner_pid}) that was killed, is still running with no record naming it: wait for it to "
                "end, or `mrl cancel` it (it is provably that run's)"
            )
        return (
            f"not run: pid {self.pid} (`{self.command}`) names its folder in MRL_SUBEXP_DIR and started after the "
            f"mrl run (pid {self.runner_pid}) that was killed; mrl cannot prove it is that run's step (it carries "
            f"no MRL_RUNNER) and leaves it alone: if it is, stop it yourself (`kill {self.pid}`) and run again"
        )


def _judged(claim: Claim, step: FoundStep) -> Unrecorded | None:
    """`step` as a possible step of the dead runner of `claim`: proven its (its MRL_RUNNER
    names that runner, pid and start id), unprovable (no MRL_RUNNER, and that runner was an
    mrl that set none), or None: provably not its step. One whose MRL_RUNNER names another
    runner is that runner's (live, it holds the lock and a record; dead, its claim judges
    it); one with none, under a runner that gave every step MRL_RUNNER, is no step of it
    (a look-alike: a shell that carries the folder's MRL_SUBEXP_DIR). Those never block a
    rerun, nor are they shown as running."""
    from metarunlog.procs import command_line

    start = claim.extra.get("runnerStart")
    runner = f"{claim.pid}:{start}" if start else None
    proven = runner is not None and step.runner == runner
    if not proven and (step.runner is not None or claim.extra.get(STEPS_NAMED) == RUNNER_VAR):
        return None
    return Unrecorded(step.pid, step.start, proven, runner, command_line(step.pid), claim.pid)


def unrecorded_steps(exp: Experiment) -> dict[int, Unrecorded]:
    """{id: step} of the live steps this host's dead runners of `exp` may have left (read
    only; what `mrl run` refuses to start beside, `mrl status` shows and `mrl cancel`
    stops). A record that names the pid is judged by that record instead (`still_open`)."""
    out: dict[int, Unrecorded] = {}
    for _claim, alive in _dead_runners(exp):
        out.update(alive)
    return out


def still_open(step: Unrecorded, status: Status | None) -> bool:
    """Whether `step` is still taken for its sub-experiment's unrecorded step, given its
    record `status`: not when the record names that pid or a live process (a session its
    recorded step started), nor when that very runner recorded its end (what lives on is a
    session its step left: a server started with setsid)."""
    from metarunlog.procs import is_same_process

    if status is not None and (status.pid == step.pid or is_same_process(status.pid, status.pid_start)):
        return False
    return not (status is not None and status.state.finished and _recorded_by(status, step.runner))


def unrecorded(
    exp: Experiment, jobs: Sequence[Job], found: dict[int, Unrecorded] | None = None
) -> dict[Job, Unrecorded]:
    """The jobs among `jobs` whose step a runner killed with -9 started and never recorded
    (`ownership.unrecorded_steps`, or `found` when the caller has it): each is set `running`,
    with a note naming the step's pid (`mrl status`, `mrl cancel`, `mrl table`). A record
    naming that pid, or a live process, judges it instead: a session its recorded step
    started is no unrecorded step."""
    from metarunlog.states import JobState

    found = unrecorded_steps(exp) if found is None else found
    out: dict[Job, Unrecorded] = {}
    for job in jobs:
        step = found.get(job.id)
        if step is None or not still_open(step, job.status):
            continue
        job.state = JobState.RUNNING
        job.message = step.note()
        out[job] = step
    return out


def records_removed(exp: Experiment, jobs: Sequence[Job]) -> None:
    """The jobs among `jobs` with no record (read `pending`) whose step, of a live runner on
    this host, still runs: the step removed its `.mrl.status` and `.mrl.lock` (it wiped its
    own folder, or made it again) and runs on. Each is set `running`, with a note naming its
    step; `mrl run` refuses to start them beside it (`RunnerClaim.others`). No /proc scan
    unless such a job and a live runner's claim are there."""
    from metarunlog.states import JobState

    bare = [j for j in jobs if j.status is None and j.state is JobState.PENDING and not j.unreadable]
    if not bare:
        return
    steps = _live_runners_steps(exp)
    for job in bare:
        if job.id in steps:
            job.state = JobState.RUNNING
            job.message = f"its {steps[job.id]} is still running; its .mrl.status and .mrl.lock were removed as it ran"


def removed_folders_steps(exp: Experiment, present: Collection[int]) -> dict[int, str]:
    """{id: "step (pid N) of the mrl run (pid M)"} of the live steps of this host's live
    runners whose sub-experiment folder is not among `present` (the ids of the folders
    there: the step removed its own, and runs on): `mrl status` shows a row for each, from
    the runner's plan. Reads the claims only, and scans /proc only when a planned id is
    not present."""
    return _live_runners_steps(exp, present)


def _recorded_by(status: Any, runner: str | None) -> bool:
    """The record was written by `runner` ("<pid>:<start id>")."""
    return runner is not None and f"{status.runner_pid}:{status.runner_start}" == runner


def _dead_runners(exp: Experiment) -> Iterator[tuple[Claim, dict[int, Unrecorded]]]:
    """Each claim of this host's runners that are gone, with the live processes that may be
    steps of its jobs (`_judged`: none that is provably not)."""
    from metarunlog.procs import live_steps

    for claim in claims(exp):
        if claim.backend == RUNNER and claim.host == HOST and claim.path and not is_flocked(claim.path):
            try:
                ids = runner_jobs(claim)
            except (OSError, MrlError):  # unreadable: proves nothing (it is written whole, atomically)
                ids = set()
            dirs = {str(exp.subexp_dir(i)): i for i in ids}
            dirs.update({os.path.realpath(d): i for d, i in list(dirs.items())})
            start = claim.extra.get("runnerStart")
            found = live_steps(dirs, _start_ticks(start), f"{claim.pid}:{start}" if start else None)
            judged = {i: _judged(claim, step) for i, step in found.items()}
            yield claim, {i: step for i, step in judged.items() if step is not None}


def _start_ticks(runner_start: Any) -> int | None:
    """The start time (clock ticks since boot) in a runner's start id of this boot; None
    when unknown (a claim of an older mrl, another boot: then nothing is left out)."""
    from metarunlog.procs import start_id

    boot, _, ticks = str(runner_start or "").rpartition(":")
    mine = (start_id(os.getpid()) or "").rpartition(":")[0]
    return int(ticks) if boot and boot == mine and ticks.isdigit() else None


def _remove_claim_files(path: Path) -> None:
    """A runner's claim and the files beside it (`.jobs`, unanswered cancel requests); the
    answers (`.done`) stay for whoever asked, who removes them."""
    stem = path.name[: -len(".json")]
    with contextlib.suppress(OSError):
        for name in os.listdir(path.parent):
            if name.startswith(stem + ".") and not name.endswith(".done"):
                with contextlib.suppress(FileNotFoundError):
                    (path.parent / name).unlink()


# -- reading --------------------------------------------------------------------------------------


def claims(exp: Experiment) -> list[Claim]:
    """Every claim file of `exp` (an unreadable one is skipped: it proves nothing)."""
    folder = exp.dir / OWNERS
    return [Claim.from_json(data, folder / name) for name, data in jsonio.json_files(folder) if isinstance(data, dict)]


def runner_alive(claim: Claim, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
    """A runner's claim still owns: its flock is held (this host), or it was refreshed
    within `stale_after` seconds (another host, whose locks we may not see)."""
    if claim.path is None:
        return False
    if claim.host == HOST:
        return is_flocked(claim.path)
    try:
        age = time.time() - claim.path.stat().st_mtime
    except OSError:
        return False
    return age < stale_after


def live_runners(exp: Experiment) -> list[Claim]:
    """The claims of `mrl run` processes on this machine that are running now."""
    return [c for c in claims(exp) if c.backend == RUNNER and c.host == HOST and runner_alive(c)]


def runner_jobs(claim: Claim) -> set[int]:
    """The ids the runner of `claim` planned (empty before it planned)."""
    assert claim.path is not None
    data = jsonio.read_json_or(claim.path.with_suffix(".jobs"), [])
    return {i for i in data if type(i) is int} if isinstance(data, list) else set()


def planned(claim: Claim) -> bool:
    """Whether the runner of `claim` has planned (written its `.jobs`): before, it takes no
    cancel request yet, and `runner_jobs` knows none of its jobs."""
    assert claim.path is not None
    return claim.path.with_suffix(".jobs").exists()


def serving(claim: Claim) -> bool:
    """Whether the runner of `claim` takes up cancel requests yet (`RunnerClaim.serve`). A
    runner of an mrl that wrote no such file (its claim lacks STEPS_NAMED, of the same
    version) is taken to serve once it planned, as that mrl did."""
    assert claim.path is not None
    if claim.extra.get(STEPS_NAMED) != RUNNER_VAR:
        return planned(claim)
    return claim.path.with_suffix(".serving").exists()


def request_cancel(claim: Claim, ids: set[int]) -> Path:
    """Ask the runner of `claim` to cancel `ids`; `answer_with_notes(path)` is its reply."""
    assert claim.path is not None
    stem = claim.path.name[: -len(".json")]
    req = claim.path.parent / f"{stem}.cancel-{os.getpid()}-{time.monotonic_ns()}.req"
    jsonio.write_json(req, sorted(ids), durable=False)
    return req


def _answer_in_place(request: Path, cancelled: list[int], notes: Mapping[int, str]) -> None:
    """The answer to `request` written over its taken copy, then renamed to the answer's
    name: a runner on a full disk still answers, and `mrl cancel` learns at once what it
    cancelled (it waited 120 s for an answer that could not come, then said nothing ran).
    Only the room the copy already holds is used (its size, or the blocks it has, a whole
    4 KiB page for a short request: no new space): the whole answer, notes and all, when
    it fits; else the notes once each with their ids as ranges (the ids are a subset of
    those asked); only when even that does not fit, the ids alone."""
    import json

    taken = request.with_suffix(".taken")
    forms: list[Any] = [cancelled]
    if notes:
        by_note: dict[str, list[int]] = {}
        for i, n in notes.items():
            by_note.setdefault(n, []).append(i)
        ranged = {n: _ranges(ids) for n, ids in by_note.items()}
        forms = [_answer_body(cancelled, notes), {"cancelled": cancelled, "notedRanges": ranged}, cancelled]
    fd = os.open(taken, os.O_WRONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        room = max(st.st_size, st.st_blocks * 512)
        for body in forms:
            data = json.dumps(body).encode()
            if len(data) > room:
                continue
            try:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
                break
            except OSError:  # a file system that needs new blocks to write over old ones
                continue
        else:
            return
    finally:
        os.close(fd)
    os.replace(taken, request.with_suffix(".done"))


def _answer_body(cancelled: list[int], notes: Mapping[int, str]) -> Any:
    """The answer `.done` holds: the plain list of ids, or with notes, both."""
    return {"cancelled": cancelled, "notes": {str(i): n for i, n in notes.items()}} if notes else cancelled


def _ranges(ids: list[int]) -> list[list[int]]:
    """[[lo, hi], ...] of `ids` (a short form of thousands of them)."""
    out: list[list[int]] = []
    for i in sorted(set(ids)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def answer_with_notes(request: Path) -> dict[int, str] | None:
    """The ids the runner cancelled for `request`, once it answered (the answer is removed),
    as {id: the runner's note for it, "" for none}, in the runner's order."""
    done = request.with_suffix(".done")
    try:
        data = jsonio.read_json(done)
    except (OSError, MrlError):
        return None
    with contextlib.suppress(OSError):
        done.unlink()
    notes = data.get("notes") if isinstance(data, dict) else None
    ids = data.get("cancelled") if isinstance(data, dict) else data
    notes = notes if isinstance(notes, dict) else {}
    if not isinstance(ids, list):
        return {}
    if isinstance(data, dict) and isinstance(data.get("notedRanges"), dict):  # the short form (`_answer_in_place`)
        notes = {**_unranged(data["notedRanges"], ids), **notes}
    return {i: n if isinstance(n := notes.get(str(i)), str) else "" for i in ids if type(i) is int}


def _unranged(ranged: dict[Any, Any], ids: list[Any]) -> dict[str, str]:
    """{str(id): note} of each of `ids` inside one of a note's ranges ({note: [[lo, hi], ...]})."""
    import bisect

    spans = sorted(
        (span[0], span[1], note)
        for note, spans in ranged.items()
        if isinstance(note, str) and isinstance(spans, list)
        for span in spans
        if isinstance(span, list) and len(span) == 2 and all(type(b) is int for b in span)
    )
    starts = [lo for lo, _, _ in spans]
    out: dict[str, str] = {}
    for i in ids:
        at = bisect.bisect_right(starts, i) - 1 if type(i) is int else -1
        if at >= 0 and spans[at][1] >= i:
            out[str(i)] = spans[at][2]
    return out


def taken(request: Path) -> bool:
    """Whether the runner took `request` (it is stopping what it asks; the answer follows)."""
    return request.with_suffix(".taken").exists() or request.with_suffix(".done").exists()


def withdraw(request: Path) -> None:
    """Take back a request its runner never answered."""
    for p in (request, request.with_suffix(".taken"), request.with_suffix(".done")):
        with contextlib.suppress(OSError):
            p.unlink()


def owners(exp: Experiment) -> list[str]:
    """One line per live owner of `exp`: runners, and what each backend says of its claims."""
    from metarunlog.backends.registry import blamed, get_backend, names

    stale_after = float(exp.cfg["run"].get("stale_after") or DEFAULT_STALE_AFTER)
    found = claims(exp)
    out = [c.describe() for c in found if c.backend == RUNNER and runner_alive(c, stale_after)]
    for name in names():  # a backend class is imported only when it left claims
        mine = [c for c in found if c.backend == name]
        if mine:
            with blamed(name):
                out += get_backend(name).owners(exp, mine)
    return out


def check_not_owned(exp: Experiment, what: str) -> None:
    """Raise MrlError (one line naming the owners) when a run owns `exp`."""
    who = owners(exp)
    if who:
        raise MrlError(
            f"{exp.dir} is being run by {'; '.join(who)}: {what} would change the sub-experiments it planned; "
            f"wait for it to end or stop it with `mrl cancel {exp.id}`"
        )


# -- the batch lock: makebatch holds it; a runner takes it to claim and plan -------------------------


@contextlib.contextmanager
def batch_lock(exp: Experiment, *, wait: float = 0.0, busy: str = "") -> Iterator[None]:
    """flock on EXPDIR itself (no lock file to leave behind): one makebatch at a time, and
    a runner's claim+plan never interleaves with one. Waits up to `wait` seconds, then
    raises MrlError(`busy`)."""
    fd = os.open(exp.dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise MrlError(busy or f"another mrl command is changing {exp.dir}: wait for it") from None
                time.sleep(0.02)
        if finish_batch_journal(exp.dir):  # a makebatch killed half-way: the lock's next holder completes it
            exp.forget_record()
        yield
    finally:
        os.close(fd)
