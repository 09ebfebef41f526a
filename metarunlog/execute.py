"""Execute one sub-experiment: the single entry point every backend ends up in.

`execute(sub, options) -> Status` renders `run.command` (a Jinja string, or a list of steps), runs each
step with `/bin/sh -c` in the sub-experiment folder, in its own process group, with the
environment the SPEC promises, appends everything to `run.log` (each attempt headed by a
`==== mrl attempt ...` line) and keeps `.mrl.status` current (written when a step starts
and when the attempt ends). It holds `.mrl.lock` (flock) for the whole execution, so two
runners never execute one sub-experiment. The steps never inherit the lock (what a step
leaves behind must not keep it); a runner killed with -9 frees it, and its orphaned step,
still recorded as running with its pid and start id, is left alone by the next runner for
as long as that very process lives. When a step ends, what it left in its process group
gets SIGTERM, then SIGKILL.
A rerun resumes at the first unfinished step (`stepsDone`).

The local pool calls it in worker threads; Slurm array tasks call it through
`python -m metarunlog.backends.task EXPDIR SUBEXP_ID --backend slurm [--retries N]`
(`python -m metarunlog.execute ...`, what sbatch scripts written by earlier versions run,
is the same command).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Generator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarunlog import jsonio, ownership, render
from metarunlog.backends.registry import DEFAULT
from metarunlog.errors import CorruptRecord, MrlError
from metarunlog.experiment import ATTEMPTS, CODE, DONE_MARK, LOG, Experiment, SubExperiment
from metarunlog.locks import RUN_LOCK, Locked, run_lock
from metarunlog.procs import (
    HOST,
    Leftovers,
    boottime_ns,
    is_same_process,
    killpg,
    leftovers,
    reap_group,
    spawned_start_id,
    start_id,
)
from metarunlog.records import Status
from metarunlog.spawn import BaseEnv, Started, StepEnv, spawn_step
from metarunlog.states import JobState, recorded_state

__all__ = [
    "CANCEL_CODES",
    "HOST",
    "Changed",
    "Command",
    "ExecOptions",
    "Leftovers",
    "Locked",
    "Removed",
    "Stopper",
    "execute",
    "execution",
    "log_tail",
    "resume_at",
    "run_to_end",
    "update_done_marker",
]

LOCK = RUN_LOCK  # the names earlier versions had here
# A step that ended by one of these signals (or sh's 128+N for them) was stopped by
# someone (Ctrl-C, SIGTERM, `mrl cancel`, scancel): cancelled, not failed.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CANCEL_CODES = frozenset([-int(s) for s in _STOP_SIGNALS] + [128 + int(s) for s in _STOP_SIGNALS])


class Changed(MrlError):
    """The sub-experiment is not the one that was planned: its params or rendered files
    changed (a `makebatch -replace`), or its folder is gone. It is skipped, never run
    with the commands rendered for what was there before."""


class Removed(Changed):
    """The sub-experiment's folder was removed after this run planned it: before its slot
    took it (nothing ran), or while it ran (`rm -rf`, `mv`; it may have been made again
    under its name, with other params). Nothing more of this run is written there: how it
    ended is recorded nowhere, and the run must say so rather than count it."""

    def __init__(self, sub: SubExperiment, *, made_again: bool = False, before: bool = False) -> None:
        if before:
            why = f"its folder {sub.dir} was removed after this run planned it (makebatch -replace? rm?): not run"
        else:
            again = " and made again" if made_again else ""
            left = " (what it holds now is left alone)" if made_again else ""
            why = (
                f"its folder {sub.dir} was removed{again} while this run ran it{left}: how it ended is "
                "recorded nowhere; run it again once its folder is what you want"
            )
        super().__init__(why)
        self.started = not before
        self.made_again = made_again
        self.last: Status | None = None  # the record it was about to write when it found the folder gone

    def keep(self, sub: SubExperiment, written: Status | None) -> None:
        """A folder removed as it ran and not made again: what this run knew of it goes to
        `EXPDIR/.mrl.gone/` (`mrl status` shows a row for it), and the message says so."""
        from metarunlog import gone

        if not self.started or self.made_again or os.path.lexists(sub.dir):
            return
        path = gone.record(sub, self.last or written)
        if path is not None:
            self.args = (
                f"its folder {sub.dir} was removed while this run ran it: nothing of it is left; what this run "
                f"knew of it is kept in {path} (`mrl status` shows it); {gone.REMAKE}",
            )


# The trap `Stopper.prelude` puts before a step's text; `exit $?` runs once the foreground
# command ended (POSIX defers a trap until then) and keeps its verdict (0: it finished).
USR1_WAITS = "trap 'exit $?' USR1; "


class Stopper:
    """A stop request and the live process groups: one per runner, and one per job under it
    (`Stopper(parent)`: the runner's stop reaches every job, a job's stop only its own).

    Safe to call from a signal handler: no locks, only set operations (atomic under the GIL).
    """

    def __init__(self, parent: Stopper | None = None) -> None:
        self.parent = parent
        self._requested = False
        self._requeue = False  # the stop is a requeue: what it interrupts is `requeued`, not cancelled
        self._final: str | None = None  # the stop is final: what it interrupts is failed with this reason
        self.forwards = False  # `forward` may come: steps are started to wait for their command
        # asked when a step ended whether its runner is being ended by its scheduler (then
        # the step's exit is not its own: a Slurm task, `ended_with_runner`)
        self.ending: Callable[[], bool] | None = None
        self.signal: int = signal.SIGTERM
        self._groups: set[int] = set()
        # steps that had already ended by themselves when `stop` came (a runner stopped by
        # Ctrl-Z learns both at once on SIGCONT): their exit is their own, not a cancel
        self._ended_first: set[int] = set()

    @property
    def requested(self) -> bool:
        return self._requested or (self.parent is not None and self.parent.requested)

    @property
    def requested_here(self) -> bool:
        """This Stopper itself was asked to stop (a job's own cancel), not only its parent."""
        return self._requested

    @property
    def requeue(self) -> bool:
        """The stop is a requeue (`forward`): what it interrupts is `requeued`, not cancelled.
        A stop asked of this job itself (`mrl cancel` of it, also while its runner's USR1
        lets the commands save) is a cancel: the user's word wins over the requeue."""
        if self._requeue:
            return True
        return not self._requested and self.parent is not None and self.parent.requeue

    @property
    def final(self) -> str | None:
        """Why a `forward` with no requeue left ends what it interrupts (`failed`, its
        attempt's start, duration and exit code kept), or None. As with `requeue`, a stop
        asked of this job itself is a cancel."""
        if self._final is not None:
            return self._final
        return None if self._requested or self.parent is None else self.parent.final

    def add(self, pgid: int) -> None:
        self._groups.add(pgid)
        if self.parent is not None:
            self.parent.add(pgid)
        if self._requested:  # the stop came while this child was being started
            killpg(pgid, self.signal)

    def discard(self, pgid: int) -> None:
        self._groups.discard(pgid)
        if self.parent is not None:
            self.parent.discard(pgid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop: start nothing more, and send `sig` to every live child process group."""
        # Which steps had ended by themselves is settled BEFORE the request is visible: the
        # pool thread asks `stopped` of a step it just reaped while `_exited`'s syscall lets
        # it run, and must never find the request without the step's verdict (it read a
        # step that failed while its runner was stopped as cancelled, now and then).
        self._ended_first.update(pgid for pgid in list(self._groups) if _exited(pgid))
        self._requested = True
        self.signal = sig
        for pgid in list(self._groups):
            killpg(pgid, sig)

    def stopped(self, pgid: int) -> bool:
        """Whether the step `pgid`, which just ended, ended on this stop (or its parent's):
        asked before it ended by itself."""
        if pgid in self._ended_first:
            return False
        if self._requested:
            return True
        return self.parent is not None and self.parent.stopped(pgid)

    def forward(self, sig: int, *, final: str | None = None) -> None:
        """A requeue is coming (Slurm's USR1 ahead of a time limit): start nothing more, pass
        `sig` to every live child group (to save a checkpoint), and record what it
        interrupts as `requeued`. With `final` (no requeue is left), what it interrupts is
        recorded `failed` with that reason instead, keeping its attempt's start, duration
        and exit code: a requeue that will not come must not be written, nor lose them."""
        self._requeue = final is None
        self._final = final
        self._ended_first.update(pgid for pgid in list(self._groups) if _exited(pgid))  # as in `stop`
        self._requested = True
        self.signal = sig
        for pgid in list(self._groups):
            killpg(pgid, sig)

    @property
    def prelude(self) -> str:
        """What a step's shell text starts with: under a runner that forwards USR1, a trap
        that makes a shell list (`cd x && python train.py`) wait for the command USR1 found
        and then end with its status. The shell stays the step's process there, and died of
        USR1 at once: the command saving its checkpoint was reaped as a leftover, and with
        `;` the rest of the list ran. Same line, so `$0` and line numbers are the user's."""
        forwards = self.forwards or (self.parent is not None and self.parent.forwards)
        return USR1_WAITS if forwards else ""

    def _ending(self) -> Callable[[], bool] | None:
        if self.ending is not None:
            return self.ending
        return self.parent._ending() if self.parent is not None else None

    def ended_with_runner(self) -> bool:
        """Whether a step that just ended ended because its runner is being ended (`ending`
        says so): its exit code is then not its own. Slurm kills the deepest processes
        first: the command dies before its shell, which may run the rest of a `;` list and
        exit 0 before its own SIGTERM comes."""
        ending = self._ending()
        return ending is not None and ending()

    @property
    def groups(self) -> list[int]:
        return list(self._groups)


class Heartbeat:
    """Refreshes the mtime of live records every `every` seconds from one thread, so that
    another machine sharing the filesystem can tell a live runner from a crashed one
    (`run.heartbeat`; a record not refreshed for `run.stale_after` seconds is stale).
    Costs nothing per job: adding and removing a path is a set operation."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._paths: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, path: Path) -> None:
        self._paths.add(path)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="mrl-heartbeat", daemon=True)
            self._thread.start()

    def discard(self, path: Path) -> None:
        self._paths.discard(path)

    def close(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            for path in list(self._paths):
                with contextlib.suppress(OSError):
                    os.utime(path)


# -- the command -------------------------------------------------------------------------------


@dataclass
class Command:
    """`run.command` of an experiment, compiled once and rendered per sub-experiment."""

    sources: list[str]
    templates: list[render.CommandTemplate]

    @classmethod
    def of(cls, exp: Experiment) -> Command:
        raw = exp.cfg["run"].get("command")
        where = exp.cfg.path or "the project's .mrl.cfg"
        if not raw:
            raise MrlError(
                f'no run.command configured: set "run": {{"command": "python {{{{codeDir}}}}/train.py"}} '
                f"in {where} (a string, or a list of steps)"
            )
        sources = [raw] if isinstance(raw, str) else list(raw)
        if not sources or not all(isinstance(s, str) and s.strip() for s in sources):
            raise MrlError(f"run.command in {where} must be a non-empty string or a list of non-empty strings")
        return cls(sources, [render.command_template(s, where) for s in sources])

    def render(self, sub: SubExperiment, resource: str | None = None) -> list[str]:
        """The steps for `sub`; an undefined variable is an MrlError naming it."""
        if all(t.template is None for t in self.templates):  # no variables to make
            return [t.source for t in self.templates]
        ctx = variables(sub, resource)
        return [t.render(ctx, sub=sub.name, params=sub.params) for t in self.templates]


def variables(sub: SubExperiment, resource: str | None) -> dict[str, Any]:
    return {
        **sub.params,
        **sub.exp.template_params(),
        # The folder name ('001'), as the original rendered it; the number is subExpNum.
        "subExpId": sub.name if sub.name != "." else sub.exp.subexp_dir(sub.id).name,
        "subExpNum": sub.id,
        "subExpDir": str(sub.dir),
        "resource": "" if resource is None else resource,
        "params": sub.params,  # all of them: {{ params | cli_args }}, {{ params['model.dropout'] }}
    }


GIT_CEILING = "GIT_CEILING_DIRECTORIES"


@functools.lru_cache(maxsize=64)
def _git_fence(outdir: Path, old: str | None) -> str:
    """code/ holds no .git: without this fence git in a step climbs from it into the project
    repository, so a script logging `git rev-parse HEAD` records the project's HEAD (not the
    pinned commit that runs) and `git checkout` in code/ moves the user's work tree (as
    hooks.git_fence). The outdir as given and resolved (a symlinked outdir)."""
    fences = dict.fromkeys([str(outdir), str(outdir.resolve())])
    return os.pathsep.join([*fences, *([old] if old else [])])


RUNNER_VAR = ownership.RUNNER_VAR  # "<pid>:<start id>" of the mrl process that started the step


def runner_id(pid: int | None = None) -> str:
    """What a step's `MRL_RUNNER` says: the pid and start id (`procs.start_id`) of the mrl
    process that started it, this one by default. A runner killed between starting a step
    and recording it leaves a step no record names; this is how `mrl cancel` proves such a
    step is that runner's (`ownership.unrecorded_steps`)."""
    return _runner_id(os.getpid() if pid is None else pid)


@functools.lru_cache(maxsize=8)
def _runner_id(pid: int) -> str:
    return f"{pid}:{start_id(pid) or ''}"


@functools.lru_cache(maxsize=64)
def _code_dir(exp_dir: str, code_subdir: str | None) -> str:
    """`str(exp.code_dir)`, made once per experiment (a runner sets it for every step)."""
    return str(Path(exp_dir) / CODE / (code_subdir or ""))


def environment(
    sub: SubExperiment, resource: str | None, base: Mapping[str, str] | BaseEnv | None = None
) -> MutableMapping[str, str]:
    """The step's environment: `base` (default os.environ) and mrl's variables. A `BaseEnv`
    (what the local pool passes) is encoded once per run; this step's variables over it."""
    env: MutableMapping[str, str]
    env = StepEnv(base) if isinstance(base, BaseEnv) else dict(os.environ if base is None else base)
    exp_dir = str(sub.exp.dir)
    env["MRL_EXP_DIR"] = exp_dir
    env["MRL_SUBEXP_DIR"] = str(sub.dir)
    env["MRL_CODE_DIR"] = _code_dir(exp_dir, sub.exp.record.code_subdir)
    env[RUNNER_VAR] = runner_id()
    env[GIT_CEILING] = _git_fence(sub.exp.dir.parent, env.get(GIT_CEILING))
    if resource is not None:
        env["CUDA_VISIBLE_DEVICES"] = resource
    return env


# -- one sub-experiment ------------------------------------------------------------------------


@dataclass
class Attempt:
    """Where an execution stands: its steps and the `.mrl.status` it keeps current.

    With `defer`, a durable write stops at its temp file (`pending`): the next write
    commits it first, and `execute` hands the last one to `ExecOptions.commit`.

    `here` is the (device, inode) of the folder it locked (held open: `locked`): every
    durable write, and every step's start, first checks that the folder is still that one
    (`check_here`; a step may remove `.mrl.lock` and `.mrl.status` cleaning its cwd).
    A folder removed while it ran, or removed and made again under its name (other params),
    gets nothing more of this execution: its record, its steps, its metrics are not theirs."""

    steps: list[str]
    status: Status
    defer: bool = False
    pending: jsonio.Pending | None = None
    here: tuple[int, int] | None = None

    def write(self, sub: SubExperiment, status: Status, *, durable: bool = True) -> Status:
        if durable:  # (a `running` record, not durable, follows the check its step's start made)
            try:
                self.check_here(sub)
            except Removed as e:
                e.last = status  # what it was about to record: kept outside the folder (`gone`)
                raise
        self.status = status
        if self.pending is not None:  # records are written in order
            pending: jsonio.Pending = self.pending
            self.pending = None
            pending.commit()
        if durable and self.defer:
            self.pending = sub.prepare_status(status)
        else:
            sub.write_status(status, durable=durable)
        return status

    def check_here(self, sub: SubExperiment) -> None:
        """Raise Removed unless `sub.dir` is still the folder this execution locked (one
        stat: a path gives no other way to tell a folder made again from the old one)."""
        if self.here is None:
            return
        try:
            st = os.stat(sub.dir)
        except FileNotFoundError:
            raise Removed(sub) from None
        except OSError:  # cannot tell (no permission to look): the write itself says what is wrong
            return
        if (st.st_dev, st.st_ino) != self.here:
            raise Removed(sub, made_again=True)

    def drop_pending(self) -> None:
        """Forget a write made up to its temp file (its folder is gone: it belongs nowhere)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.abort()


now = jsonio.now  # kept as execute.now: the backends import it from here


@contextlib.contextmanager
def locked(sub: SubExperiment) -> Any:
    """Hold `SUBDIR/.mrl.lock` (flock) or raise Locked; yields the lock's file descriptor
    and the folder's (device, inode). The folder itself is held open meanwhile (O_PATH),
    so that no folder made later can have its inode number, and the lock is taken in it:
    `Attempt.check_here` tells a folder removed or made again by that number."""
    try:
        dir_fd = os.open(sub.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise Removed(sub, before=True) from None
    try:
        st = os.fstat(dir_fd)
        with contextlib.ExitStack() as stack:
            try:
                fd = stack.enter_context(run_lock(sub.dir, dir_fd))
            except FileNotFoundError:  # removed since: no file can be made in it
                raise Removed(sub, before=True) from None
            yield fd, (st.st_dev, st.st_ino)
    finally:
        os.close(dir_fd)


def check_planned(sub: SubExperiment, planned: str) -> None:
    """Raise Changed unless `sub` on disk is still what was planned (`planned`: its
    fingerprint then). Call under the sub-experiment's lock."""
    try:
        now_fp = sub.fingerprint(fresh=True)
    except MrlError:  # its .mrl is corrupt now: not what was planned either
        now_fp = ""
    if now_fp != planned:
        raise Changed(
            f"{sub.dir} changed after this run planned it (makebatch -replace?): skipped, "
            "not run with the old commands; run it again"
        )


@dataclass
class ExecOptions:
    """How one sub-experiment is executed: what its backend knows and the command does not."""

    backend: str = DEFAULT  # written in the record: which backend's `poll` judges it
    steps: list[str] | None = None  # the rendered run.command (None: render it here)
    resource: str | None = None  # CUDA_VISIBLE_DEVICES and {{resource}}
    job_id: str | None = None  # the scheduler's id of this task ("<array job>_<task>")
    node: str | None = None  # the scheduler's name of the machine
    retries: int = 0  # run a failed attempt again, up to this many times
    force: bool = False  # run a done one again
    seen_attempts: int | None = None  # with force: leave it if another runner finished it since
    stop: Stopper | None = None  # shared with the other workers of this runner
    env: Mapping[str, str] | BaseEnv | None = None  # the base environment (default: os.environ)
    on_start: Callable[[Status], None] | None = None  # told each time a step's process starts
    # Takes the final record's fsync and rename off this thread: called with the record
    # written up to its temp file, still holding the sub-experiment's lock (a duplicate
    # descriptor, closed by `commit()`), and the Status it holds; it must `commit()` it.
    commit: Callable[[jsonio.Pending, Status], None] | None = None
    fingerprint: str | None = None  # `sub.fingerprint()` when planned: a mismatch raises Changed
    heartbeat: Heartbeat | None = None  # refreshes `.mrl.status` while it executes


def execute(sub: SubExperiment, options: ExecOptions | None = None) -> Status:
    """Execute `sub` under its lock (see the module docstring); returns its final `.mrl.status`.

    A done sub-experiment is left alone (its record returned) unless `options.force`;
    with `force`, one that another runner finished after `seen_attempts` is left alone too.
    Raises Locked when another process holds it, Changed when `options.fingerprint` no
    longer matches it (checked under the lock, before anything is written).
    """
    return run_to_end(execution(sub, options))


# What an execution yields: a step's process, or what a step left behind (`Leftovers`);
# each is sent its exit code once it ended (0 for leftovers).
Execution = Generator["Started | Leftovers", int, Status]


def run_to_end(run: Execution) -> Status:
    """Drive an `execution` in this thread: wait for each step it starts; its final record."""
    try:
        proc = next(run)
        while True:
            try:
                code = proc.wait()
            except BaseException as e:  # noqa: BLE001 -- raised where the step is awaited
                proc = run.throw(e)
            else:
                proc = run.send(code)
    except StopIteration as end:
        return end.value  # type: ignore[no-any-return]


def execution(sub: SubExperiment, options: ExecOptions | None = None) -> Execution:
    """`execute` as a generator, for a runner that awaits many steps from one thread (the
    local pool): it yields each step's process once started (its record written) and is
    sent the step's exit code once that process has ended; it returns the final record.
    Everything else (the lock, records, retries, stops) is as `execute` says."""
    o = options or ExecOptions()
    steps = o.steps if o.steps is not None else Command.of(sub.exp).render(sub, o.resource)
    stop = o.stop or Stopper()
    with locked(sub) as (lock_fd, here):
        if o.fingerprint is not None:
            check_planned(sub, o.fingerprint)
        old = sub.read_status() or Status()
        if _leave_alone(old, o.force, o.seen_attempts):
            return old
        _check_no_orphan(sub, old)
        first = resume_at(old, steps) if old.state is not JobState.DONE else 0
        env = environment(sub, o.resource, o.env)
        attempt = Attempt(steps, _initial(old, steps, o, first), defer=o.commit is not None)
        attempt.here = here
        if o.heartbeat is not None:
            o.heartbeat.add(sub.status_path)
        try:
            return (yield from _attempts(sub, attempt, env, stop, o, old))
        except Removed as e:
            attempt.drop_pending()  # its temp file's folder is gone, or another one by now
            e.keep(sub, attempt.status)
            raise
        finally:
            if o.heartbeat is not None:
                o.heartbeat.discard(sub.status_path)
            _hand_over(attempt, lock_fd, o.commit)


def _attempts(
    sub: SubExperiment, attempt: Attempt, env: MutableMapping[str, str], stop: Stopper, o: ExecOptions, old: Status
) -> Execution:
    """The first attempt and the retries; returns the final record."""
    status = old
    # A requeued task's first attempt continues the interrupted one (from its checkpoint):
    # its metrics stay where they are.
    continuing = old.state is JobState.QUEUED and old.requeues > 0
    for n in range(o.retries + 1):
        if stop.requested:
            break
        status = yield from _attempt(
            sub, attempt, env, stop, o.on_start, retry=n < o.retries, continuing=continuing and n == 0, again=n > 0
        )
        if status.state is not JobState.RUNNING:  # running: failed, another attempt follows
            break
    if status is not old and status.state is JobState.RUNNING:  # stopped between attempts
        status = attempt.write(sub, status.finished(JobState.CANCELLED, None, now(), status.duration or 0.0))
    return status


_RUNNER_START: dict[int, str | None] = {}


def _runner_start() -> str | None:
    """This process's start id, read once (per pid: a forked child reads its own)."""
    pid = os.getpid()
    if pid not in _RUNNER_START:
        _RUNNER_START[pid] = start_id(pid)
    return _RUNNER_START[pid]


def _check_no_orphan(sub: SubExperiment, old: Status) -> None:
    """The lock is the runner's, not its steps': when a runner was killed with -9 its step
    may still run, unlocked. Its record then says running with that step's pid, which we
    can prove is still that process: leave it alone (Locked), as a held lock would."""
    if old.state.active and old.host == HOST and is_same_process(old.pid, old.pid_start):
        raise Locked(
            f"sub-experiment {sub.dir} is still running (pid {old.pid}, its runner is gone): "
            "wait for it or `mrl cancel` it"
        )


def _hand_over(attempt: Attempt, lock_fd: int, commit: Callable[[jsonio.Pending, Status], None] | None) -> None:
    """The last record to `commit`, with the lock, which is held until it is in place."""
    pending, attempt.pending = attempt.pending, None
    if pending is None:
        return
    if commit is None:
        pending.commit()
        return
    try:
        pending.keep.append(os.dup(lock_fd))
    except OSError:
        pending.commit()
        return
    commit(pending, attempt.status)


def _leave_alone(old: Status, force: bool, seen_attempts: int | None) -> bool:
    if old.state is JobState.UNKNOWN:  # a newer mrl's record: rewritten only when asked (--force)
        return not force
    if old.state is not JobState.DONE:
        return False
    if not force:
        return True
    return seen_attempts is not None and old.attempts != seen_attempts


def resume_at(old: Status | None, steps: list[str]) -> int:
    """The first unfinished step, when the earlier steps are the very same commands."""
    done = old.steps_done if old is not None else 0
    if done <= 0 or done >= len(steps):
        return 0
    return done if old is not None and old.command[:done] == steps[:done] else 0


def _initial(old: Status, steps: list[str], o: ExecOptions, first: int) -> Status:
    return old.begin(
        steps,
        first=first,
        host=HOST,
        runner_pid=os.getpid(),
        runner_start=_runner_start(),
        resource=o.resource,
        backend=o.backend,
        # a scheduler's task keeps the job id it was queued with
        job_id=o.job_id if o.job_id is not None else old.job_id if o.backend == old.backend else None,
        node=o.node,
    )


def _attempt(
    sub: SubExperiment,
    attempt: Attempt,
    env: MutableMapping[str, str],
    stop: Stopper,
    on_start: Callable[[Status], None] | None,
    *,
    retry: bool = False,
    continuing: bool = False,
    again: bool = False,
) -> Execution:
    """One attempt: the steps from `stepsDone` on; returns the record written at its end.

    With `retry` (another attempt follows a failure), a failed attempt is written as
    `running` (retrying): the sub-experiment is still being worked on, and `mrl cancel`
    must see it so.
    """
    t0 = time.monotonic()
    set_aside = bool(attempt.status.attempts) and attempt.status.steps_done == 0 and not continuing
    # before its metrics are moved or its run.log is opened (once: a retry usually does both);
    # a first attempt that moves nothing follows its lock at once: its step's start checks
    if again or set_aside:
        attempt.check_here(sub)
    aside = set_aside_metrics(sub, attempt.status.attempts) if set_aside else []
    attempt.status = attempt.status.attempt_started(now())
    env["MRL_ATTEMPT"] = str(attempt.status.attempts)  # env is this execution's own copy
    if continuing:  # "load your checkpoint": only where a requeue interrupted this sub-experiment
        env["MRL_REQUEUED"] = "1"
    code: int | None = 0
    stopped = False  # a stop was asked by the time the last step ended (or before it started)
    reason = None  # why a step never ran (NotStarted)
    log = -1
    try:
        # a descriptor, not a file object: the steps write to it, we only append our header lines
        log = _open_log(sub.log_path)
        for k in range(attempt.status.steps_done, len(attempt.steps)):
            if stop.requested:
                code, stopped = None, True
                break
            try:
                code, stopped = yield from _step(sub, attempt, k, env, log, stop, on_start)
            except NotStarted as e:
                code, stopped, reason = None, stop.requested, str(e)
                break
            if code != 0:
                break
            attempt.status = attempt.status.step_done(k)
    except BaseException:
        # No record of this attempt was written (a full disk at its header line or at its
        # step's record: mrl stopped that step): the record still says the last one, so
        # its metrics go back beside it.
        # Only in the folder it set them aside in: one made again meanwhile (a backup
        # restored) is not this execution's to move files in.
        if aside and _still_here(attempt, sub) and not _recorded(sub, attempt.status.attempts):
            put_back_metrics(sub, aside, attempt.status.attempts)
        raise
    finally:
        if log >= 0:
            os.close(log)
    state = JobState.FAILED if reason is not None and not stopped else _final_state(code, stopped)
    duration = round(time.monotonic() - t0, 3)
    if code != 0 and state is JobState.CANCELLED and stop.requeue:
        return attempt.write(sub, attempt.status.requeued(now()))  # resumes at its first unfinished step
    if code != 0 and state is JobState.CANCELLED and stop.final is not None:  # no requeue left
        return attempt.write(sub, attempt.status.finished(JobState.FAILED, code, now(), duration, reason=stop.final))
    if state is JobState.FAILED and retry and not stop.requested:
        return attempt.write(sub, attempt.status.retrying(code, now(), duration))
    why = reason if state is JobState.FAILED else None
    return attempt.write(sub, attempt.status.finished(state, code, now(), duration, reason=why))


class NotStarted(Exception):
    """The kernel refused to start a step (E2BIG, EMFILE, EAGAIN, ...): its command never
    ran, so the record gets no exit code, only why (`reason`)."""

    def __init__(self, e: OSError) -> None:
        from metarunlog.error_handler import environment_message

        super().__init__(f"mrl could not start its step: {environment_message(e)}")


def _step(
    sub: SubExperiment,
    attempt: Attempt,
    k: int,
    env: MutableMapping[str, str],
    log: int,
    stop: Stopper,
    on_start: Callable[[Status], None] | None,
) -> Generator[Started | Leftovers, int, tuple[int | None, bool]]:
    """Runs step `k`: its exit code (None: it is not its own, the scheduler stopped what it
    ran), and whether a stop was asked by the time it ended (one asked later, while its
    leftovers are reaped, does not make its exit a cancel)."""
    step, m = attempt.steps[k], len(attempt.steps)
    attempt.check_here(sub)  # never start a step in a folder made again with other params
    header = f"==== mrl attempt {attempt.status.attempts} step {k + 1}/{m} on {HOST} at {now()}: {step}\n"
    jsonio.write_all(log, _on_a_line_of_its_own(log, sub.log_path) + header.encode("utf-8", "replace"), sub.log_path)
    spawning = boottime_ns()
    try:
        # A session of its own: its own process group, so we stop the step and all it
        # started. Every other descriptor closed (and O_CLOEXEC): the step and whatever it
        # leaves behind never hold .mrl.lock; the runner does (see the module docstring).
        proc = spawn_step(stop.prelude + step, sub.dir, env, _devnull(), log)
    except OSError as e:
        jsonio.write_all(log, f"mrl: could not start the step: {e}\n".encode(errors="surrogateescape"), sub.log_path)
        raise NotStarted(e) from None
    spawned = boottime_ns()
    stop.add(proc.pid)
    try:
        pid_start = spawned_start_id(proc.pid, spawning, spawned)
        # Not fsynced: after a power cut a `running` record is stale either way.
        status = _write_started(sub, attempt, attempt.status.step_started(proc.pid, pid_start))
        if on_start is not None:
            on_start(status)
        code = yield proc  # its exit code, once it ended
    except BaseException:  # stopped while its step runs (run_to_end's caller, a closed pool)
        stop.discard(proc.pid)
        reap_group(proc.pid)
        raise
    stopped = stop.stopped(proc.pid)  # before discard: a stop from now on finds it ended
    stop.discard(proc.pid)
    # also after a stop of ours: the task's stop follows from Slurm's, whose SIGTERM may
    # have killed the command before its shell went on to exit 0. One that reads cancelled
    # anyway needs no question (the task has KillWait seconds to write its records).
    settled = code != 0 and (stopped or code in CANCEL_CODES)
    by_scheduler = not settled and stop.ended_with_runner()
    yield from leftovers(proc.pid)
    if by_scheduler:  # its scheduler stopped what it ran: an exit 0 is not "it finished"
        return (None if code == 0 else code), True
    return code, stopped


def _write_started(sub: SubExperiment, attempt: Attempt, status: Status) -> Status:
    """The `running` record of a step just started. A step that removed its own folder
    first thing (`rm -rf "$MRL_SUBEXP_DIR"`) left nowhere to write it: it runs on, as one
    that removes it later does, and its end finds the folder gone (`Removed`); it was
    stopped as if the disk were full."""
    try:
        return attempt.write(sub, status, durable=False)
    except FileNotFoundError:
        if _still_here(attempt, sub):
            raise
        return attempt.status


def _exited(pid: int) -> bool:
    """Whether our child `pid` has ended (a zombie not reaped yet, or reaped); not reaped here."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already (or not our child: then nothing to say)
        return True
    except OSError:
        return False


_DEVNULL: dict[int, int] = {}


def _devnull() -> int:
    """/dev/null opened once per process (close-on-exec; the spawn dups it to the step's stdin):
    subprocess.DEVNULL opens and closes it once per step."""
    pid = os.getpid()
    if pid not in _DEVNULL:
        _DEVNULL[pid] = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _DEVNULL[pid]


def _open_log(path: Path) -> int:
    """run.log for appending. Only a plain file: through a symlink mrl would append to a
    file outside the experiment (as root, any file), and opening a FIFO blocks the pool
    thread for good, SIGTERM included (O_NONBLOCK: ENXIO when no one reads it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENXIO):
            raise
        fd = -1
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            os.close(fd)
        raise OSError(
            errno.ENOTSUP, "not a plain file (a symlink or a FIFO; remove it, mrl writes run.log itself)", str(path)
        )
    os.set_blocking(fd, True)
    return fd


def set_aside_metrics(sub: SubExperiment, n: int) -> list[Path]:
    """Move the metrics files attempt `n` left (what the metrics readers own, `run.log`
    aside) to `SUBDIR/.mrl.attempts/<n>/`, before an attempt starts from its first step:
    `mrl table` and the report then never show an earlier attempt's metrics as this
    attempt's, and nothing is deleted. Returns where they went."""
    from metarunlog.results import finder_for

    moved: list[Path] = []
    try:
        for path in finder_for(sub.exp).owned(sub.dir):
            rel = path.relative_to(sub.dir)
            if rel.name == LOG or rel.parts[0].startswith("."):
                continue
            target = sub.dir / ATTEMPTS / str(n) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved.append(target)
    except BaseException:
        put_back_metrics(sub, moved, n + 1)
        raise
    return moved


def put_back_metrics(sub: SubExperiment, moved: list[Path], n: int) -> None:
    """Undo `set_aside_metrics` (renames: no disk space needed) for attempt `n` that was
    never recorded; what its step wrote meanwhile in their place goes aside as attempt n's."""
    for target in moved:
        rel = Path(*target.relative_to(sub.dir / ATTEMPTS).parts[1:])
        with contextlib.suppress(OSError):
            if (sub.dir / rel).exists():
                (sub.dir / ATTEMPTS / str(n) / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(sub.dir / rel, sub.dir / ATTEMPTS / str(n) / rel)
            os.replace(target, sub.dir / rel)


def _still_here(attempt: Attempt, sub: SubExperiment) -> bool:
    """Whether `sub.dir` is still the folder this execution locked (`Attempt.check_here`)."""
    try:
        attempt.check_here(sub)
    except Removed:
        return False
    return True


def _recorded(sub: SubExperiment, n: int) -> bool:
    """Whether `.mrl.status` says attempt `n` (or later) began; when it cannot be read, as
    if so (the files then stay where they are)."""
    try:
        status = sub.read_status()
    except (OSError, MrlError):
        return True
    return status is not None and status.attempts >= n


def _on_a_line_of_its_own(log: int, path: Path) -> bytes:
    """A line end when the log does not end with one: output that ended without it (the last
    `print(..., end="")` of a step or an earlier attempt) would run into the header, which
    then starts no line (its step's metrics and attempt start are found by headers that do)."""
    if os.fstat(log).st_size == 0:  # a fresh run.log: the usual first step pays one fstat
        return b""
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return b"" if f.read(1) == b"\n" else b"\n"
    except OSError:  # gone or unreadable meanwhile: the header still goes in
        return b""


def _final_state(code: int | None, stopped: bool) -> JobState:
    if code == 0:
        return JobState.DONE
    # Stopped on request (Ctrl-C, mrl cancel): cancelled whatever the step made of the
    # signal, SIGKILL after it ignored SIGTERM included; never retried.
    if code is None or code in CANCEL_CODES or stopped:
        return JobState.CANCELLED
    return JobState.FAILED


# -- the experiment ----------------------------------------------------------------------------


def update_done_marker(exp: Experiment, subs: list[SubExperiment] | None = None) -> bool:
    """Create `EXPDIR/.mrl.done` when every sub-experiment is done, remove it otherwise."""
    from metarunlog import gone

    subs = exp.sub_experiments() if subs is None else subs
    # one whose folder a run saw removed is not done: nothing of it is left
    done = bool(subs) and all(_recorded_done(s) for s in subs) and not gone.entries(exp)
    mark = exp.dir / DONE_MARK
    # Two runners may finish at once: atomic write, and an unlink that may find it gone.
    if done and not mark.exists():
        jsonio.write_text(mark, f"{now()}\n")
    elif not done and os.path.lexists(mark):  # no unlink when absent: EROFS on a read-only folder
        mark.unlink(missing_ok=True)
    return done


def drop_stale_done_marker(exp: Experiment) -> bool:
    """Remove `EXPDIR/.mrl.done` when it is one mrl wrote (its text a time, as
    `update_done_marker` writes it) and a sub-experiment's record no longer says done (a
    `.mrl.status` removed by hand, `makebatch --extend` by an older mrl). One a user made
    (`touch .mrl.done`: empty, or any other text: the original's way of marking an
    experiment done by hand) is theirs and stays. Returns whether it was removed."""
    import datetime

    mark = exp.dir / DONE_MARK
    try:
        text = jsonio.read_bytes(mark).decode("ascii").strip()
        datetime.datetime.fromisoformat(text)
    except (OSError, ValueError, CorruptRecord):  # gone, unreadable, no file, or not a time: not ours to judge
        return False
    from metarunlog import gone

    subs = exp.sub_experiments()
    if subs and all(_recorded_done(s) for s in subs) and not gone.entries(exp):
        return False
    mark.unlink(missing_ok=True)
    return True


def _recorded_done(sub: SubExperiment) -> bool:
    try:
        return recorded_state(sub.read_status()) is JobState.DONE
    except MrlError:  # a corrupt record: not known to be done
        return False


LOG_WINDOW = 65536  # of run.log's end, what `log_tail` reads


def log_tail(sub: SubExperiment, lines: int = 20) -> list[str]:
    """The last `lines` lines of `run.log` (reads at most the last 64 KiB), each cut at
    `fmt.LOG_LINE_MAX` characters with a marker (`fmt.cut_line`). A first line that began
    before those 64 KiB starts with `...`, at a character's start (not a U+FFFD of half of one).
    Only a plain file's: a FIFO left there would block the reader for good, a device never ends."""
    from metarunlog.fmt import cut_line

    try:
        fd = os.open(sub.log_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before open(fd): a folder's is IsADirectoryError
        os.close(fd)
        return []
    with open(fd, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - LOG_WINDOW - 1))  # and the byte before: does the first line start there?
        data = f.read(LOG_WINDOW + 1)
    fragment = size > LOG_WINDOW and data[:1] != b"\n"
    data = data[1:] if size > LOG_WINDOW else data
    skip = 0
    while fragment and skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
        skip += 1  # the rest of a character the window cut
    shown = terminal_lines(data[skip:].decode("utf-8", "replace"))
    if fragment and shown:
        shown[0] = "..." + shown[0]
    return [cut_line(line) for line in shown[-lines:]]


def terminal_lines(text: str) -> list[str]:
    """The lines as a terminal leaves them: a progress bar redrawn with `\r` (tqdm) is its
    last state, one line, not one line per redraw (which pushed the lines before it out of
    the tail)."""
    out = [line.removesuffix("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return out[:-1] if out and out[-1] == "" else out


# -- `python -m metarunlog.execute`: sbatch scripts of earlier versions run this --------------

if __name__ == "__main__":
    from metarunlog.backends.task import main

    raise SystemExit(main(prog="python -m metarunlog.execute"))
