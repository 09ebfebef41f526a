"""The local backend: a pool of worker slots, one per resource, in this process.

`--resources 0 1 1` makes three slots (GPU 0 alone, GPU 1 shared by two workers); each
slot runs one sub-experiment at a time with `CUDA_VISIBLE_DEVICES` set to its entry.
`-j N` makes N slots without a resource. One pool thread drives every slot through
`metarunlog.execute.execution` (the generator form of `execute`: no Python interpreter
per job), which writes `.mrl.status` and `run.log`, and waits for whichever step ends
first (a pidfd per step).

SIGINT, SIGTERM and SIGHUP stop the pool: nothing new starts, every child process group
gets SIGTERM (a second signal sends SIGKILL), and the interrupted sub-experiments are
marked `cancelled`; `interrupted` then tells the caller to exit 130.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metarunlog.backends.base import Backend, Job, RunOptions, observe
from metarunlog.error_handler import environment_message
from metarunlog.errors import MrlError
from metarunlog.execute import (
    HOST,
    Changed,
    Command,
    ExecOptions,
    Execution,
    Leftovers,
    Locked,
    Removed,
    Stopper,
    execution,
    now,
)
from metarunlog.experiment import Experiment
from metarunlog.jsonio import GroupCommit, Pending, sync_filesystem
from metarunlog.procs import group_alive, is_same_process, is_step_of, killpg
from metarunlog.records import Status
from metarunlog.spawn import BaseEnv, Started
from metarunlog.states import JobState, recorded_state, runner_holds

if TYPE_CHECKING:
    from metarunlog.ownership import Unrecorded

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COALESCE_S = 0.05
LEFTOVERS_POLL_S = 0.02  # how often the pool looks whether a step's leftovers are gone
PID_WAIT_S = 5.0  # how long a cancel waits for a just-started step's pid
CANCEL_GRACE_S = 10.0  # after SIGTERM, how long `mrl cancel` waits before SIGKILL


# More slots than this is a typo on any machine (`-j 10**12`).
MAX_WORKERS = 100_000
# Open files a running job holds (its folder, lock, run.log, pidfd, the lock's duplicate
# while its record commits) and those the runner keeps for itself (records, pipes, the committer).
FDS_PER_SLOT = 5
FD_RESERVE = 32
# What the runner opens besides its jobs' and what it holds when it plans: its claim, the
# pool's wake pipe and selector, /dev/null for the steps, a spawn's error pipe, a record's
# temp file, the committer's folder (7 measured, with retries and two steps: below that one
# job at a time fails with EMFILE), and room for Python writing its bytecode on a first run.
RUNNER_FDS = 11


class LocalBackend(Backend):
    """Runs jobs on this machine in worker threads; see the module docstring."""

    name = "local"
    cancel_wait = 0.0  # cancel() waits for what it signalled itself (SIGKILL after CANCEL_GRACE_S)

    def __init__(self, exp: Experiment, options: RunOptions | None = None) -> None:
        super().__init__(exp, options)
        res = [str(r) for r in self.options.resources]
        # submit() trims the slots to the number of jobs; until then a `-j 10**12` typo must
        # not allocate a list that size.
        workers = max(1, min(self.options.jobs, MAX_WORKERS))
        self._slots: list[str | None] = list(res) if res else [None] * workers
        self.stop = Stopper()
        self.running: dict[int, Job] = {}  # slot -> job
        self._queue: collections.deque[Job] = collections.deque()
        self._mine: set[int] = set()  # id() of jobs submitted here
        self._cond = threading.Condition()  # an RLock inside: safe to notify from a signal handler
        self._changed = False
        self._threads: list[threading.Thread] = []
        self._pool_alive = False  # the pool thread runs (it ends when nothing is queued or running)
        self._wake: _Wake | None = None  # wakes the pool thread: more jobs were submitted
        self._old_handlers: dict[int, Any] = {}
        self._env = BaseEnv(os.environ)  # encoded once for every step of the run (spawn.StepEnv)
        self._task_env: tuple[Any, BaseEnv] | None = None  # exec_defaults.env, encoded once
        self._command: Command | None = None
        self._stops: dict[int, Stopper] = {}  # id(job) -> its own Stopper, while it executes
        self.cancel_grace = CANCEL_GRACE_S
        # The final records: renamed into place as each job ends (the lock is released
        # then), made durable in batches (one syncfs per COMMIT_WINDOW_S, see _handed_over);
        # a job counts as ended only once its record is durable, so a worker never waits
        # for the disk and nothing reported ended can be lost by a crash.
        self._durable: GroupCommit[tuple[Job, Status]] = GroupCommit(exp.dir, self._on_durable)
        self._idle = threading.Event()  # set once every worker has ended (none started: set)
        self._idle.set()
        # How each job is executed, besides what the pool decides (a Slurm task packing
        # several sub-experiments: its backend name, job id and node).
        self.exec_defaults = ExecOptions()
        # Asked before a job starts: a reason to leave it alone (its cancel was requested), or None.
        self.skip: Callable[[Job], str | None] | None = None

    @classmethod
    def preflight(cls, exp: Experiment, options: RunOptions) -> None:
        """Refuse a run whose open-file limit (`ulimit -n`) cannot hold even one job: every
        job would fail with "too many open files". Above that, `_fit_open_files` runs fewer
        at a time and says so."""
        need, soft = open_files_needed(1), _open_file_limit()
        if soft is None or soft >= need:
            return
        workers = len(options.resources) or min(options.jobs, 1000)
        want = max(open_files_needed(workers) + FD_RESERVE, 64)
        raise MrlError(
            f"mrl run needs at least {need} open files to run one job at a time, but this process may open "
            f"{soft} (`ulimit -n {soft}`): raise the limit, e.g. `ulimit -n {want}`"
            + (f" for {workers} workers" if workers > 1 else "")
            + ", and run again"
        )

    @classmethod
    def where(cls, options: RunOptions) -> str:
        return f"resources {' '.join(options.resources)}" if options.resources else f"{options.jobs} worker(s)"

    # -- the Backend interface ---------------------------------------------------------------
    def submit(self, jobs: Sequence[Job]) -> None:
        with self._cond:
            for job in jobs:
                job.state = JobState.QUEUED
                self._mine.add(id(job))
                self._queue.append(job)
        self._install_signal_handlers()
        if not self._threads and not self.options.resources:  # -j N: never more slots than jobs (-j 10**7)
            del self.slots[max(1, len(self._queue)) :]
            self._fit_open_files()
        if self._wake is None:
            self._wake = _Wake()
        with self._cond:
            start = not self._pool_alive
            self._pool_alive = True
        if start:  # else the pool thread's free slots take them
            self._idle.clear()
            t = threading.Thread(target=self._pool, name="mrl-pool", daemon=True)
            t.start()
            self._threads.append(t)
        self._wake.set()

    def poll(self, jobs: Sequence[Job]) -> list[JobState]:
        theirs = [j for j in jobs if id(j) not in self._mine]
        if theirs:
            observe(theirs)
        return [j.state for j in jobs]

    def cancel(self, jobs: Sequence[Job]) -> None:
        """Stop these jobs. Ours: queued ones never start and are recorded cancelled, running
        ones get SIGTERM (SIGKILL after CANCEL_GRACE_S) and end cancelled, never retried.
        Another runner's (or none's): see `cancel_records`."""
        theirs, dropped = [], []
        with self._cond:
            queued = {id(j) for j in self._queue}  # one pass, not a scan of the queue per job
            for job in jobs:
                if id(job) not in self._mine:
                    theirs.append(job)
                elif id(job) in queued:
                    dropped.append(job)
                elif id(job) in self._stops:
                    self._stop_job(self._stops[id(job)])
            if dropped:
                gone = {id(j) for j in dropped}
                kept = [j for j in self._queue if id(j) not in gone]
                self._queue.clear()
                self._queue.extend(kept)
        for job in dropped:  # each record renamed into place; made durable once for all, below
            _record_cancelled_before_start(job, durable=False)
        if dropped:
            sync_filesystem(self.exp.dir)
        if theirs:
            cancel_records(theirs)

    def _stop_job(self, stop: Stopper) -> None:
        stop.stop(signal.SIGTERM)
        timer = threading.Timer(self.cancel_grace, stop.stop, args=(signal.SIGKILL,))
        timer.daemon = True  # only signals groups still registered: a step gone is not signalled
        timer.start()

    def wait(self, timeout: float) -> None:
        with self._cond:
            if not self._changed:
                self._cond.wait(timeout)
            self._changed = False
        # Let more jobs end before the caller looks: one look per burst, not per job
        # (short jobs otherwise spend the GIL on the caller's polling); but not past the
        # end: the last worker to end says so.
        self._idle.wait(min(COALESCE_S, timeout))

    def close(self) -> None:
        with self._cond:
            self._queue.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        self._durable.close()  # every record reported ended is on disk
        if self._wake is not None:
            self._wake.close()
        self._restore_signal_handlers()

    # -- what the caller (mrl run) reads -----------------------------------------------------
    def _fit_open_files(self) -> None:
        """`-j N`: never more slots than this process may hold files for. A running job holds
        its lock, its run.log, its step's pidfd and, while its record commits, a duplicate of
        the lock; past the limit jobs would fail with EMFILE, so fewer run at a time, and the
        user is told how to allow more. The limit itself is left alone (steps inherit it)."""
        soft = _open_file_limit()
        if soft is None:
            return
        fit = max(1, (soft - FD_RESERVE) // FDS_PER_SLOT)
        if len(self.slots) > fit:
            want = len(self.slots) * FDS_PER_SLOT + FD_RESERVE
            self.warnings.append(
                f"{len(self.slots)} workers need about {want} open files but this process may "
                f"open {soft} (`ulimit -n`): running {fit} at a time; raise it with "
                f"`ulimit -n {want}` for more"
            )
            del self.slots[fit:]

    @property
    def slots(self) -> list[str | None]:
        return self._slots

    @property
    def busy(self) -> bool:
        """True while a submitted job is queued or running here."""
        with self._cond:
            return bool(self._queue) or bool(self.running)

    # -- workers -----------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._cond:
            if self.stop.requested or self.halted:
                for job in self._queue:
                    job.state = JobState.PENDING
                self._queue.clear()
            if not self._queue:
                return None
            job = self._queue.popleft()
            # Its Stopper from the moment it leaves the queue: a cancel arriving before its
            # first step starts reaches it (it then starts nothing and is recorded cancelled).
            self._stops[id(job)] = Stopper(self.stop)
            return job

    # One thread runs every slot: it starts a job's step (`execute.execution`), and while
    # the steps run it waits for any of them to end (a pidfd each, one selector). Short
    # jobs spend most of their cost in Python; with a thread per slot the slots' threads
    # handed the GIL to each other at every system call (and Python 3.11 holds it while a
    # step is spawned), so two workers were slower than one thread driving both.
    def _pool(self) -> None:
        assert self._wake is not None  # made by submit
        loop = _Loop(self, self._wake)
        try:
            loop.run()
        finally:
            loop.close()
            self._durable.flush()  # the run's last records: durable now, not a window later
            with self._cond:
                self._idle.set()
                self._changed = True
                self._cond.notify_all()

    def _start(self, slot: int, job: Job) -> _Running | None:
        """Start `job` in `slot` up to its first step's process (None: it ended without one)."""
        job.slot, job.resource = slot, self.slots[slot]
        with self._cond:
            self.running[slot] = job
        try:
            why = self.skip(job) if self.skip is not None else None
        except Exception as e:  # noqa: BLE001 -- one broken job must not stop the pool
            job.message, job.state = f"mrl could not run it: {type(e).__name__}: {e}", JobState.FAILED
            self._ended(_Running(job, None, Stopper()))
            return None
        if why is not None:
            job.skipped, job.message = True, why
            job.state = recorded_state(job.read_status())
            self._ended(_Running(job, None, Stopper()), judged=False)
            return None
        with self._cond:
            stop = self._stops[id(job)]  # registered by _next as the job left the queue
        run = _Running(job, None, stop)
        run.execution = execution(job.sub, self._options(job, run))
        return self._advance(run, None)

    def _options(self, job: Job, run: _Running) -> ExecOptions:
        def started(status: Status) -> None:
            job.status, job.state = status, JobState.RUNNING
            self._notify()

        def commit(pending: Pending, status: Status) -> None:
            run.final = status  # it has ended once this record is durable
            self._handed_over(job, status, pending)

        return dataclasses.replace(
            self.exec_defaults,
            steps=self._steps(job),
            resource=job.resource,
            stop=run.stop,
            force=self.options.force,
            retries=self.options.retries,
            seen_attempts=job.status.attempts if job.status else 0,
            env=self._base_env(),
            on_start=started,
            fingerprint=job.fingerprint,
            heartbeat=self.options.heartbeat,
            commit=commit,
        )

    def _base_env(self) -> BaseEnv:
        """The environment every step starts from: `exec_defaults.env` (a Slurm task's) or
        os.environ as the pool was made, encoded once (not once per step)."""
        given = self.exec_defaults.env
        if not given:
            return self._env
        if isinstance(given, BaseEnv):
            return given
        if self._task_env is None or self._task_env[0] is not given:
            self._task_env = (given, BaseEnv(given))
        return self._task_env[1]

    def _advance(self, run: _Running, code: int | None) -> _Running | None:
        """Resume `run` (with its step's exit code; None: start it) up to its next step's
        process; None once it has ended."""
        job = run.job
        assert run.execution is not None
        try:
            run.proc = next(run.execution) if code is None else run.execution.send(code)
            return run
        except StopIteration as end:
            if code is None and run.stop.requested_here and end.value.state is not JobState.CANCELLED:
                _record_cancelled_before_start(job)  # its cancel came as its slot took it
            elif code is None and _done_elsewhere(end.value):
                # Another runner finished it between this run's plan and its slot taking
                # it (execute left it alone): theirs to report, not a `done` of this run.
                job.skipped, job.message = True, "done by another runner since this run planned it"
                job.status, job.state = end.value, end.value.state
            elif run.final is None:
                job.status, job.state = end.value, end.value.state
        except Removed as e:  # what its folder holds now is not this run's: never read as its state
            job.skipped, job.changed, job.removed, job.message = True, True, True, str(e)
            job.state, job.status = JobState.PENDING, None
        except Changed as e:
            job.skipped, job.changed, job.message = True, True, str(e)
            job.state = job.observe() if job.sub.dir.is_dir() else JobState.PENDING
        except Locked as e:
            job.skipped, job.message = True, str(e)
            job.observe()
        except OSError as e:  # disk full, read-only...: its record says what is true, so do we
            job.message = f"mrl could not record it: {environment_message(e)}"
            on_disk = job.observe()
            job.state = JobState.STALE if on_disk.active else on_disk  # we stopped it: nothing runs it
            # before its first step: a `done` (or failed) record on disk is an earlier run's
            job.not_run = code is None and on_disk.finished
        except Exception as e:  # noqa: BLE001 -- one broken job must not stop the pool
            job.message = f"mrl could not run it: {type(e).__name__}: {e}"
            job.state = JobState.FAILED
        self._ended(run)
        return None

    def _ended(self, run: _Running, judged: bool = True) -> None:
        """`run` is over here (its record may still wait to be durable); `judged`: its
        state counts for --fail-fast (a job skipped before it started does not)."""
        job = run.job
        with self._cond:
            self._stops.pop(id(job), None)
        state = run.final.state if run.final is not None else job.state
        if judged and state is JobState.FAILED and self.options.fail_fast:
            self.halted = True
        with self._cond:
            if job.slot is not None:
                self.running.pop(job.slot, None)
            self._changed = True
            self._cond.notify_all()

    def _handed_over(self, job: Job, status: Status, pending: Pending) -> None:
        """`job`'s final record: in place now (its lock released), durable with the next batch.
        Until then `job.state` stays running and `job.status` is that record (nothing to cancel)."""
        pending.durable = False
        try:
            pending.commit()
        except OSError as e:
            self._recorded(job, status, e)
        else:
            job.status = status
            self._durable.add(pending.path, (job, status))

    def _on_durable(self, item: tuple[Job, Status], error: OSError | None) -> None:
        self._recorded(*item, error)

    def _recorded(self, job: Job, status: Status, error: OSError | None) -> None:
        """`job`'s final record is in place (or could not be written): only now has it ended."""
        if error is None:
            job.status, job.state = status, status.state
        else:  # the record still says running: the run must not count it as it ended
            job.message = f"mrl could not record how it ended: {error}"
            job.state = JobState.FAILED
            if self.options.fail_fast:
                self.halted = True
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._changed = True
            self._cond.notify_all()

    def _steps(self, job: Job) -> list[str] | None:
        """The job's steps, rendered again when its slot has a resource (`{{resource}}`)."""
        if job.resource is None and job.steps:
            return job.steps
        if self._command is None:
            self._command = Command.of(self.exp)
        return self._command.render(job.sub, job.resource)

    # -- signals -----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if self._old_handlers or threading.current_thread() is not threading.main_thread():
            return
        for s in _SIGNALS:
            if signal.getsignal(s) is signal.SIG_IGN:
                continue  # ignored by the caller (`nohup mrl run &`: a hangup must not cancel the run)
            self._old_handlers[s] = signal.signal(s, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: object) -> None:
        again = self.interrupted
        self.interrupted = True
        self.hung_up = self.hung_up or (signum == signal.SIGHUP and not again)
        self.stop.stop(signal.SIGKILL if again else signal.SIGTERM)
        self._changed = True


def _open_file_limit() -> int | None:
    """The soft `ulimit -n` of this process (None: unlimited)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def open_files_needed(workers: int) -> int:
    """The descriptors a run of `workers` at a time needs: those open now (stdio, whatever
    the caller left open), the runner's own, and each running job's."""
    try:
        now = len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError:  # no /proc: stdio at least
        now = 3
    return now + RUNNER_FDS + FDS_PER_SLOT * workers


@dataclass
class _Running:
    """A job the pool thread drives: its execution, and the step process it waits for."""

    job: Job
    execution: Execution | None
    stop: Stopper
    proc: Started | Leftovers | None = None
    final: Status | None = None  # its final record, handed over (ended once durable)


class _Wake:
    """A pipe the pool thread's selector watches, so that another thread can wake it."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.read)
        os.close(self.write)

    def set(self) -> None:
        with contextlib.suppress(OSError):  # full: it is woken already
            os.write(self.write, b"x")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.read, 4096)


class _Loop:
    """The pool thread: fills free slots from the queue and waits for any step to end."""

    def __init__(self, pool: LocalBackend, wake: _Wake) -> None:
        self.pool, self.wake = pool, wake
        self.selector = selectors.DefaultSelector()
        self.selector.register(wake.read, selectors.EVENT_READ, None)
        self.active: dict[int, _Running] = {}  # slot -> what runs there
        self.fds: dict[int, int] = {}  # slot -> the pidfd of its step
        self.ended: collections.deque[int] = collections.deque()  # slots whose step ended (no pidfd)
        self.leftovers: set[int] = set()  # slots waiting for what their step left behind (polled)
        self.next_poll = 0.0  # when to look at them again (a look may scan /proc: not at every event)
        self.waiters: list[threading.Thread] = []  # where pidfds are missing: joined before the wake pipe closes

    def run(self) -> None:
        while True:
            self._fill()
            if not self.active:
                if self._done():
                    return
                continue  # submitted meanwhile
            timeout = max(0.0, self.next_poll - time.monotonic()) if self.leftovers else None
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self.wake.drain()
                else:
                    self.ended.append(key.data)
            self._poll_leftovers()
            while self.ended:
                self._step_ended(self.ended.popleft())

    def _done(self) -> bool:
        """Nothing runs and nothing is queued: the thread ends (a later submit starts another)."""
        with self.pool._cond:
            if self.pool._queue:
                return False
            self.pool._pool_alive = False
            return True

    def _fill(self) -> None:
        for slot in range(len(self.pool.slots)):
            while slot not in self.active:
                job = self.pool._next()
                if job is None:  # the queue is empty: so it is for the other free slots (a
                    return  # submit meanwhile writes to the wake pipe: filled on that wake-up)
                run = self.pool._start(slot, job)
                if run is not None:
                    self._watch(slot, run)

    def _watch(self, slot: int, run: _Running) -> None:
        self.active[slot] = run
        assert run.proc is not None
        if isinstance(run.proc, Leftovers):  # no process to wait for: polled, the other slots go on
            self.leftovers.add(slot)
            return
        try:
            fd = os.pidfd_open(run.proc.pid)
        except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): a thread waits for it
            waiter = threading.Thread(target=self._wait, args=(slot, run.proc), daemon=True)
            waiter.start()
            self.waiters = [t for t in self.waiters if t.is_alive()] + [waiter]
            return
        self.fds[slot] = fd
        self.selector.register(fd, selectors.EVENT_READ, slot)

    def _poll_leftovers(self) -> None:
        if not self.leftovers or time.monotonic() < self.next_poll:
            return
        self.next_poll = time.monotonic() + LEFTOVERS_POLL_S
        for slot in list(self.leftovers):
            run = self.active[slot]
            assert isinstance(run.proc, Leftovers)
            if run.proc.ended():
                self.leftovers.discard(slot)
                self.ended.append(slot)

    def _wait(self, slot: int, proc: Started) -> None:
        proc.wait()
        self.ended.append(slot)
        self.wake.set()

    def _step_ended(self, slot: int) -> None:
        fd = self.fds.pop(slot, None)
        if fd is not None:
            self.selector.unregister(fd)
            os.close(fd)
        run = self.active.pop(slot)
        assert run.proc is not None
        if self.pool._advance(run, run.proc.wait()) is not None:
            self._watch(slot, run)

    def close(self) -> None:
        """Release the pidfds; a run still here (the loop itself failed: a bug) is closed,
        which stops its step (its record stays `running`, and is reported stale)."""
        for fd in self.fds.values():
            os.close(fd)
        self.selector.close()
        for run in self.active.values():
            if run.execution is not None:
                run.execution.close()
            run.job.message, run.job.state = "mrl's pool stopped before it ended", JobState.STALE
            self.pool._ended(run)
        for waiter in self.waiters:  # each has seen its step end, or is about to (stopped above)
            waiter.join(PID_WAIT_S)


def _done_elsewhere(status: Status) -> bool:
    """A record execute left alone as done, written by another process (not by this run)."""
    return status.state is JobState.DONE and status.runner_pid != os.getpid()


def _record_cancelled_before_start(job: Job, *, durable: bool = True) -> None:
    """A queued job cancelled before it started: its record says so (attempts unchanged);
    a done one queued by --force stays done (it did finish, before). Not `durable`: the
    caller makes it so (one syncfs for many)."""
    old = job.sub.read_status() or Status()
    job.message, job.unstarted = "cancelled before it started", True
    if old.state is JobState.DONE:
        job.status, job.state = old, JobState.DONE
        return
    job.status, job.state = old.cancelled_unstarted(now()), JobState.CANCELLED
    try:
        job.sub.write_status(job.status, durable=durable)
    except OSError as e:
        job.message += f" (could not record it: {e})"


def stop_unrecorded(steps: Mapping[Job, Unrecorded], grace: float = CANCEL_GRACE_S) -> None:
    """`mrl cancel` of jobs `unrecorded` found: SIGTERM (SIGKILL after `grace`) to each step
    proven its dead runner's (its MRL_RUNNER names that runner, and it is still the process
    found: pid and start id), then `cancelled` in its record. One it cannot prove (started
    by an mrl that set no MRL_RUNNER) is not signalled, and says so."""
    groups, stopped = [], []
    for job, step in steps.items():
        if not step.proven:
            job.message = (
                f"pid {step.pid} (`{step.command}`) names it in MRL_SUBEXP_DIR and started after an mrl run that "
                "was killed, with no MRL_RUNNER: mrl cannot prove it is that run's step (an older mrl's, or a "
                f"look-alike): not signalled; if it is, stop it yourself (`kill {step.pid}`)"
            )
            continue
        if not is_same_process(step.pid, step.start):  # it ended meanwhile, and its pid may be a stranger's now
            job.message = f"its step (pid {step.pid}) is no longer the process found: not signalled"
            continue
        killpg(step.pid, signal.SIGTERM)  # a session leader: its group is its own
        groups.append(step.pid)
        stopped.append(job)
    _wait_gone(groups, grace)
    for job in stopped:
        old = job.sub.read_status() or Status()
        # it ran, with no record: no start or exit code is known, but never "before it started"
        why = "its step ran with no record (the mrl run that started it was killed) until mrl cancel stopped it"
        job.status, job.state = old.cancelled_unstarted(now())._next(reason=why), JobState.CANCELLED
        job.message = f"its step (pid {steps[job].pid}), left with no record by an mrl run that was killed, was stopped"
        try:
            job.sub.write_status(job.status)
        except OSError as e:
            job.message += f" (could not record it: {e})"


def cancel_records(jobs: Sequence[Job], grace: float = CANCEL_GRACE_S) -> None:
    """Cancel local jobs of another runner (or of none): SIGTERM their process groups.

    Only a process provably the recorded one (pid and start id, `procs.is_same_process`)
    is signalled: a reused pid belongs to a stranger. A live runner writes `cancelled`
    itself when its step dies; for a record whose runner is gone (stale) we write it.
    """
    groups, here = [], []
    for job in jobs:
        status = job.read_status()
        state = job.observe(status)
        if status is None or (not state.active and state is not JobState.STALE):
            continue
        if status.host not in (None, HOST):
            job.message = f"runs on {status.host}: cancel it there"
            continue
        here.append(job)
        pgid, start = (status.pid, status.pid_start) if status.pid is not None else _wait_for_pid(job, status)
        if pgid is not None and is_step_of(pgid, start, job.sub.dir):
            killpg(pgid, signal.SIGTERM)
            groups.append(pgid)
        elif pgid is not None:
            job.message = f"pid {pgid} is not its step any more: not signalled"
    _wait_gone(groups, grace)
    for job in here:
        _mark_cancelled_if_orphaned(job)


def _runner_alive(status: Status | None, job: Job) -> bool:
    """The record's runner lives and is this sub-experiment's (a copy of a running
    experiment names the original's runner, which holds the original's lock, not its)."""
    if status is None or not is_same_process(status.runner_pid, status.runner_start):
        return False
    return runner_holds(status, job.sub.dir) is not False


def _wait_for_pid(job: Job, status: Status, grace: float = PID_WAIT_S) -> tuple[int | None, str | None]:
    """The step's process group (and its start id) once its live runner has recorded it.

    A runner writes the child's pid just after starting it, so a cancel can land in
    between (the step may already have done something visible); wait for the record
    rather than miss the step.
    """
    deadline = time.monotonic() + grace
    while _runner_alive(status, job) and time.monotonic() < deadline:
        time.sleep(0.02)
        now_status = job.read_status()
        if not recorded_state(now_status).active:
            return None, None
        if now_status is not None and now_status.pid is not None:
            return now_status.pid, now_status.pid_start
    return None, None


def _wait_gone(groups: list[int], grace: float) -> None:
    """Wait for the groups (proven ours when signalled) to end; SIGKILL what is left.

    A group seen empty is dropped at once: its id could be reused by a stranger."""
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        groups = [g for g in groups if group_alive(g)]
        if groups:
            time.sleep(0.05)
    for g in groups:
        killpg(g, signal.SIGKILL)


def _mark_cancelled_if_orphaned(job: Job) -> None:
    first = job.status
    for _ in range(40):  # a live runner writes `cancelled` itself, give it 2 s
        status = job.read_status()
        if not recorded_state(status).active:
            job.state = recorded_state(status)
            return
        if not _runner_alive(first, job):
            break
        time.sleep(0.05)
    status = job.read_status()
    if _runner_alive(first, job) and status is not None and status.state.active:
        # Its runner lives and still says running: saying cancelled here would be a lie.
        runner = first.runner_pid if first else None
        job.message = f"its runner (pid {runner}) did not stop it; try again, or stop that runner"
        return
    if status is not None and status.state.active:
        with contextlib.suppress(OSError):
            job.sub.write_status(status.cancelled(now()))
        job.state = JobState.CANCELLED
