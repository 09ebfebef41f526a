"""The Slurm backend: one `sbatch --array` per `mrl run`, states merged from the scheduler.

Submission writes a batch script into `EXPDIR/.mrl.slurm/` (kept for the user to read or
resubmit with plain `sbatch`), submits it held (`sbatch --parsable --hold`), marks the
selected sub-experiments `queued` with their job id `<array job>_<task>`, then releases
the job. Holding it first means no array task can start, and write `running`, before the
`queued` records exist; and a rejected submission leaves no record touched.

Each array task runs `python -m metarunlog.backends.task EXPDIR $SLURM_ARRAY_TASK_ID
--backend slurm` with the interpreter and PYTHONPATH of the `mrl` that submitted it, so `run.log`
and `.mrl.status` are written by the same code as with the local backend.

States: `.mrl.status` says what the task itself last wrote; `squeue -t all` (which also
answers for finished jobs until MinJobAge) and, for older jobs, `sacct` say what the
scheduler knows. A record that says queued/running whose job the scheduler no longer
knows is `stale`; a final scheduler state the task could not write itself (timeout, out
of memory, node failure, killed by `scancel`) is written into the record.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog import jsonio
from metarunlog.backends.base import Backend, RunOptions
from metarunlog.backends.task import task_command
from metarunlog.errors import MrlError
from metarunlog.locks import is_running
from metarunlog.records import Status
from metarunlog.states import JobState, recorded_state

if TYPE_CHECKING:
    from metarunlog.backends.base import Job
    from metarunlog.experiment import Experiment

SLURM_DIR = ".mrl.slurm"
SUBMISSIONS = "submissions.jsonl"
TIMEOUT_S = 60  # a Slurm client call that takes longer than this is an unreachable controller


class SlurmError(MrlError):
    """sbatch/squeue/scancel missing, a submission Slurm rejected, or an unreachable controller."""


# -- options -> #SBATCH lines --------------------------------------------------------------

# .mrl.cfg run.slurm key -> sbatch long option
_OPTION_NAMES = {
    "partition": "--partition",
    "time": "--time",
    "mem": "--mem",
    "cpus_per_task": "--cpus-per-task",
    "gpus": "--gpus",
    "account": "--account",
    "qos": "--qos",
}


@dataclass
class SlurmOptions:
    """What goes into the `#SBATCH` lines: `.mrl.cfg` run.slurm, then `--slurm-opt` (wins)."""

    values: dict[str, Any] = field(default_factory=dict)  # run.slurm keys of _OPTION_NAMES
    extra: list[str] = field(default_factory=list)  # free-form lines from run.slurm.extra
    cli: list[str] = field(default_factory=list)  # --slurm-opt, in order
    max_parallel: int | None = None

    @classmethod
    def from_config(
        cls, slurm_cfg: Mapping[str, Any], slurm_opts: Sequence[str] = (), max_parallel: int | None = None
    ) -> SlurmOptions:
        values = {k: slurm_cfg.get(k) for k in _OPTION_NAMES if slurm_cfg.get(k) not in (None, "")}
        mp = max_parallel if max_parallel is not None else slurm_cfg.get("max_parallel")
        if mp is not None and mp < 1:
            raise SlurmError(f"--max-parallel must be at least 1, not {mp}")
        return cls(values, [str(x) for x in slurm_cfg.get("extra") or []], list(slurm_opts), mp)

    def sbatch_lines(self) -> list[str]:
        lines = [f"#SBATCH {_OPTION_NAMES[k]}={v}" for k, v in self.values.items()]
        lines += [_sbatch_line(x) for x in self.extra]
        lines += [_sbatch_line(x) for x in self.cli]
        return lines


def _sbatch_line(option: str) -> str:
    option = option.strip()
    if option.startswith("#SBATCH"):
        return option
    if not option.startswith("-"):
        raise SlurmError(
            f"Slurm option {option!r} must start with '-' (like '--partition=gpu'): "
            "check run.slurm.extra in .mrl.cfg or --slurm-opt"
        )
    if "\n" in option:
        raise SlurmError(f"Slurm option {option!r} must be one line")
    return f"#SBATCH {option}"


def array_spec(ids: Iterable[int], max_parallel: int | None = None) -> str:
    """`[1, 2, 3, 5, 7, 8]` -> `1-3,5,7-8` (plus `%N` for a throttle)."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    spec = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)
    return f"{spec}%{max_parallel}" if max_parallel else spec


# -- the batch script ------------------------------------------------------------------------


def mrl_pythonpath() -> str:
    """PYTHONPATH for the array tasks: this mrl's package root first, then the caller's."""
    import metarunlog

    root = str(Path(metarunlog.__file__).resolve().parent.parent)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return os.pathsep.join([root, *rest])


def render_script(
    expdir: Path, name: str, ids: Sequence[int], opts: SlurmOptions, *, retries: int = 0
) -> str:
    """The batch script: #SBATCH lines, then one `python -m metarunlog.backends.task` per task."""
    out_dir = expdir / SLURM_DIR
    run = task_command(expdir, "$SLURM_ARRAY_TASK_ID", SlurmBackend.name, retries=retries)
    cmd = " ".join(a if a.startswith("$") else shlex.quote(a) for a in run)
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={shlex.quote('mrl-' + name)}",
        f"#SBATCH --array={array_spec(ids, opts.max_parallel)}",
        f"#SBATCH --output={shlex.quote(str(out_dir / 'slurm-%A_%a.out'))}",
        *opts.sbatch_lines(),
        f"# Written by mrl run on {jsonio.now()}. Each array task runs sub-experiment",
        "# $SLURM_ARRAY_TASK_ID with the mrl that submitted it; resubmit with `sbatch THIS_FILE`.",
        f"export PYTHONPATH={shlex.quote(mrl_pythonpath())}",
        f"cd {shlex.quote(str(expdir))}",
        f"exec {cmd}",
    ]
    return "\n".join(lines) + "\n"


def write_script(expdir: Path, text: str) -> Path:
    """A new `EXPDIR/.mrl.slurm/submit-NNN.sh` (never overwrites an earlier one)."""
    d = expdir / SLURM_DIR
    d.mkdir(exist_ok=True)
    n = 1 + max((int(p.stem[7:]) for p in d.glob("submit-*.sh") if p.stem[7:].isdigit()), default=0)
    while True:
        path = d / f"submit-{n:03d}.sh"
        try:
            with open(path, "x", encoding="utf-8") as f:  # "x": a concurrent mrl run takes the next
                f.write(text)
            return path
        except FileExistsError:
            n += 1




# -- Slurm's client commands --------------------------------------------------------------------


def _slurm(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a Slurm client; a missing one or a hung controller is a SlurmError."""
    if shutil.which(cmd[0]) is None:
        raise SlurmError(
            f"{cmd[0]} not found on PATH: run mrl on a machine with the Slurm client commands "
            "(a login node), or use --backend local"
        )
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{what}: {cmd[0]} got no answer in {TIMEOUT_S} s (is slurmctld up?)") from None


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """Slurm's own words: its stderr lines, joined."""
    text = (proc.stderr or proc.stdout or "").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines) or f"exit code {proc.returncode}"


def sbatch(script: Path, *, hold: bool = True) -> str:
    """Submit `script`; returns the job id. A rejection raises SlurmError with Slurm's message."""
    cmd = ["sbatch", "--parsable", *(["--hold"] if hold else []), str(script)]
    proc = _slurm(cmd, "submitting to Slurm")
    if proc.returncode != 0:
        msg = _message(proc)
        if "Invalid job array specification" in msg:
            msg += (" (array indices are sub-experiment ids: they must stay below the cluster's MaxArraySize, "
                    "see `scontrol show config | grep MaxArraySize`; run a selection such as 1-500)")
        raise SlurmError(f"Slurm rejected the submission ({script}): {msg}")
    job = proc.stdout.strip().splitlines()[-1].split(";")[0] if proc.stdout.strip() else ""
    if not job.isdigit():
        raise SlurmError(f"sbatch gave no job id for {script}: {proc.stdout.strip()!r}")
    return job


def release(job: str) -> None:
    proc = _slurm(["scontrol", "release", job], f"releasing Slurm job {job}")
    if proc.returncode != 0:
        raise SlurmError(f"could not release Slurm job {job}: {_message(proc)}")


def scancel(job_ids: Sequence[str]) -> None:
    """Cancel array tasks (`123_4`) or whole jobs; already finished ones are fine."""
    if not job_ids:
        return
    proc = _slurm(["scancel", *job_ids], "cancelling Slurm jobs")
    if proc.returncode != 0:
        msg = _message(proc)
        # A task that already finished is not an error for us: it is simply not running.
        if "already completed" not in msg and "Invalid job id" not in msg:
            raise SlurmError(f"scancel failed: {msg}")


# -- what the scheduler says ---------------------------------------------------------------------

# Slurm job states (squeue long names; sacct may add " by UID") -> ours
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "RESV_DEL_HOLD": JobState.QUEUED,
    "CONFIGURING": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "NODE_FAIL": JobState.NODE_FAIL,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "PREEMPTED": JobState.CANCELLED,
    "DEADLINE": JobState.TIMEOUT,
    "TIMEOUT": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OOM,
}
# Final states the task cannot write itself: Slurm killed it, or it never started.
_SCHEDULER_VERDICTS = frozenset({JobState.TIMEOUT, JobState.OOM, JobState.NODE_FAIL})


@dataclass
class TaskInfo:
    """One array task as the scheduler sees it."""

    job_id: str  # "<array job>_<task>"
    slurm_state: str  # e.g. "PENDING", "OUT_OF_MEMORY"
    reason: str = ""  # why it is pending ("Priority", "JobArrayTaskLimit", ...)
    node: str = ""

    @property
    def state(self) -> JobState:
        return SLURM_STATES.get(self.slurm_state.split()[0] if self.slurm_state else "", JobState.FAILED)


def _array_jobs(job_ids: Iterable[str]) -> list[str]:
    return sorted({j.split("_")[0] for j in job_ids if j}, key=lambda j: (len(j), j))


def squeue(job_ids: Iterable[str]) -> dict[str, TaskInfo]:
    """The tasks of these array jobs that the controller still knows, by `<job>_<task>`.

    `-t all` includes finished tasks (kept for MinJobAge); `-r` lists pending tasks one by
    one instead of `123_[4-9%2]`. Jobs the controller forgot are simply absent.
    """
    jobs = _array_jobs(job_ids)
    if not jobs:
        return {}
    fmt = "%i|%T|%r|%N"
    proc = _slurm(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(jobs), "-o", fmt], "asking Slurm")
    if proc.returncode != 0:
        msg = _message(proc)
        if "Invalid job id" not in msg:
            raise SlurmError(f"squeue failed: {msg}")
        if len(jobs) > 1:  # one forgotten job makes squeue refuse them all: ask one by one
            out: dict[str, TaskInfo] = {}
            for j in jobs:
                out.update(squeue([j]))
            return out
        return {}
    return _parse_rows(proc.stdout, 4, lambda f: TaskInfo(f[0], f[1], _reason(f[2]), f[3]))


def sacct(job_ids: Iterable[str]) -> dict[str, TaskInfo]:
    """What accounting remembers of these jobs; empty when accounting is off or fails."""
    jobs = _array_jobs(job_ids)
    if not jobs or shutil.which("sacct") is None:
        return {}
    try:
        proc = _slurm(
            ["sacct", "-n", "-P", "-X", "-j", ",".join(jobs), "-o", "JobID,State,NodeList"], "asking Slurm"
        )
    except SlurmError:
        return {}
    if proc.returncode != 0:
        return {}  # "accounting storage is disabled": squeue is all there is
    return _parse_rows(proc.stdout, 3, lambda f: TaskInfo(f[0], f[1], "", f[2]))


def _parse_rows(text: str, n: int, make: Any) -> dict[str, TaskInfo]:
    out = {}
    for line in text.splitlines():
        f = line.split("|")
        if len(f) == n and "_" in f[0] and "[" not in f[0]:
            info = make(f)
            out[info.job_id] = info
    return out


def _reason(r: str) -> str:
    return "" if r in ("None", "(null)") else r


def query(job_ids: Iterable[str]) -> dict[str, TaskInfo]:
    """squeue, then sacct for what squeue no longer knows."""
    job_ids = [j for j in job_ids if j]
    found = squeue(job_ids)
    missing = [j for j in job_ids if j not in found]
    if missing:
        found.update({k: v for k, v in sacct(missing).items() if k in missing})
    return found


# -- records + scheduler -> state ---------------------------------------------------------------


def merged_state(status: Status | None, info: TaskInfo | None) -> JobState:
    """What is true now, from the task's own record and what the scheduler says of its job.

    - the scheduler forgot an active record's job: `stale`;
    - the scheduler's final word the task could not write (timeout, oom, node failure)
      wins over the record; so does any final word while the record still says active
      (the task was killed: `scancel` -> cancelled, a crash -> failed);
    - a task that wrote `failed` is `running` until the scheduler has ended it (one that
      wrote `cancelled` stays so, until the scheduler says whether it was a timeout);
    - otherwise the record, with `queued` becoming `running` once the scheduler says so.
    """
    rec = recorded_state(status)
    if info is None:
        return JobState.STALE if rec.active else rec
    sched = info.state
    if sched.finished:
        if sched in _SCHEDULER_VERDICTS and rec not in (JobState.DONE,):
            return sched
        if rec.active:
            return JobState.STALE if sched is JobState.DONE else sched
        return rec
    if rec is JobState.FAILED:
        return JobState.RUNNING  # Slurm is still ending it, and may yet say why (out of memory)
    if rec.finished:
        return rec  # done: Slurm is only cleaning up (COMPLETING)
    return JobState.RUNNING if JobState.RUNNING in (rec, sched) else JobState.QUEUED




# -- the backend ---------------------------------------------------------------------------------


@dataclass
class Submission:
    """One `sbatch --array` call: its job id, the script kept in EXPDIR/.mrl.slurm, the ids."""

    job: str
    script: Path
    ids: list[int]

    def task_id(self, sub_id: int) -> str:
        return f"{self.job}_{sub_id}"


def needs_scheduler(status: Status | None) -> bool:
    """A Slurm record whose truth may differ from what it says: active, or ended by a
    signal whose cause (timeout, scancel, node failure) only the scheduler knows."""
    if status is None or status.backend != SlurmBackend.name or not status.job_id:
        return False
    state = status.state
    return state.active or (state in (JobState.FAILED, JobState.CANCELLED) and status.slurm_state is None)


@dataclass
class SlurmRunOptions:
    """The `mrl run` options of the Slurm backend (see its entry in backends/registry.py)."""

    slurm_opts: list[str] = field(default_factory=list)  # --slurm-opt, in order
    max_parallel: int | None = None  # --max-parallel: the %N throttle
    wait: bool = False  # --wait: stay until the jobs end, like a local run


class SlurmBackend(Backend):
    """Sub-experiments of one experiment as the tasks of Slurm job arrays.

    `submit` queues and returns (`waits` is False, so `mrl run` returns once submitted,
    unless `--wait`); `poll` merges records with the scheduler; `cancel` runs `scancel`.
    """

    name = "slurm"
    query_interval = 1.0  # seconds between two scheduler queries while waiting

    @classmethod
    def run_options(cls, values: Mapping[str, Any], block: Mapping[str, Any]) -> SlurmRunOptions:
        return SlurmRunOptions(list(values.get("slurm_opt") or []), values.get("max_parallel"),
                               bool(values.get("wait")))

    @staticmethod
    def unsettled(status: Status | None) -> bool:
        """A finished record only the scheduler can settle: did Slurm end it, and why?"""
        return needs_scheduler(status) and not recorded_state(status).active

    @staticmethod
    def task_ids() -> tuple[str | None, str | None]:
        """`<array job>_<task>` (else the job id) and SLURMD_NODENAME of the task running now."""
        job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        job_id = f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID")
        return job_id, os.environ.get("SLURMD_NODENAME")

    def __init__(self, exp: Experiment, options: RunOptions | None = None) -> None:
        super().__init__(exp, options)
        mine = self.own_options(SlurmRunOptions)
        slurm_cfg = exp.cfg["run"].get(self.name) or {}
        self.opts = SlurmOptions.from_config(slurm_cfg, mine.slurm_opts, mine.max_parallel)
        self.retries = self.options.retries
        self.fail_fast = self.options.fail_fast
        self.waits = mine.wait  # by default `mrl run` returns once the jobs are queued
        self.submissions: list[Submission] = []
        self._infos: dict[str, TaskInfo] = {}
        self._asked = -1e9  # monotonic time of the last scheduler query

    # -- submit ------------------------------------------------------------------------------
    def submit(self, jobs: Sequence[Job]) -> None:
        """One held `sbatch --array`, then `queued` records, then release: all or nothing.

        A job another runner holds (its `.mrl.lock`) is skipped, as with the local backend.
        """
        todo = []
        for job in jobs:
            if is_running(job.sub.dir):
                job.skipped, job.message = True, f"sub-experiment {job.sub.dir} is being run by another process"
            else:
                todo.append(job)
        if not todo:
            return
        ids = [j.sub.id for j in todo]
        text = render_script(self.exp.dir, self.exp.name, ids, self.opts, retries=self.retries)
        script = write_script(self.exp.dir, text)
        sub = Submission(sbatch(script, hold=True), script, ids)
        old = {j.sub.id: j.sub.read_status() for j in todo}
        try:
            now = jsonio.now()
            for j in todo:
                j.status = (old[j.sub.id] or Status()).queued(self.name, sub.task_id(j.sub.id), now)
                j.sub.write_status(j.status)
                j.job_id, j.state = sub.task_id(j.sub.id), JobState.QUEUED
            release(sub.job)
        except BaseException:
            self._undo(sub, todo, old)
            raise
        self.submissions.append(sub)
        self._log_submission(sub)

    def _undo(self, sub: Submission, jobs: Sequence[Job], old: dict[int, Status | None]) -> None:
        """A submission that could not be completed: cancel the held job, restore the records."""
        import contextlib

        with contextlib.suppress(SlurmError):
            scancel([sub.job])
        for j in jobs:
            prev = old[j.sub.id]
            if prev is None:
                with contextlib.suppress(FileNotFoundError):
                    j.sub.status_path.unlink()
            else:
                j.sub.write_status(prev)
            j.status, j.job_id, j.state = prev, None, recorded_state(prev)

    @property
    def note(self) -> str:
        """What `mrl run` prints after submitting: the job id(s) and the script."""
        if not self.submissions:
            return ""
        jobs = ", ".join(s.job for s in self.submissions)
        return f"as Slurm job {jobs} (script: {self.submissions[-1].script})"

    def _log_submission(self, sub: Submission) -> None:
        import json

        line = {"jobId": sub.job, "script": sub.script.name, "array": array_spec(sub.ids), "submitted": jsonio.now()}
        with open(self.exp.dir / SLURM_DIR / SUBMISSIONS, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    # -- poll --------------------------------------------------------------------------------
    def poll(self, jobs: Sequence[Job]) -> list[JobState]:
        """Each job's state: its `.mrl.status` merged with squeue (and sacct).

        A final scheduler state that changes the record (timeout, a task killed behind
        mrl's back) is written into `.mrl.status`, so it outlives the scheduler's memory of
        the job; `stale` is never written. The scheduler is asked at most once a
        `query_interval` (the records are read every time).
        """
        statuses = [j.read_status() for j in jobs]
        ask = [s.job_id for s in statuses if s is not None and s.job_id and needs_scheduler(s)]
        if ask and (time.monotonic() - self._asked >= self.query_interval or any(a not in self._infos for a in ask)):
            self._asked = time.monotonic()
            self._infos = query(ask)
        for job, rec in zip(jobs, statuses, strict=True):
            self._observe(job, rec)
        if self.fail_fast and not self.halted and any(j.state is JobState.FAILED for j in jobs):
            self.halted = True  # like the local pool: nothing new starts after a failure
            self.cancel([j for j in jobs if j.state is JobState.QUEUED])
        return [j.state for j in jobs]

    def _observe(self, job: Job, rec: Status | None) -> None:
        if rec is None or not needs_scheduler(rec):
            job.state = recorded_state(rec)
            return
        job.job_id = rec.job_id
        info = self._infos.get(rec.job_id or "")
        job.state = merged_state(rec, info)
        job.message = _explain(job.state, rec.state, info)
        if info is not None and info.state.finished:
            job.status = _with_verdict(rec, job.state, info)
            if job.status != rec:
                job.sub.write_status(job.status)

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, jobs: Sequence[Job]) -> None:
        """`scancel` the array tasks of the queued/running ones; mark them cancelled."""
        targets = [j for j in jobs if needs_scheduler(j.read_status()) and recorded_state(j.status).active]
        scancel([j.status.job_id for j in targets if j.status is not None and j.status.job_id])
        now = jsonio.now()
        for j in targets:
            cur = j.read_status()
            if cur is not None and cur.state in (JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED):
                # we know why it ended: nothing for the scheduler to settle (slurmState)
                j.status = cur.cancelled(now, slurm_state="CANCELLED")
                j.sub.write_status(j.status)
            j.state, j.message = recorded_state(j.status), ""

    def wait(self, timeout: float) -> None:
        time.sleep(max(timeout, 0.1))


def _explain(state: JobState, recorded: JobState, info: TaskInfo | None) -> str:
    """What the scheduler adds to the record: why it waits, or why it ended when the task
    could not say so itself."""
    if state is JobState.STALE:
        return "Slurm no longer knows its job"
    if info is None:
        return ""
    if state is JobState.QUEUED:
        return f"pending in Slurm ({info.reason})" if info.reason else "pending in Slurm"
    if state.finished and info.state.finished and state is not recorded:
        job, _, task = info.job_id.partition("_")
        return f"Slurm: {info.slurm_state} (its output: {SLURM_DIR}/slurm-{job}_{task}.out)"
    return ""


def _with_verdict(rec: Status, state: JobState, info: TaskInfo) -> Status:
    """The record with the scheduler's final word (and the state it implies) written in."""
    changed = state if state is not rec.state and state is not JobState.STALE else None
    return rec.settled(info.slurm_state.split()[0], changed, info.node, jsonio.now())
