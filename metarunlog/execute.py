"""Execute one sub-experiment: the single entry point every backend ends up in.

`execute(sub, ...)` renders `run.command` (a Jinja string, or a list of steps), runs each
step with `/bin/sh -c` in the sub-experiment folder, in its own process group, with the
environment the SPEC promises, appends everything to `run.log` (each attempt headed by a
`==== mrl attempt ...` line) and keeps `.mrl.status` current (written when a step starts
and when the attempt ends). It holds `.mrl.lock` (flock) for the whole execution, so two
runners never execute one sub-experiment, and the child inherits the lock, so a runner
killed with -9 does not free its sub-experiment while the orphaned step still runs.
A rerun resumes at the first unfinished step (`stepsDone`).

Slurm array tasks call the same code: `python -m metarunlog.execute EXPDIR SUBEXP_ID
--backend slurm [--retries N]`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from metarunlog import jsonio, render
from metarunlog.errors import MrlError
from metarunlog.experiment import DONE_MARK, Experiment, SubExperiment
from metarunlog.records import Status
from metarunlog.states import JobState, recorded_state

LOCK = ".mrl.lock"
HOST = socket.gethostname()
# A step that ended by one of these signals (or sh's 128+N for them) was stopped by
# someone (Ctrl-C, SIGTERM, `mrl cancel`, scancel): cancelled, not failed.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CANCEL_CODES = frozenset([-int(s) for s in _STOP_SIGNALS] + [128 + int(s) for s in _STOP_SIGNALS])


class Locked(MrlError):
    """Another process executes this sub-experiment: its `.mrl.lock` is held."""


class Stopper:
    """Shared by the workers of one runner: a stop request and the live process groups.

    Safe to call from a signal handler: no locks, only set operations (atomic under the GIL).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal: int = signal.SIGTERM
        self._groups: set[int] = set()

    def add(self, pgid: int) -> None:
        self._groups.add(pgid)
        if self.requested:  # the stop came while this child was being started
            _killpg(pgid, self.signal)

    def discard(self, pgid: int) -> None:
        self._groups.discard(pgid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop: start nothing more, and send `sig` to every live child process group."""
        self.requested = True
        self.signal = sig
        for pgid in list(self._groups):
            _killpg(pgid, sig)

    @property
    def groups(self) -> list[int]:
        return list(self._groups)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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
                f"no run.command configured: set \"run\": {{\"command\": \"python {{{{codeDir}}}}/train.py\"}} "
                f"in {where} (a string, or a list of steps)"
            )
        sources = [raw] if isinstance(raw, str) else list(raw)
        if not sources or not all(isinstance(s, str) and s.strip() for s in sources):
            raise MrlError(f"run.command in {where} must be a non-empty string or a list of non-empty strings")
        return cls(sources, [render.command_template(s, where) for s in sources])

    def render(self, sub: SubExperiment, resource: str | None = None) -> list[str]:
        """The steps for `sub`; an undefined variable is an MrlError naming it."""
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


def environment(sub: SubExperiment, resource: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["MRL_EXP_DIR"] = str(sub.exp.dir)
    env["MRL_SUBEXP_DIR"] = str(sub.dir)
    env["MRL_CODE_DIR"] = str(sub.exp.code_dir)
    if resource is not None:
        env["CUDA_VISIBLE_DEVICES"] = resource
    return env


# -- one sub-experiment ------------------------------------------------------------------------


@dataclass
class Attempt:
    """Where an execution stands: its steps and the `.mrl.status` it keeps current."""

    steps: list[str]
    status: Status

    def write(self, sub: SubExperiment, status: Status, *, durable: bool = True) -> Status:
        self.status = status
        sub.write_status(status, durable=durable)
        return status


now = jsonio.now  # kept as execute.now: the backends import it from here


@contextlib.contextmanager
def locked(sub: SubExperiment) -> Any:
    """Hold `SUBDIR/.mrl.lock` (flock) or raise Locked; yields the lock's file descriptor."""
    fd = os.open(sub.dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(f"sub-experiment {sub.dir} is being run by another process (its {LOCK} is held)") from None
        yield fd
    finally:
        os.close(fd)


def run_sub(
    sub: SubExperiment,
    steps: list[str] | None = None,
    *,
    resource: str | None = None,
    backend: str = "local",
    job_id: str | None = None,
    stop: Stopper | None = None,
    force: bool = False,
    retries: int = 0,
    seen_attempts: int | None = None,
    base_env: dict[str, str] | None = None,
    on_start: Callable[[Status], None] | None = None,
) -> Status:
    """Execute `sub` under its lock; returns the final `.mrl.status`.

    A done sub-experiment is left alone (its record returned) unless `force`; with
    `force`, one that another runner finished after `seen_attempts` is left alone too.
    Raises Locked when another process holds it.
    """
    if steps is None:
        steps = Command.of(sub.exp).render(sub, resource)
    stop = stop or Stopper()
    with locked(sub) as lock_fd:
        old = sub.read_status() or Status()
        if _leave_alone(old, force, seen_attempts):
            return old
        first = resume_at(old, steps) if old.state is not JobState.DONE else 0
        env = environment(sub, resource, base_env)
        attempt = Attempt(steps, _initial(old, steps, resource, backend, job_id, first))
        status = old
        for _ in range(retries + 1):
            if stop.requested:
                break
            status = _attempt(sub, attempt, env, lock_fd, stop, on_start)
            if status.state is not JobState.FAILED:
                break
        return status


def execute(
    sub: SubExperiment,
    *,
    resource: str | None = None,
    backend: str = "local",
    job_id: str | None = None,
    stop: Stopper | None = None,
    retries: int = 0,
    force: bool = False,
) -> JobState:
    """Execute one sub-experiment (see the module docstring); returns its final state."""
    status = run_sub(sub, resource=resource, backend=backend, job_id=job_id, stop=stop, retries=retries, force=force)
    return status.state


def _leave_alone(old: Status, force: bool, seen_attempts: int | None) -> bool:
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


def _initial(old: Status, steps: list[str], resource: str | None, backend: str, job_id: str | None,
             first: int) -> Status:
    return old.begin(
        steps, first=first, host=HOST, runner_pid=os.getpid(), resource=resource, backend=backend,
        job_id=job_id if job_id is not None else old.job_id if backend != "local" else None,
        node=os.environ.get("SLURMD_NODENAME") if backend == "slurm" else None,
    )


def _attempt(
    sub: SubExperiment,
    attempt: Attempt,
    env: dict[str, str],
    lock_fd: int,
    stop: Stopper,
    on_start: Callable[[Status], None] | None,
) -> Status:
    """One attempt: the steps from `stepsDone` on; returns the final record."""
    t0 = time.monotonic()
    attempt.status = attempt.status.attempt_started(now())
    code: int | None = 0
    with open(sub.log_path, "ab", buffering=0) as log:
        for k in range(attempt.status.steps_done, len(attempt.steps)):
            if stop.requested:
                code = None
                break
            code = _step(sub, attempt, k, env, log, lock_fd, stop, on_start)
            if code != 0:
                break
            attempt.status = attempt.status.step_done(k)
    final = attempt.status.finished(_final_state(code, stop), code, now(), round(time.monotonic() - t0, 3))
    return attempt.write(sub, final)


def _step(
    sub: SubExperiment,
    attempt: Attempt,
    k: int,
    env: dict[str, str],
    log: IO[bytes],
    lock_fd: int,
    stop: Stopper,
    on_start: Callable[[Status], None] | None,
) -> int:
    step, m = attempt.steps[k], len(attempt.steps)
    header = f"==== mrl attempt {attempt.status.attempts} step {k + 1}/{m} on {HOST} at {now()}: {step}\n"
    log.write(header.encode("utf-8", "replace"))
    try:
        proc = subprocess.Popen(
            step,
            shell=True,
            cwd=sub.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop the step and all it started
            pass_fds=(lock_fd,),  # the lock lives as long as the step, even if we die
        )
    except OSError as e:
        log.write(f"mrl: could not start the step: {e}\n".encode())
        return 127
    stop.add(proc.pid)
    try:
        # Not fsynced: after a power cut a `running` record is stale either way.
        status = attempt.write(sub, attempt.status.step_started(proc.pid), durable=False)
        if on_start is not None:
            on_start(status)
        return proc.wait()
    finally:
        stop.discard(proc.pid)
        _reap_group(proc.pid)


def _reap_group(pgid: int) -> None:
    """A step's leftover background processes go with it (they hold the lock otherwise)."""
    _killpg(pgid, signal.SIGTERM)


def _final_state(code: int | None, stop: Stopper) -> JobState:
    if code == 0:
        return JobState.DONE
    if code is None or code in CANCEL_CODES or (stop.requested and code < 0):
        return JobState.CANCELLED
    return JobState.FAILED


# -- the experiment ----------------------------------------------------------------------------


def update_done_marker(exp: Experiment, subs: list[SubExperiment] | None = None) -> bool:
    """Create `EXPDIR/.mrl.done` when every sub-experiment is done, remove it otherwise."""
    subs = exp.sub_experiments() if subs is None else subs
    done = bool(subs) and all(recorded_state(s.read_status()) is JobState.DONE for s in subs)
    mark = exp.dir / DONE_MARK
    if done and not mark.exists():
        mark.write_text(f"{now()}\n", encoding="utf-8")
    elif not done and mark.exists():
        mark.unlink()
    return done


def log_tail(sub: SubExperiment, lines: int = 20) -> list[str]:
    """The last `lines` lines of `run.log` (reads at most the last 64 KiB)."""
    try:
        with open(sub.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            data = f.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


# -- `python -m metarunlog.execute` ------------------------------------------------------------


def _find_sub(expdir: Path, sub_id: int) -> SubExperiment:
    from metarunlog.project import Project

    project = Project.find(expdir)
    exp = project.load_exp(str(expdir))
    for sub in exp.sub_experiments():
        if sub.id == sub_id:
            return sub
    raise MrlError(f"experiment {expdir} has no sub-experiment {sub_id}")


def _slurm_job_id() -> str | None:
    job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if job and task:
        return f"{job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def cli(argv: list[str] | None = None) -> int:
    import argparse

    from metarunlog.error_handler import Exit, error_handler

    p = argparse.ArgumentParser(
        prog="python -m metarunlog.execute",
        description="Execute one sub-experiment (what each Slurm array task runs).",
    )
    p.add_argument("expdir", type=Path)
    p.add_argument("subexp_id", type=int)
    p.add_argument("--backend", default="slurm", choices=["local", "slurm"])
    p.add_argument("--retries", type=int, default=0)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    stop = Stopper()

    def on_signal(signum: int, frame: object) -> None:
        stop.stop(signal.SIGTERM)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        with error_handler():
            sub = _find_sub(args.expdir.resolve(), args.subexp_id)
            job_id = _slurm_job_id() if args.backend == "slurm" else None
            state = execute(sub, backend=args.backend, job_id=job_id, stop=stop, retries=args.retries, force=args.force)
            print(f"mrl: sub-experiment {sub.name}: {state}", file=sys.stderr)
            return {JobState.DONE: 0, JobState.CANCELLED: 130}.get(state, 1)
    except Exit as e:
        return e.code


if __name__ == "__main__":
    raise SystemExit(cli())
