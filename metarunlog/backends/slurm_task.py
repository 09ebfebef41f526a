"""Inside a Slurm array task: run the sub-experiments the submission's plan gives this task.

`python -m metarunlog.backends.task EXPDIR $SLURM_ARRAY_TASK_ID --backend slurm --plan
EXPDIR/.mrl.slurm/submit-NNN.json` ends here (`SlurmBackend.run_plan`). Task `i` runs
`plan.tasks[i]` with the local pool (`LocalBackend`, the same `execute` as `mrl run`):
`pack_jobs` at once, or one per GPU of the allocation (`CUDA_VISIBLE_DEVICES`, else
`SLURM_JOB_GPUS`, only when Slurm says it gave GPUs: `allocated_gpus`), or one per CPU
(`SLURM_CPUS_PER_TASK`). Each sub-experiment keeps its
own record, `run.log` and lock; its record carries the task's job id.

- `mrl cancel` of one sub-experiment of a task that goes on writes `SUBDIR/.mrl.cancel`:
  the task skips it (queued) or stops it (running), here, within half a second.
- SIGTERM/SIGINT/SIGHUP (scancel, a time limit, a requeue) stop every step; the task asks
  Slurm why, so the records say `requeued` (a requeue or a preemption: the task runs again,
  each interrupted sub-experiment resuming at its first unfinished step, with
  `MRL_REQUEUED=1`),
  `timeout`, or `cancelled`. A step that ended as Slurm began ending the task (Slurm's
  SIGCONT came first, `ContWatch`, and Slurm says the job is ending: `_ending`) is
  interrupted too, even when its shell exited 0 (a `;` list goes on after its command was
  killed).
- SIGUSR1 (`--signal=B:USR1@<run.slurm.signal_before>`, with run.slurm.requeue) is passed
  to the steps (time to save a checkpoint); what it interrupts is recorded `requeued` and
  the task requeues itself (`scontrol requeue`), at most run.slurm.requeue times; after
  that the sub-experiments it interrupts are failed with that reason (their attempt's
  start, duration and exit code kept: `Stopper.forward(final=...)`).
- A sub-experiment this submission never started, when its task ends for good (a time
  limit, the requeue limit), is `pending` again with "not started: ..." (`not_run`):
  nothing of it ran, so it neither failed nor timed out; a plain `mrl run` runs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metarunlog import jsonio
from metarunlog.backends import slurm
from metarunlog.backends.base import Job, RunOptions
from metarunlog.backends.local import LocalBackend
from metarunlog.errors import MrlError
from metarunlog.execute import Command, ExecOptions
from metarunlog.experiment import Experiment, SubExperiment
from metarunlog.records import Status
from metarunlog.states import JobState, recorded_state

MARK_CHECK_S = 0.5  # how often the task looks for `mrl cancel` requests


def run_task_of_plan(expdir: Path, plan_path: Path, index: int) -> int:
    """Run task `index` of the plan; exit code 0 all done, 130 cancelled, 1 otherwise."""
    plan = slurm.TaskPlan.read(plan_path if plan_path.is_absolute() else expdir / plan_path)
    if not 0 <= index < len(plan.tasks):
        raise MrlError(f"{plan_path} has no task {index} (it has {len(plan.tasks)})")
    exp = _experiment(expdir)
    subs = _subs(exp, plan.tasks[index])
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if plan.requeue and restarts > plan.requeue:
        return _give_up(subs, f"requeued {restarts} times, more than run.slurm.requeue ({plan.requeue})")
    runner = PackRunner(exp, subs, plan, restarts)
    states = runner.run()
    # one write for the task's output file, not one per sub-experiment
    said = zip(subs, states, strict=True)
    sys.stderr.write("".join(f"mrl: sub-experiment {sub.name}: {state}\n" for sub, state in said))
    if all(s is JobState.DONE for s in states):
        return 0
    return 130 if any(s in (JobState.CANCELLED, JobState.QUEUED) for s in states) else 1


def _experiment(expdir: Path) -> Experiment:
    from metarunlog.project import Project

    return Project.find(expdir).load_exp(str(expdir))


def _subs(exp: Experiment, ids: list[int]) -> list[SubExperiment]:
    """This task's sub-experiments: found at their folders' names (a task of a 10,000-sub
    experiment need not list them all), else by listing the experiment."""
    if exp.is_expanded and not exp.is_single:
        dirs = [exp.subexp_dir(i) for i in ids]
        if all(d.is_dir() for d in dirs):
            return [SubExperiment(exp, i, d.name, d) for i, d in zip(ids, dirs, strict=True)]
    by_id = {s.id: s for s in exp.sub_experiments()}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise MrlError(f"experiment {exp.dir} has no sub-experiment {', '.join(map(str, missing))}")
    return [by_id[i] for i in ids]


def _give_up(subs: list[SubExperiment], reason: str) -> int:
    now = jsonio.now()
    for sub in subs:
        status = sub.read_status()
        # what ended (failed by itself, cancelled with mrl cancel) keeps its own word
        if status is not None and status.state.active:
            sub.write_status(not_run(status, reason, f"its Slurm task was {reason}", now))
    print(f"mrl: {reason}: not run", file=sys.stderr)
    return 1


def not_run(status: Status, why: str, unstarted: str, now: str) -> Status:
    """The record of an unfinished sub-experiment its task will not run: `pending` again
    with "not started: <unstarted>" when this submission never started it (it must not
    look like it ran, or failed), else `failed` with `why` (a requeue interrupted it)."""
    return status.not_started(f"not started: {unstarted}") if slurm.never_started(status) else status.gave_up(why, now)


def step_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The steps' environment: the task's, with the PYTHONPATH of whoever submitted it
    (the script set mrl's own for the task; a script of an earlier mrl did not say)."""
    env = dict(environ)
    was = env.pop(slurm.PYTHONPATH_WAS, None)
    if was is not None:
        if was.startswith("set:"):
            env["PYTHONPATH"] = was[4:]
        else:
            env.pop("PYTHONPATH", None)
    return env


# Set by Slurm only for a job it gave GPUs (gres/gpu, --gpus...); SLURM_JOB_GPUS in batch jobs.
ALLOCATION_GPU_VARS = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")


def allocated_gpus(env: Mapping[str, str]) -> list[str]:
    """The GPUs Slurm gave this task: CUDA_VISIBLE_DEVICES as Slurm set it for them (the
    indices the task sees, renumbered where devices are constrained), else SLURM_JOB_GPUS.
    None when Slurm says it gave none: a CUDA_VISIBLE_DEVICES then came from the shell
    that ran `mrl run` (sbatch exports the submitter's environment, `--export=ALL`), and
    GPUs the submitting shell could see are not this allocation's."""
    if not any(env.get(k, "").strip() for k in ALLOCATION_GPU_VARS):
        return []
    listed = env.get("CUDA_VISIBLE_DEVICES") or env.get("SLURM_JOB_GPUS") or env.get("SLURM_STEP_GPUS") or ""
    return [g.strip() for g in listed.split(",") if g.strip()]


def slots(pack_jobs: int | None, n: int, env: Mapping[str, str] | None = None) -> list[str | None]:
    """The pool's slots: `pack_jobs` workers spread over the allocation's GPUs (each with
    its CUDA_VISIBLE_DEVICES), or one per GPU, or one per CPU of the task; at most `n`."""
    env = os.environ if env is None else env
    gpus = allocated_gpus(env)
    if pack_jobs is None:
        cpus = env.get("SLURM_CPUS_PER_TASK", "")
        count = len(gpus) or (int(cpus) if cpus.isdigit() else 1)
    else:
        count = pack_jobs
    count = max(1, min(count, n))
    return [gpus[k % len(gpus)] for k in range(count)] if gpus else [None] * count


class ContWatch:
    """A stopped child of the task that a SIGCONT continues: how the task knows, when a step
    ends, that Slurm had begun to end the job before it did.

    Slurm ends a job (a requeue, a preemption, scancel, a time limit) by sending every
    process of it SIGCONT, and only then SIGTERM, the deepest first. The kernel marks a
    stopped child continued the moment the SIGCONT is sent: a step whose exit the task
    reaps after that was still running when Slurm began, and one reaped with no mark ended
    before Slurm signalled anything. A resume after `scontrol suspend` sends SIGCONT too,
    hence the question to Slurm (`PackRunner._ending`). Nothing of the steps' own changes:
    no trap in their shell (a trapped SIGCONT would cut short a `wait` of theirs).
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        try:  # not subprocess: its bookkeeping reaps children it knows of
            self.pid = os.posix_spawnp("sleep", ["sleep", "2147483647"], os.environ, setsid=True)
        except OSError:
            return  # no watch: a step's exit stands, as it would without one
        if not self._arm():
            self.close()

    def _arm(self) -> bool:
        """Stop it and wait until it is stopped: a SIGCONT from now on leaves its mark."""
        assert self.pid is not None
        try:
            os.kill(self.pid, signal.SIGSTOP)  # our own child, not reaped: the pid is its
            info = os.waitid(os.P_PID, self.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
            if info is not None and info.si_code == os.CLD_STOPPED:
                os.waitid(os.P_PID, self.pid, os.WSTOPPED)  # taken: the next one is news
                return True
        except OSError:
            pass
        return False

    def continued(self) -> bool:
        """Whether a SIGCONT came (or it was killed) since it was armed; armed again at once
        when it is continued, before anyone is asked why."""
        if self.pid is None:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WCONTINUED | os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except OSError:
            return False
        if info is None:
            return False
        if info.si_code == os.CLD_CONTINUED:
            with contextlib.suppress(OSError):
                os.waitid(os.P_PID, self.pid, os.WCONTINUED | os.WNOHANG)
            self._arm()
        return True  # continued, or ended: only Slurm's end of the job signals it

    def close(self) -> None:
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _restarts(info: Mapping[str, str]) -> int:
    """The job's restart count in `scontrol show job`'s fields (0 when it did not say)."""
    restarts = info.get("Restarts", "")
    return int(restarts) if restarts.isdigit() else 0


class PackRunner:
    """The local pool over this task's sub-experiments, with cancel requests and signals."""

    def __init__(self, exp: Experiment, subs: list[SubExperiment], plan: slurm.TaskPlan, restarts: int) -> None:
        self.exp, self.subs, self.plan, self.restarts = exp, subs, plan, restarts
        job_id, node = slurm.SlurmBackend.task_ids()
        self.job_id = job_id
        # MRL_REQUEUED=1 is execute's: set for a sub-experiment whose attempt a requeue
        # interrupted, not for one of this task that had not started yet
        env = step_environment(os.environ)
        res = slots(plan.pack_jobs, len(subs))
        gpu = [r for r in res if r is not None]
        # --force reruns done ones in the first attempt only: a requeued attempt leaves what
        # the earlier ones finished (else a preemption ran them all again from scratch)
        force = plan.force and not restarts
        self.pool = LocalBackend(exp, RunOptions(jobs=len(res), resources=gpu, retries=plan.retries, force=force))
        self.pool.exec_defaults = ExecOptions(backend=slurm.SlurmBackend.name, job_id=job_id, node=node, env=env)
        self.pool.skip = self._skip
        self.pool.stop.forwards = True  # USR1 is passed on: shell lists wait for their command (Stopper.prelude)
        self.pool.stop.ending = self._ending  # a step that ended as Slurm began ending this task
        self.watch: ContWatch | None = None
        self._ended = False  # Slurm said it is ending this task
        self.usr1 = False

    def run(self) -> list[JobState]:
        command = Command.of(self.exp)
        jobs = [Job(s, steps=command.render(s)) for s in self.subs]
        for job in jobs:
            job.read_status()
            job.fingerprint = self.plan.fingerprints.get(job.sub.id)  # execute refuses a changed one
        old = signal.signal(signal.SIGUSR1, self._on_usr1)
        self.watch = ContWatch() if self.job_id else None
        try:
            self.pool.submit(jobs)
            checked = time.monotonic()
            while self.pool.busy:
                self.pool.wait(MARK_CHECK_S)
                if time.monotonic() - checked >= MARK_CHECK_S:  # the pool wakes us at every job's start and end
                    checked = time.monotonic()
                    self._cancel_requested(jobs)
        finally:
            self.pool.close()
            signal.signal(signal.SIGUSR1, old)
            if self.watch is not None:
                self.watch.close()
        self._say_changed(jobs)
        if self.pool.interrupted:
            self._after_stop(jobs)
        if self.usr1:
            self._requeue(jobs)
        return [recorded_state(j.read_status()) for j in jobs]

    # -- mrl cancel of one sub-experiment ------------------------------------------------------
    def _skip(self, job: Job) -> str | None:
        if (job.sub.dir / slurm.CANCEL_MARK).exists():
            self._mark_cancelled(job)
            return "cancelled with mrl cancel"
        return None

    def _cancel_requested(self, jobs: list[Job]) -> None:
        asked = [j for j in jobs if j.state.active and (j.sub.dir / slurm.CANCEL_MARK).exists()]
        if asked:
            self.pool.cancel(asked)  # a queued one leaves the queue, a running one gets SIGTERM
            for j in asked:
                if j.state is JobState.PENDING:  # it never started
                    self._mark_cancelled(j)

    def _mark_cancelled(self, job: Job) -> None:
        status = job.read_status()
        if status is not None and status.state.active:
            job.status = status.cancelled(jsonio.now(), slurm_state="CANCELLED")
            job.sub.write_status(job.status)
        job.state = JobState.CANCELLED

    def _say_changed(self, jobs: list[Job]) -> None:
        """A sub-experiment that changed since it was submitted was not run: its record (if
        this submission's) says so, and why."""
        for j in jobs:
            if not j.changed:
                continue
            print(f"mrl: {j.name}: {j.message}", file=sys.stderr)
            status = j.read_status()
            if status is not None and status.state.active and status.job_id == self.job_id:
                j.sub.write_status(status.gave_up(f"not run: {j.message}", jsonio.now()))

    # -- signals -----------------------------------------------------------------------------
    def _on_usr1(self, signum: int, frame: Any) -> None:
        self.usr1 = True
        # what it interrupts is recorded `requeued`; with no requeue left, `failed` with the
        # reason, its attempt's start, duration and exit code kept
        self.pool.stop.forward(signal.SIGUSR1, final=None if self._may_requeue else self._usr1_final)

    @property
    def _may_requeue(self) -> bool:
        return bool(self.job_id and self.plan.requeue and self.restarts < self.plan.requeue)

    @property
    def _usr1_final(self) -> str:
        return (
            f"stopped by SIGUSR1 ahead of its time limit after {self.restarts} requeue(s), "
            f"the most run.slurm.requeue allows ({self.plan.requeue})"
        )

    def _ending(self) -> bool:
        """Whether Slurm is ending this task (a requeue, a preemption, scancel, a time limit),
        asked (by the pool thread) when a step ended: only once a SIGCONT came (`ContWatch`),
        then of Slurm, which sets the job's state (and counts the restart) before it signals
        any process. RUNNING: the SIGCONT was a resume, the step's exit is its own; no answer
        proves nothing either. Once Slurm said so, every step that ends later ended with it."""
        if self._ended:
            return True
        if self.watch is None or not self.watch.continued() or not self.job_id:
            return False
        if self.pool.stop.requested:  # Slurm's SIGTERM (or USR1) reached the task too: no need to ask
            self._ended = True  # (and the task has only KillWait seconds to write its records)
            return True
        info = slurm.show_job(self.job_id)  # asked after the watch is armed again: nothing is missed
        state = info.get("JobState", "RUNNING")
        self._ended = _restarts(info) > self.restarts or state not in ("RUNNING", "SUSPENDED")
        return self._ended

    def _after_stop(self, jobs: list[Job]) -> None:
        """A stop signal came: ask Slurm whether it is a requeue (or a time limit), and say so."""
        info = slurm.show_job(self.job_id) if self.job_id else {}
        requeued = _restarts(info) > self.restarts
        timeout = info.get("Reason") == "TimeLimit" or info.get("JobState") == "TIMEOUT"
        now = jsonio.now()
        for j in jobs:
            status = j.read_status()
            if status is not None and timeout and not requeued and status.packed and slurm.never_started(status):
                # the task's time limit, not this one's: it never started (a plain `mrl run` runs it)
                j.sub.write_status(
                    status.not_started(f"not started: its Slurm task {self.job_id} reached its time limit first")
                )
            if status is None or status.state is not JobState.CANCELLED:
                continue
            if (j.sub.dir / slurm.CANCEL_MARK).exists():  # `mrl cancel`: nothing for Slurm to add
                j.sub.write_status(status.cancelled(now, slurm_state="CANCELLED"))
            elif requeued:
                j.sub.write_status(status.requeued(now))
            elif timeout:
                j.sub.write_status(status.settled("TIMEOUT", JobState.TIMEOUT, status.node or "", now))

    def _requeue(self, jobs: list[Job]) -> None:
        """After USR1: requeue this task if some sub-experiment still has work, within the limit."""
        # the interrupted and the not yet started; one that failed by itself stays as it failed
        left = [j for j in jobs if recorded_state(j.read_status()).active]
        if not left:
            return
        if not self._may_requeue:
            # what it interrupted is failed already (execute, `Stopper.final`): these are the
            # ones it started nothing of
            why = self._usr1_final
            unstarted = f"its Slurm task {self.job_id} was {why}"
            now = jsonio.now()
            for j in left:
                j.sub.write_status(not_run(j.read_status() or Status(), why, unstarted, now))
            return
        print(
            f"mrl: requeueing {self.job_id} (requeue {self.restarts + 1} of {self.plan.requeue})",
            file=sys.stderr,
            flush=True,
        )
        assert self.job_id is not None  # _may_requeue
        slurm.requeue(self.job_id)  # the queued ones stay queued, the interrupted ones say `requeued`
        time.sleep(30)  # Slurm ends this task now; do not end it as if all were over
