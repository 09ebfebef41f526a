"""The Slurm backend: job arrays per `mrl run`, states merged from the scheduler.

Submission groups the selected sub-experiments by their rendered `#SBATCH` options (any
`run.slurm` string and `--slurm-opt` may be Jinja over the params), packs each group's
ids `run.slurm.pack` per task, and splits the tasks into arrays below the cluster's
MaxArraySize and SchedulerParameters' max_array_tasks (asked once per submission) and
`run.slurm.array_limit`. Each array is a
script plus its plan in `EXPDIR/.mrl.slurm/` (`submit-NNN.sh`, `submit-NNN.json`: task
index -> sub-experiment ids, so indices never depend on ids), submitted held (`sbatch
--parsable --hold`); then the selected sub-experiments are marked `queued` with their
task's id `<array job>_<index>`, run.after is submitted depending on every array, the
submission claims the experiment (`EXPDIR/.mrl.owners/`), and the arrays are released.
Holding them first means no task can start, and write `running`, before the `queued`
records exist; a failure anywhere undoes all of it.

Each array task runs `python -m metarunlog.backends.task EXPDIR $SLURM_ARRAY_TASK_ID
--backend slurm --plan PLAN` with the interpreter and PYTHONPATH of the `mrl` that
submitted it (`backends/slurm_task.py`), so `run.log` and `.mrl.status` are written by the
same code as with the local backend.

States: `.mrl.status` says what the task itself last wrote; `squeue -t all` (which also
answers for finished jobs until MinJobAge) and, for older jobs, `sacct` say what the
scheduler knows. A record that says queued/running whose job the scheduler no longer
knows is `stale`; a final scheduler state the task could not write itself (timeout, out
of memory, node failure, killed by `scancel`) is written into the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog import after, jsonio, render
from metarunlog.backends.base import Backend, RunOptions
from metarunlog.backends.task import task_command
from metarunlog.errors import MrlError
from metarunlog.locks import is_running
from metarunlog.ownership import OWNERS
from metarunlog.records import Status
from metarunlog.states import JobState, recorded_state

if TYPE_CHECKING:
    from metarunlog.backends.base import FollowUp, Job
    from metarunlog.experiment import Experiment, SubExperiment
    from metarunlog.ownership import Claim

SLURM_DIR = ".mrl.slurm"
SUBMISSIONS = "submissions.jsonl"
TIMEOUT_S = 60  # a Slurm client call that takes longer than this is an unreachable controller
WAIT_QUERY_TIMEOUT_S = 8.0  # ... a query of `mrl run --wait` (which asks again, with backoff)
# ... a query of a command that reads once (status, table, info, analyze, cancel): past it,
# the records are shown as last written, said so (run.slurm.query_timeout); squeue's own
# give-up on a controller that is down takes ~20 s
QUERY_TIMEOUT_S = 5.0
REQUEUED_NOTE = "requeued after attempt"  # `mrl status`'s note on a requeued one waiting to run again
AFTER_CANCEL_WAIT_S = 10.0  # how long `mrl cancel` waits for Slurm to end a running run.after job


class SlurmError(MrlError):
    """sbatch/squeue/scancel missing, a submission Slurm rejected, or an unreachable controller."""


class SlurmTimeout(SlurmError):
    """A Slurm client got no answer in time (it may still have done its work: sbatch)."""


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
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize (largest index 1000)


@dataclass
class SlurmOptions:
    """What goes into the `#SBATCH` lines: `.mrl.cfg` run.slurm, then `--slurm-opt` (wins).

    Any string value may be Jinja over the params (`"mem": "{{ '64G' if size == 'xl'
    else '16G' }}"`): `lines_for(variables)` renders them per sub-experiment, and the
    sub-experiments with the same lines become one array.
    """

    values: dict[str, Any] = field(default_factory=dict)  # run.slurm keys of _OPTION_NAMES
    extra: list[str] = field(default_factory=list)  # free-form lines from run.slurm.extra
    cli: list[str] = field(default_factory=list)  # --slurm-opt, in order
    max_parallel: int | None = None
    where: str = ".mrl.cfg"  # the config file, for messages

    @classmethod
    def from_config(
        cls,
        slurm_cfg: Mapping[str, Any],
        slurm_opts: Sequence[str] = (),
        max_parallel: int | None = None,
        where: str = ".mrl.cfg",
    ) -> SlurmOptions:
        values = {k: slurm_cfg.get(k) for k in _OPTION_NAMES if slurm_cfg.get(k) not in (None, "")}
        mp = max_parallel if max_parallel is not None else slurm_cfg.get("max_parallel")
        if mp is not None and mp < 1:
            raise SlurmError(f"--max-parallel must be at least 1, not {mp}")
        return cls(values, [str(x) for x in slurm_cfg.get("extra") or []], list(slurm_opts), mp, where)

    def _raw(self) -> list[tuple[str, str]]:
        """(what it is, the option text before rendering), in #SBATCH order."""
        out = [(f"run.slurm.{k} in {self.where}", f"{_OPTION_NAMES[k]}={v}") for k, v in self.values.items()]
        out += [(f"run.slurm.extra in {self.where}", x) for x in self.extra]
        return out + [("--slurm-opt", x) for x in self.cli]

    @cached_property
    def _compiled(self) -> list[tuple[str, Any]]:
        return [
            (where, render.string_template(text, where) if render.is_template(text) else text)
            for where, text in self._raw()
        ]

    @property
    def templated(self) -> bool:
        """True when some option depends on the params (the subs may form several groups)."""
        return any(not isinstance(t, str) for _, t in self._compiled)

    def lines_for(self, variables: Mapping[str, Any] | None = None, sub: str = "") -> tuple[str, ...]:
        """The `#SBATCH` lines, rendered with `variables` (a sub-experiment's)."""
        out = []
        for _, t in self._compiled:
            text = t if isinstance(t, str) else t.render(variables or {}, sub=sub)
            if text.endswith("="):  # a value that rendered empty: the option is not given
                continue
            out.append(_sbatch_line(text))
        return tuple(out)

    def sbatch_lines(self) -> list[str]:
        """The lines when no option is a template (the common case)."""
        return list(self.lines_for())


def _sbatch_line(option: str) -> str:
    option = option.strip()
    if "\n" in option or "\r" in option:
        raise SlurmError(f"Slurm option {option!r} must be one line")
    _not_mrls_own(option)
    if option.startswith("#SBATCH"):
        return option  # a whole line, written as the user wants it
    if not option.startswith("-"):
        raise SlurmError(
            f"Slurm option {option!r} must start with '-' (like '--partition=gpu'): "
            "check run.slurm.extra in .mrl.cfg or --slurm-opt"
        )
    name, eq, value = option.partition("=")
    # `--comment=a b` is one value, as it would be as one argument of sbatch
    return f"#SBATCH {name}={sbatch_quote(value)}" if eq else f"#SBATCH {option}"


def _not_mrls_own(option: str) -> None:
    """`--array` is mrl's: its indices are positions in the submission's plan, so another
    range (a later #SBATCH line wins) would run tasks the plan lacks and leave some
    sub-experiments queued for tasks that never exist. `--wait` is mrl's too."""
    words = option.removeprefix("#SBATCH").split()
    name = words[0].split("=")[0] if words else ""
    # getopt takes any unambiguous abbreviation (`--arr=0-3`) and `-a3`
    if (name.startswith("--ar") and "--array".startswith(name)) or name.startswith("-a"):
        raise SlurmError(
            f"Slurm option {option!r} is mrl's own (array indices are positions in its plan): "
            "use --max-parallel N to limit the tasks at once, --pack K for fewer tasks"
        )
    if name == "--wait" or name.startswith("-W"):  # sbatch would wait for a job mrl holds until it returns
        raise SlurmError(f"Slurm option {option!r} would make sbatch wait forever: use mrl run --wait")


def sbatch_quote(value: str) -> str:
    """`value` as one word of an `#SBATCH` line. sbatch splits those lines itself (not a
    shell): whitespace ends a word unless quoted, quotes group, a backslash escapes the
    next character even inside quotes (so shlex.quote's `'a\\b'` loses its backslash)."""
    if value and not any(c.isspace() or c in "\"'\\" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def output_option(directory: Path, name: str) -> tuple[str, list[str]]:
    """(the `#SBATCH --output` line, lines that start the body) for Slurm's output of a
    job as `directory/name` (`name` has Slurm's %A, %a or %j). Slurm expands `%` in the
    whole path (`%%` is a `%`); a path with a backslash gets no expansion at all and loses
    its backslashes, and a newline would end the #SBATCH line: then the script sends its
    own output there instead."""
    path = str(directory)
    if "\\" not in path and "\n" not in path and "\r" not in path:
        return f"#SBATCH --output={sbatch_quote(path.replace('%', '%%') + '/' + name)}", []
    ids = {"%A": "${SLURM_ARRAY_JOB_ID}", "%a": "${SLURM_ARRAY_TASK_ID}", "%j": "${SLURM_JOB_ID}"}
    shell_name = name
    for k, v in ids.items():
        shell_name = shell_name.replace(k, v)
    return "#SBATCH --output=/dev/null", [f'exec >>{shlex.quote(path)}/"{shell_name}" 2>&1']


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


# -- the plan of one array: which sub-experiments each task runs -------------------------------


@dataclass
class TaskPlan:
    """`EXPDIR/.mrl.slurm/submit-NNN.json`, read by each task of the array `submit-NNN.sh`:
    task `i` (`$SLURM_ARRAY_TASK_ID`) runs the sub-experiments `tasks[i]`, in order, with
    `pack_jobs` at once. Array indices are positions in this list, never sub-experiment
    ids, so any id can be submitted whatever the cluster's MaxArraySize."""

    tasks: list[list[int]]
    retries: int = 0
    force: bool = False
    pack_jobs: int | None = None  # workers inside a packed task (None: one per GPU, else per CPU)
    requeue: int = 0  # run.slurm.requeue: how many requeues a task may ask for
    fingerprints: dict[int, str] = field(default_factory=dict)  # sub id -> what was planned

    @property
    def ids(self) -> list[int]:
        return [i for task in self.tasks for i in task]

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "retries": self.retries,
            "force": self.force,
            "packJobs": self.pack_jobs,
            "requeue": self.requeue,
            "fingerprints": {str(k): v for k, v in self.fingerprints.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskPlan:
        fps = data.get("fingerprints") or {}
        return cls(
            [[int(i) for i in t] for t in data["tasks"]],
            int(data.get("retries") or 0),
            bool(data.get("force")),
            data.get("packJobs"),
            int(data.get("requeue") or 0),
            {int(k): str(v) for k, v in fps.items()},
        )

    @classmethod
    def read(cls, path: Path) -> TaskPlan:
        try:
            return cls.from_json(jsonio.read_json(path))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MrlError(f"cannot read the submission's plan {path}: {e}") from e


@dataclass
class ArrayPlan:
    """One array to submit: its `#SBATCH` option lines and its tasks."""

    lines: tuple[str, ...]
    tasks: list[list[int]]
    after: str | None = None  # the job it waits for (a throttle spread over several arrays)

    @property
    def ids(self) -> list[int]:
        return [i for task in self.tasks for i in task]


def plan_arrays(groups: Sequence[tuple[tuple[str, ...], list[int]]], pack: int, limit: int) -> list[ArrayPlan]:
    """Each group (its lines, its ids): tasks of `pack` ids, in arrays of at most `limit` tasks."""
    arrays = []
    for lines, ids in groups:
        tasks = [ids[k : k + pack] for k in range(0, len(ids), pack)]
        arrays += [ArrayPlan(lines, tasks[k : k + limit]) for k in range(0, len(tasks), limit)]
    return arrays


# -- the batch scripts ------------------------------------------------------------------------


@dataclass
class ScriptHead:
    """What every script of one submission has in common."""

    expdir: Path
    name: str  # the experiment's name: the job name is mrl-<name>
    max_parallel: int | None = None
    requeue: int = 0
    signal_before: int = 120


def render_script(head: ScriptHead, array: ArrayPlan, plan_path: Path) -> str:
    """The batch script: #SBATCH lines, then the task entry with the array index."""
    out_dir = head.expdir / SLURM_DIR
    run = task_command(head.expdir, "$SLURM_ARRAY_TASK_ID", SlurmBackend.name, plan=plan_path)
    cmd = " ".join(a if a.startswith("$") else shlex.quote(a) for a in run)
    requeue = ["#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{head.signal_before}"] if head.requeue else []
    output, redirect = output_option(out_dir, "slurm-%A_%a.out")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={sbatch_quote('mrl-' + head.name)}",
        f"#SBATCH --array={array_spec(range(len(array.tasks)), head.max_parallel)}",
        output,
        *requeue,
        *array.lines,
        f"# Written by mrl run on {jsonio.now()}. Array task N runs the sub-experiments of",
        f"# task N in {plan_path.name} ({_ids_summary(array)}); resubmit with `sbatch THIS_FILE`.",
        *redirect,
        *_environment_lines(),
        f"cd {shlex.quote(str(head.expdir))}",
        f"exec {cmd}",
    ]
    return "\n".join(lines) + "\n"


PYTHONPATH_WAS = "MRL_PYTHONPATH_WAS"  # the submitter's PYTHONPATH ("set:..."; "" when unset), for the steps


def _environment_lines() -> list[str]:
    """The same mrl as the submitting one: its interpreter and code. The task gives its
    steps the submitter's own PYTHONPATH back (`slurm_task.step_environment`), as a local
    run does: mrl's code root there would shadow the packages of the step's own Python."""
    return [
        f'export {PYTHONPATH_WAS}="${{PYTHONPATH+set:$PYTHONPATH}}"',
        f"export PYTHONPATH={shlex.quote(after.mrl_pythonpath())}",
    ]


def _ids_summary(array: ArrayPlan) -> str:
    ids = array.ids
    per = f", {len(array.tasks[0])} per task" if len(array.tasks[0]) > 1 else ""
    return f"{len(ids)} sub-experiment(s): {_short(array_spec(ids))}{per}"


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def render_after_script(head: ScriptHead, steps: Sequence[str], lines: Sequence[str], record: Path) -> str:
    """The `run.after` job: its steps in order in EXPDIR, `mrl` being the submitting mrl;
    `record` (`after-NNN.json`) says how they went (`after.recorded_script`)."""
    output, redirect = output_option(head.expdir / SLURM_DIR, "after-%j.out")
    body = [
        "#!/bin/bash",
        f"#SBATCH --job-name={sbatch_quote('mrl-' + head.name + '-after')}",
        output,
        *lines,
        f"# Written by mrl run on {jsonio.now()}: run.after, once every array of that run ended.",
        *redirect,
        *after.recorded_script(head.expdir, steps, record),
    ]
    return "\n".join(body) + "\n"


def reserve_number(expdir: Path) -> int:
    """The next free NNN of `EXPDIR/.mrl.slurm/submit-NNN.sh`, taken (never reused)."""
    d = expdir / SLURM_DIR
    d.mkdir(exist_ok=True)
    n = 1 + max((int(p.stem[7:]) for p in d.glob("submit-*.sh") if p.stem[7:].isdigit()), default=0)
    while True:
        try:
            with open(d / f"submit-{n:03d}.sh", "x", encoding="utf-8"):  # "x": a concurrent mrl run takes the next
                return n
        except FileExistsError:
            n += 1


def write_script(expdir: Path, text: str) -> Path:
    """A new `EXPDIR/.mrl.slurm/submit-NNN.sh` (never overwrites an earlier one)."""
    path = expdir / SLURM_DIR / f"submit-{reserve_number(expdir):03d}.sh"
    path.write_text(text, encoding="utf-8")
    return path


# -- Slurm's client commands --------------------------------------------------------------------


def _slurm(cmd: list[str], what: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a Slurm client; a missing one or a hung controller is a SlurmError (the client's
    time: `timeout`, else TIMEOUT_S)."""
    timeout = TIMEOUT_S if timeout is None else timeout
    if shutil.which(cmd[0]) is None:
        raise SlurmError(
            f"{cmd[0]} not found on PATH: run mrl on a machine with the Slurm client commands "
            "(a login node), or use --backend local"
        )
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmTimeout(f"{what}: {cmd[0]} got no answer in {timeout:g} s (is slurmctld up?)") from None


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """Slurm's own words: its stderr lines, joined."""
    text = (proc.stderr or proc.stdout or "").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines) or f"exit code {proc.returncode}"


def sbatch(script: Path, *, hold: bool = True, after: Sequence[str] = (), warnings: list[str] | None = None) -> str:
    """Submit `script` (held; after the jobs `after` ended); returns the job id. A rejection
    raises SlurmError with Slurm's message.

    sbatch that gets no answer in time may still have submitted (the controller took the
    job, its reply was late): the job is then looked for by its script, a path no other
    submission has (`submit-NNN.sh` numbers are reserved), and, found, is this submission
    (a line added to `warnings` says so); else the error says how to find and cancel it."""
    dep = [f"--dependency=afterany:{':'.join(after)}"] if after else []
    cmd = ["sbatch", "--parsable", *(["--hold"] if hold else []), *dep, str(script)]
    try:
        proc = _slurm(cmd, "submitting to Slurm")
    except SlurmTimeout as e:
        job = _submitted_late(script, e)
        if warnings is not None:
            warnings.append(f"{e}, but it had submitted {script.name} as job {job} (found by its script): going on")
        return job
    if proc.returncode != 0:
        raise SlurmError(f"Slurm rejected the submission ({script}): {_message(proc)}{_hint(_message(proc))}")
    job = proc.stdout.strip().splitlines()[-1].split(";")[0] if proc.stdout.strip() else ""
    if not job.isdigit():
        raise SlurmError(f"sbatch gave no job id for {script}: {proc.stdout.strip()!r}")
    return job


LATE_LOOKUP_TIMEOUT_S = 30.0  # squeue after a timed-out sbatch: the controller is slow already


def _submitted_late(script: Path, timeout: SlurmTimeout) -> str:
    """The job a timed-out sbatch submitted after all: the one of ours whose command is
    `script`. None found (or Slurm cannot be asked) raises SlurmError saying what to do."""
    look = f"`squeue -u $USER -o '%A %o'` lists it with {script}: cancel it with `scancel JOBID`"
    try:
        # -u UID, not --me (Slurm 20.11+): the same jobs, on older clusters too
        proc = _slurm(["squeue", "-u", str(os.getuid()), "-h", "-o", "%A|%o"], "asking Slurm", LATE_LOOKUP_TIMEOUT_S)
    except SlurmError as e:
        raise SlurmError(f"{timeout}; whether Slurm took the job cannot be asked ({e}): if it did, {look}") from None
    if proc.returncode != 0:
        raise SlurmError(f"{timeout}; whether Slurm took the job cannot be asked ({_message(proc)}): if it did, {look}")
    jobs = {job for line in proc.stdout.splitlines() for job, _, cmd in [line.partition("|")] if cmd == str(script)}
    if len(jobs) != 1:  # none: it did not submit; several: someone resubmitted the script by hand
        none = f"Slurm shows no job running {script.name} (should one appear later, {look})"
        raise SlurmError(f"{timeout}; {none}" if not jobs else f"{timeout}; {look}")
    return jobs.pop()


def _hint(msg: str) -> str:
    if "MaxSubmit" in msg or "Job violates accounting/QOS policy" in msg:
        return (
            " (the cluster limits how many jobs you may have queued, and each array task counts as one: "
            "run several sub-experiments per array task with --pack K, or submit a selection at a time; "
            "nothing of this run was left queued)"
        )
    if "Invalid job array specification" in msg:
        return (
            " (set run.slurm.array_limit to the largest array this cluster accepts; where it is a limit "
            "on the jobs you may have queued, each array task counts as one: use --pack K)"
        )
    return ""


def max_array_size() -> int:
    """How many tasks an array may have on this cluster (`scontrol show config`): its
    MaxArraySize (an array's indices stay below it; 0: arrays disabled), or fewer where
    SchedulerParameters has `max_array_tasks=N` (a site's limit on the tasks of one array)."""
    proc = _slurm(["scontrol", "show", "config"], "asking Slurm for its configuration")
    if proc.returncode != 0:
        raise SlurmError(f"could not read the Slurm configuration: {_message(proc)}")
    size, tasks = DEFAULT_MAX_ARRAY_SIZE, 0
    for line in proc.stdout.splitlines():
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "MaxArraySize" and value.isdigit():
            size = int(value)
        elif key == "SchedulerParameters":
            tasks = _max_array_tasks(value)
    return min(size, tasks) if size > 0 and tasks > 0 else size


def _max_array_tasks(scheduler_parameters: str) -> int:
    """`max_array_tasks=N` of SchedulerParameters (`a=1,max_array_tasks=N,...`), 0 if unset."""
    for item in scheduler_parameters.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "max_array_tasks" and value.strip().isdigit():
            return int(value.strip())
    return 0


def release(jobs: str | Sequence[str]) -> None:
    jobs = [jobs] if isinstance(jobs, str) else list(jobs)
    proc = _slurm(["scontrol", "release", ",".join(jobs)], f"releasing Slurm job {', '.join(jobs)}")
    if proc.returncode != 0:
        raise SlurmError(f"could not release Slurm job {', '.join(jobs)}: {_message(proc)}")


def show_job(job_id: str) -> dict[str, str]:
    """`scontrol show job` of one job (or array task) as key=value pairs ({} when unknown)."""
    try:
        proc = _slurm(["scontrol", "-o", "show", "job", job_id], "asking Slurm")
    except SlurmError:
        return {}
    if proc.returncode != 0:
        return {}
    return _job_fields(proc.stdout)


def _job_fields(text: str) -> dict[str, str]:
    """`scontrol -o show job`'s key=value words (the first of a key wins)."""
    out: dict[str, str] = {}
    for word in text.split():
        key, eq, value = word.partition("=")
        if eq and key not in out:
            out[key] = value
    return out


def requeue(job_id: str) -> None:
    """`scontrol requeue`: back to the queue, where Slurm starts it again."""
    proc = _slurm(["scontrol", "requeue", job_id], f"requeueing Slurm job {job_id}")
    if proc.returncode != 0:
        raise SlurmError(f"could not requeue Slurm job {job_id}: {_message(proc)}")


def scancel(job_ids: Sequence[str]) -> None:
    """Cancel array tasks (`123_4`) or whole jobs; already finished ones are fine."""
    job_ids = _job_ids(job_ids)
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
    script: str = ""  # the batch script it runs (squeue's %o; "" when unknown: sacct)
    # runs_for's answers, for as long as this answer of the scheduler is used (a packed
    # task's 100 sub-experiments asked it 100 times, two stats each)
    _runs: dict[Path, bool | None] = field(default_factory=dict, repr=False, compare=False)

    def runs_for(self, expdir: Path) -> bool | None:
        """Whether the task runs `expdir`'s script (`EXPDIR/.mrl.slurm/submit-NNN.sh`): a
        copy of a submitted experiment (`cp -a`) holds records naming the original's tasks.
        None when unknowable (no script known, or its folder is gone: moved since)."""
        if expdir not in self._runs:
            self._runs[expdir] = self._runs_for(expdir)
        return self._runs[expdir]

    def _runs_for(self, expdir: Path) -> bool | None:
        script = Path(self.script)
        # only a whole script path of mrl's (a path with a newline reaches us cut)
        if not self.script or script.parent.name != SLURM_DIR or not re.fullmatch(r"submit-\d+\.sh", script.name):
            return None
        try:
            return os.path.samefile(script.parent.parent, expdir)
        except OSError:
            return None

    @property
    def state(self) -> JobState:
        return SLURM_STATES.get(self.slurm_state.split()[0] if self.slurm_state else "", JobState.FAILED)


# A job id as sbatch gives it (`123`) or an array task (`123_4`). Records are read from disk:
# anything else (`"jobId": "--user=root"`) would reach squeue/scancel as an option.
JOB_ID = re.compile(r"\d+(?:_\d+)?", re.ASCII)


def _job_ids(job_ids: Iterable[str]) -> list[str]:
    return [j for j in job_ids if j and JOB_ID.fullmatch(j)]


def _array_jobs(job_ids: Iterable[str]) -> list[str]:
    return sorted({j.split("_")[0] for j in _job_ids(job_ids)}, key=lambda j: (len(j), j))


def squeue(job_ids: Iterable[str], timeout: float = TIMEOUT_S) -> dict[str, TaskInfo]:
    """The tasks of these array jobs that the controller still knows, by `<job>_<task>`.

    `-t all` includes finished tasks (kept for MinJobAge); `-r` lists pending tasks one by
    one instead of `123_[4-9%2]`. Jobs the controller forgot are simply absent.
    """
    jobs = _array_jobs(job_ids)
    if not jobs:
        return {}
    fmt = "%i|%T|%r|%N|%o"  # the script last: a path may hold a '|'
    proc = _slurm(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(jobs), "-o", fmt], "asking Slurm", timeout)
    if proc.returncode != 0:
        msg = _message(proc)
        if "Invalid job id" not in msg:
            raise SlurmError(f"squeue failed: {msg}")
        if len(jobs) > 1:  # one forgotten job makes squeue refuse them all: ask one by one
            out: dict[str, TaskInfo] = {}
            for j in jobs:
                out.update(squeue([j], timeout))
            return out
        return {}
    return _parse_rows(proc.stdout, 5, lambda f: TaskInfo(f[0], f[1], _reason(f[2]), f[3], f[4]))


def sacct(job_ids: Iterable[str]) -> dict[str, TaskInfo]:
    """What accounting remembers of these jobs; empty when accounting is off or fails."""
    jobs = _array_jobs(job_ids)
    if not jobs or shutil.which("sacct") is None:
        return {}
    try:
        proc = _slurm(["sacct", "-n", "-P", "-X", "-j", ",".join(jobs), "-o", "JobID,State,NodeList"], "asking Slurm")
    except SlurmError:
        return {}
    if proc.returncode != 0:
        return {}  # "accounting storage is disabled": squeue is all there is
    return _parse_rows(proc.stdout, 3, lambda f: TaskInfo(f[0], f[1], "", f[2]))


def _parse_rows(text: str, n: int, make: Any) -> dict[str, TaskInfo]:
    out = {}
    for line in text.splitlines():
        f = line.split("|", n - 1)
        if len(f) == n and "_" in f[0] and "[" not in f[0]:
            info = make(f)
            out[info.job_id] = info
    return out


def _reason(r: str) -> str:
    return "" if r in ("None", "(null)") else r


def _live_tasks(jobs: Sequence[str]) -> int:
    """How many tasks of these jobs are pending, running or ending (0: all over, or forgotten)."""
    if not jobs:
        return 0
    states = "PD,R,CG,CF,S,ST,RQ,RH,RS,SI"
    proc = _slurm(["squeue", "-h", "-r", "-t", states, "-j", ",".join(jobs), "-o", "%i"], "asking Slurm")
    if proc.returncode != 0:
        msg = _message(proc)
        if "Invalid job id" in msg:
            return sum(_live_tasks([j]) for j in jobs) if len(jobs) > 1 else 0
        raise SlurmError(f"squeue failed: {msg}")
    return len([ln for ln in proc.stdout.splitlines() if ln.strip()])


def query(job_ids: Iterable[str], timeout: float = TIMEOUT_S) -> dict[str, TaskInfo]:
    """squeue, then sacct for what squeue no longer knows."""
    job_ids = [j for j in job_ids if j]
    found = squeue(job_ids, timeout)
    missing = [j for j in job_ids if j not in found]
    if missing:
        found.update({k: v for k, v in sacct(missing).items() if k in missing})
    return found


# -- run.after's job: what `mrl status` shows of it, and `mrl cancel` stops ------------------------


@dataclass
class AfterJob:
    """A run.after job of the experiment (from submissions.jsonl) and its script's name."""

    job: str
    script: str  # after-NNN.sh; its record is after-NNN.json

    def record_path(self, expdir: Path) -> Path:
        return expdir / SLURM_DIR / Path(self.script).with_suffix(".json").name


def _submission_lines(expdir: Path) -> list[dict[str, Any]]:
    import json

    try:
        text = (expdir / SLURM_DIR / SUBMISSIONS).read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                out.append(entry)
    return out


def after_jobs(expdir: Path, lines: list[dict[str, Any]] | None = None) -> list[AfterJob]:
    """Every run.after job submitted for the experiment, oldest first (from `lines`, the
    submissions.jsonl lines when already read). Each array's line names its run's job;
    lines of earlier versions lack the script, which was then `after-NNN.sh` with the
    number of the run's last array."""
    found: dict[str, AfterJob] = {}
    for entry in _submission_lines(expdir) if lines is None else lines:
        job = str(entry.get("after") or "")
        if JOB_ID.fullmatch(job):  # a line's junk (`--user=root`) never reaches scontrol, sacct or scancel
            number = Path(str(entry.get("script", ""))).stem[7:]
            found[job] = AfterJob(job, str(entry.get("afterScript") or f"after-{number}.sh"))
    return list(found.values())


def _read_after_record(path: Path) -> dict[str, Any]:
    """The run.after job's own record ({} when it has none, or it cannot be read)."""
    try:
        data = jsonio.read_json(path)
    except (OSError, MrlError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded(rec: Mapping[str, Any]) -> JobState | None:
    try:
        return JobState(rec.get("state"))
    except ValueError:
        return None


def job_info(job: str, timeout: float = TIMEOUT_S) -> tuple[TaskInfo, int | None] | None:
    """What Slurm knows of the plain job `job` (`scontrol show job`, then sacct): its state
    and exit code; None when it no longer knows it. An unreachable controller raises."""
    proc = _slurm(["scontrol", "-o", "show", "job", job], "asking Slurm", timeout)
    if proc.returncode != 0:
        if "Invalid job id" not in _message(proc):
            raise SlurmError(f"scontrol show job {job} failed: {_message(proc)}")
        return _accounted(job)
    fields = _job_fields(proc.stdout)
    if not fields.get("JobState"):  # no word of Slurm's (a wrapper, a cut reply): never a verdict to record
        raise SlurmError(f"scontrol show job {job} gave no JobState")
    info = TaskInfo(job, fields["JobState"], _reason(fields.get("Reason", "")), fields.get("NodeList", ""))
    return info, _exit_code(fields.get("ExitCode", ""))


def _accounted(job: str) -> tuple[TaskInfo, int | None] | None:
    if shutil.which("sacct") is None:
        return None
    try:
        proc = _slurm(["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State,ExitCode,NodeList"], "asking Slurm")
    except SlurmError:
        return None
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        f = line.split("|")
        if len(f) == 4 and f[0] == job and f[1].strip():  # (an empty State is no verdict either)
            return TaskInfo(job, f[1], "", f[3]), _exit_code(f[2])
    return None


def _exit_code(text: str) -> int | None:
    """Slurm's `ExitCode=3:0` (code:signal) -> 3; None for a job a signal ended (`0:15`:
    its 0 is no exit code)."""
    code, _, sig = text.partition(":")
    return int(code) if code.isdigit() and sig in ("", "0") else None


def observe_after(expdir: Path, job: AfterJob, timeout: float = TIMEOUT_S) -> FollowUp:
    """The run.after job's state now: its record once final; before that, Slurm's word
    (written into the record when the job ended without saying so itself; `timeout`: the
    wait for it)."""
    from metarunlog.backends.base import FollowUp

    path = job.record_path(expdir)
    rec = _read_after_record(path)
    out = FollowUp("run.after", job.job, _recorded(rec) or JobState.QUEUED, rec.get("exitCode"))
    out.log = f"{SLURM_DIR}/after-{job.job}.out"
    _observe_after(out, path, rec, job, timeout)
    if out.state.finished and not (expdir / out.log).exists():
        out.log = ""  # cancelled while it waited: it never wrote one
    return out


def _observe_after(out: FollowUp, path: Path, rec: dict[str, Any], job: AfterJob, timeout: float) -> None:
    from metarunlog.backends.base import unread_note

    if out.state.finished:
        return
    try:
        known = job_info(job.job, timeout)
    except SlurmError as e:
        out.note = unread_note("Slurm", str(e))
        return
    if known is None:
        out.state = JobState.STALE
        out.note = "Slurm no longer knows its job" + ("" if rec else ", and it left no record")
        return
    info, code = known
    out.state = info.state
    if info.state.finished:
        # cancelled, timed out...: Slurm's ExitCode=0:0 of a job cancelled while it waited
        # is no exit code of its steps
        ended_by_itself = info.state in (JobState.DONE, JobState.FAILED)
        out.exit_code = (code if code is not None else out.exit_code) if ended_by_itself else rec.get("exitCode")
        out.note = "" if info.state is JobState.DONE else f"Slurm: {info.slurm_state}"
        _settle_after(path, info, out)
    elif info.state is JobState.QUEUED:
        out.note = f"pending in Slurm ({info.reason})" if info.reason else "pending in Slurm"


def _settle_after(path: Path, info: TaskInfo, seen: FollowUp) -> None:
    """Slurm's verdict into the record of a job that ended without writing it (cancelled,
    timed out), so it outlives Slurm's memory; a record the job finished is left alone."""
    rec = _read_after_record(path)
    if _ended(rec):
        return
    new = {**rec, "jobId": seen.job_id, "state": seen.state.value, "slurmState": info.slurm_state.split()[0]}
    if seen.exit_code is not None:
        new["exitCode"] = seen.exit_code
    new["end"] = rec.get("end") or jsonio.now()
    with contextlib.suppress(OSError):  # a read-only experiment: shown, not written
        jsonio.write_json(path, new)


# -- records + scheduler -> state ---------------------------------------------------------------


def never_started(status: Status) -> bool:
    """Queued, and no attempt of this submission ever started it (a requeue interrupted
    none of it: one it did is `queued` with `requeues`)."""
    return status.state is JobState.QUEUED and not status.requeues


def merged_state(status: Status | None, info: TaskInfo | None) -> JobState:
    """What is true now, from the task's own record and what the scheduler says of its job.

    - the scheduler forgot an active record's job: `stale`;
    - the scheduler's final word the task could not write (timeout, oom, node failure)
      wins over the record; so does any final word while the record still says active
      (the task was killed: `scancel` -> cancelled, a crash -> failed);
    - a task that wrote `failed` or `cancelled` is `running` until the scheduler has ended
      it: Slurm may yet say why (a time limit, out of memory); so is a packed one's
      `cancelled` that no `mrl cancel` asked for (its task was stopped: a time limit, a
      requeue; `cancelled` there was never a cancel until Slurm or the task says so);
    - a packed sub-experiment's own record is its truth while its task runs the others
      (`queued` until the task gets to it, then running, then its end); one the task
      never started when Slurm ended it (a time limit) is `pending`: the verdict is the
      task's, not its own;
    - a done one queued by `--force` that its task never started when Slurm ended it or
      forgot it (cancelled in the queue, a time limit) is `done`, as it was: the rerun
      never happened (`Status.dropped_rerun`), as locally;
    - otherwise the record, with `queued` becoming `running` once the scheduler says so.
    """
    rec = recorded_state(status)
    if status is not None and (info is None or info.state.finished) and status.dropped_rerun() is not None:
        return JobState.DONE
    if info is None:
        return JobState.STALE if rec.active else rec
    sched = info.state
    packed = status is not None and status.packed
    unstarted = status is not None and packed and never_started(status)
    if sched.finished:
        if sched in _SCHEDULER_VERDICTS and unstarted:
            return JobState.PENDING
        if sched in _SCHEDULER_VERDICTS and rec not in (JobState.DONE,):
            return sched
        if rec.active:
            return JobState.STALE if sched is JobState.DONE else sched
        return rec
    if rec is JobState.CANCELLED or (rec is JobState.FAILED and not packed):
        # Slurm is still ending it, and may yet say why. A packed one too when `cancelled`
        # (no `mrl cancel` asked: the caller checks its mark): only a stop of its whole task
        # writes that, whose own word (timeout, requeued) follows in a moment. A packed one
        # that failed by itself is final while its task runs the others.
        return JobState.RUNNING
    if rec.finished or (packed and rec is JobState.QUEUED):
        return rec
    return JobState.RUNNING if JobState.RUNNING in (rec, sched) else JobState.QUEUED


# -- the backend ---------------------------------------------------------------------------------

CANCEL_MARK = ".mrl.cancel"  # SUBDIR/.mrl.cancel: `mrl cancel` asks the packed task to stop this one


@dataclass
class Submission:
    """One `sbatch --array` call: its job id, the script and plan kept in EXPDIR/.mrl.slurm."""

    job: str
    script: Path
    plan: TaskPlan

    @property
    def ids(self) -> list[int]:
        return self.plan.ids

    @property
    def packed(self) -> bool:
        return any(len(t) > 1 for t in self.plan.tasks)

    def task_ids(self) -> dict[int, str]:
        """Sub-experiment id -> its array task, `<job>_<index>`."""
        return {i: f"{self.job}_{k}" for k, task in enumerate(self.plan.tasks) for i in task}

    def task_id(self, sub_id: int) -> str:
        return self.task_ids()[sub_id]


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
    pack: int | None = None  # --pack K: K sub-experiments per array task


@dataclass
class SlurmSettings:
    """run.slurm's keys that shape a submission (beyond the #SBATCH options)."""

    pack: int = 1
    pack_jobs: int | None = None
    array_limit: int | None = None
    requeue: int = 0
    signal_before: int = 120
    unreachable_timeout: float = 600.0
    query_timeout: float = QUERY_TIMEOUT_S

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], pack: int | None = None) -> SlurmSettings:
        pack = pack if pack is not None else int(cfg.get("pack") or 1)
        if pack < 1:
            raise SlurmError(f"--pack must be at least 1, not {pack}")
        timeout = cfg.get("unreachable_timeout")
        return cls(
            pack,
            cfg.get("pack_jobs"),
            cfg.get("array_limit"),
            int(cfg.get("requeue") or 0),
            int(cfg.get("signal_before") or 120),
            600.0 if timeout is None else float(timeout),
            query_timeout(cfg),
        )


def query_timeout(cfg: Mapping[str, Any]) -> float:
    """run.slurm.query_timeout: how long a command that reads once waits for the controller."""
    value = cfg.get("query_timeout")
    return QUERY_TIMEOUT_S if value is None else float(value)


class SlurmBackend(Backend):
    """Sub-experiments of one experiment as the tasks of Slurm job arrays.

    `submit` queues and returns (`waits` is False, so `mrl run` returns once submitted,
    unless `--wait`); `poll` merges records with the scheduler; `cancel` runs `scancel`
    (or, for one sub-experiment of a packed task, asks that task to stop it).
    """

    name = "slurm"
    label = "Slurm"
    submits_after = True  # run.after is a job depending on the arrays
    cancel_wait = 0.0  # cancel() records what it stopped, and notes what a packed task did not yet
    query_interval = 1.0  # seconds between two scheduler queries while waiting
    max_query_interval = 30.0  # ... at most, while the controller cannot be reached

    @classmethod
    def run_options(cls, values: Mapping[str, Any], block: Mapping[str, Any]) -> SlurmRunOptions:
        return SlurmRunOptions(
            list(values.get("slurm_opt") or []),
            values.get("max_parallel"),
            bool(values.get("wait")),
            values.get("pack"),
        )

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

    @classmethod
    def follow_ups(cls, exp: Experiment) -> list[FollowUp]:
        """The latest run's run.after job (when it has one), with its state now."""
        lines = _submission_lines(exp.dir)
        latest = after_jobs(exp.dir, lines[-1:])
        if not latest:
            return []
        timeout = query_timeout(exp.cfg["run"].get(cls.name) or {})
        return [observe_after(exp.dir, latest[-1], timeout)]

    @classmethod
    def cancel_follow_ups(cls, exp: Experiment) -> list[FollowUp]:
        """scancel every run.after job of `exp` not known to have ended; returns those
        Slurm knew, with their state after that."""
        live = [a for a in after_jobs(exp.dir) if not _ended(_read_after_record(a.record_path(exp.dir)))]
        if not live:
            return []
        scancel([a.job for a in live])
        # a running job takes Slurm a moment to end (SIGTERM, then COMPLETING): shown
        # `running`, it read as a cancel that failed (and mrl cancel exited 1)
        deadline = time.monotonic() + AFTER_CANCEL_WAIT_S
        while True:
            seen = [observe_after(exp.dir, a, query_timeout(exp.cfg["run"].get(cls.name) or {})) for a in live]
            if not any(f.state.active for f in seen) or time.monotonic() >= deadline:
                return [f for f in seen if f.state is not JobState.STALE]
            time.sleep(0.2)

    @classmethod
    def run_plan(cls, expdir: Path, plan: Path, index: int) -> int:
        """Inside an array task: run task `index` of `plan` (backends/slurm_task.py)."""
        from metarunlog.backends.slurm_task import run_task_of_plan

        return run_task_of_plan(expdir, plan, index)

    def __init__(self, exp: Experiment, options: RunOptions | None = None) -> None:
        super().__init__(exp, options)
        mine = self.own_options(SlurmRunOptions)
        slurm_cfg = exp.cfg["run"].get(self.name) or {}
        where = str(exp.cfg.path or ".mrl.cfg")
        self.opts = SlurmOptions.from_config(slurm_cfg, mine.slurm_opts, mine.max_parallel, where)
        self.settings = SlurmSettings.from_config(slurm_cfg, mine.pack)
        self.retries = self.options.retries
        self.fail_fast = self.options.fail_fast
        self.waits = mine.wait  # by default `mrl run` returns once the jobs are queued
        self.submissions: list[Submission] = []
        self.after_job: str | None = None  # run.after's job
        self.after_script: Path | None = None  # ... and its script, EXPDIR/.mrl.slurm/after-NNN.sh
        self._infos: dict[str, TaskInfo] = {}
        self._asked = -1e9  # monotonic time of the last scheduler query
        self._unreachable_since: float | None = None
        self._seen: dict[int, tuple[int, int, int] | None] = {}  # id(job) -> its record file's identity
        # id(job) -> the Slurm task of a --force rerun of a done one, not started when last seen
        self._reruns: dict[int, str] = {}
        self._settled = False  # this poll wrote a verdict

    # -- submit ------------------------------------------------------------------------------
    def submit(self, jobs: Sequence[Job]) -> None:
        """Held arrays, then `queued` records, then run.after, then release: all or nothing.

        A job another runner holds (its `.mrl.lock`) is skipped, as with the local backend.
        """
        todo = self._free(jobs)
        if not todo:
            return
        arrays = self.arrays(todo)
        head = self._head()
        submitted: list[Submission] = []
        old = {j.sub.id: _as_read(j) for j in todo}
        try:
            for array in arrays:
                submitted.append(self._submit_array(head, array, submitted, todo))
            self._mark_queued(todo, submitted, old)
            self.after_job = self._submit_after(head, arrays, submitted)
            self._claim(submitted)
            release([s.job for s in submitted])
        except BaseException:
            self._undo(submitted, todo, old)
            raise
        self.submissions += submitted
        for sub in submitted:
            self._log_submission(sub)

    def _free(self, jobs: Sequence[Job]) -> list[Job]:
        todo = []
        for job in jobs:
            if is_running(job.sub.dir):
                job.skipped, job.message = True, f"sub-experiment {job.sub.dir} is being run by another process"
            else:
                todo.append(job)
        return todo

    def arrays(self, jobs: Sequence[Job], limit: int | None = None) -> list[ArrayPlan]:
        """The arrays these jobs become: grouped by their rendered options, packed, split
        below the cluster's MaxArraySize (asked once) and run.slurm.array_limit."""
        if limit is None:
            limit = self.array_limit()
        arrays = plan_arrays(self._groups(jobs), self.settings.pack, limit)
        if self.opts.max_parallel and len(arrays) > 1:
            for k in range(1, len(arrays)):  # one throttle for the run: each array after the previous
                arrays[k].after = str(k - 1)
        return arrays

    def array_limit(self) -> int:
        limit = max_array_size()
        if limit < 1:  # not a SlurmError: a dry run must not assume a default here
            raise MrlError(
                f"this Slurm cluster has job arrays disabled (MaxArraySize={limit}) and mrl submits "
                "job arrays: ask its admins, or use --backend local"
            )
        return min(limit, self.settings.array_limit or limit)

    def _groups(self, jobs: Sequence[Job]) -> list[tuple[tuple[str, ...], list[int]]]:
        from metarunlog.execute import variables

        if not self.opts.templated:
            return [(self.opts.lines_for(), [j.sub.id for j in jobs])]
        groups: dict[tuple[str, ...], list[int]] = {}
        for j in jobs:
            lines = self.opts.lines_for(variables(j.sub, None), sub=j.name)
            groups.setdefault(lines, []).append(j.sub.id)
        return list(groups.items())

    def _head(self) -> ScriptHead:
        return ScriptHead(
            self.exp.dir, self.exp.name, self.opts.max_parallel, self.settings.requeue, self.settings.signal_before
        )

    def _plan(self, array: ArrayPlan, jobs: Sequence[Job]) -> TaskPlan:
        by_id = {j.sub.id: j for j in jobs}
        fps = {i: fp for i in array.ids if (fp := by_id[i].fingerprint) is not None}
        return TaskPlan(
            array.tasks, self.retries, self.options.force, self.settings.pack_jobs, self.settings.requeue, fps
        )

    def _submit_array(
        self, head: ScriptHead, array: ArrayPlan, before: Sequence[Submission], jobs: Sequence[Job]
    ) -> Submission:
        n = reserve_number(self.exp.dir)
        d = self.exp.dir / SLURM_DIR
        plan, script = self._plan(array, jobs), d / f"submit-{n:03d}.sh"
        jsonio.write_json(d / f"submit-{n:03d}.json", plan.to_json())
        script.write_text(render_script(head, array, d / f"submit-{n:03d}.json"), encoding="utf-8")
        deps = [before[int(array.after)].job] if array.after is not None else []
        return Submission(sbatch(script, hold=True, after=deps, warnings=self.warnings), script, plan)

    def _mark_queued(self, jobs: Sequence[Job], submitted: Sequence[Submission], old: dict[int, Status | None]) -> None:
        now = jsonio.now()
        task_of: dict[int, tuple[str, bool]] = {}
        for s in submitted:
            task_of.update({i: (t, s.packed) for i, t in s.task_ids().items()})
        for j in jobs:
            task, packed = task_of[j.sub.id]
            with contextlib.suppress(FileNotFoundError):
                (j.sub.dir / CANCEL_MARK).unlink()  # an earlier cancel is not about this submission
            # not fsynced one by one (10,000 fsyncs take seconds): once, below
            j.status = (old[j.sub.id] or Status()).queued(self.name, task, now, packed=packed)
            j.sub.write_status(j.status, durable=False)
            j.job_id, j.state = task, JobState.QUEUED
            self._remember(j)  # the first poll of --wait need not read it back
            if j.status.done_before is not None:
                self._reruns[id(j)] = task
        jsonio.sync_filesystem(self.exp.dir)

    def _submit_after(
        self, head: ScriptHead, arrays: Sequence[ArrayPlan], submitted: Sequence[Submission]
    ) -> str | None:
        steps = after.steps(self.exp)
        if not steps:
            return None
        lines = [ln for ln in arrays[0].lines if ln.split("=")[0] in _AFTER_OPTIONS]
        path = self.exp.dir / SLURM_DIR / f"after-{submitted[-1].script.stem[7:]}.sh"
        path.write_text(render_after_script(head, steps, lines, path.with_suffix(".json")), encoding="utf-8")
        self.after_script = path
        return sbatch(path, hold=False, after=[s.job for s in submitted], warnings=self.warnings)

    def _claim(self, submitted: Sequence[Submission]) -> Path:
        """Own the experiment while these arrays have tasks pending or running (`owners`):
        makebatch -replace/--extend refuse, naming the jobs."""
        from metarunlog import ownership

        claim = ownership.Claim(self.name, ownership.HOST, None, jsonio.now(), [s.job for s in submitted])
        return ownership.write_claim(self.exp, claim, f"{self.name}-{submitted[0].job}")

    @classmethod
    def owners(cls, exp: Experiment, claims: Sequence[Claim]) -> list[str]:
        """The submissions that still own `exp`: some task pending or running (asked with
        squeue); a claim whose tasks all ended is removed. An unreachable controller
        proves nothing: the claim still owns."""
        out = []
        for claim in claims:
            try:
                live = _live_tasks(claim.job_ids)
            except SlurmError as e:
                out.append(f"{claim.describe()} (Slurm cannot be asked: {e})")
                continue
            if live:
                out.append(f"{claim.describe()} ({live} task(s) pending or running)")
            elif claim.path is not None:
                with contextlib.suppress(OSError):
                    claim.path.unlink()
        return out

    def _undo(self, submitted: Sequence[Submission], jobs: Sequence[Job], old: dict[int, Status | None]) -> None:
        """A submission that could not be completed: cancel the held jobs, restore the records."""
        with contextlib.suppress(SlurmError):
            scancel([s.job for s in submitted] + ([self.after_job] if self.after_job else []))
        if submitted:
            with contextlib.suppress(OSError):
                (self.exp.dir / OWNERS / f"{self.name}-{submitted[0].job}.json").unlink()
        self.after_job = None
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
        """What `mrl run` prints after submitting: the job id(s) and the script(s)."""
        if not self.submissions:
            return ""
        jobs = ", ".join(s.job for s in self.submissions)
        scripts = (
            self.submissions[-1].script.name
            if len(self.submissions) == 1
            else f"{self.submissions[0].script.name} .. {self.submissions[-1].script.name}"
        )
        after = f"; run.after as job {self.after_job}" if self.after_job else ""
        word = "job" if len(self.submissions) == 1 else f"{len(self.submissions)} jobs"
        return f"as Slurm {word} {jobs} (script: {self.exp.dir / SLURM_DIR / scripts}){after}"

    def _log_submission(self, sub: Submission) -> None:
        import json

        line = {
            "jobId": sub.job,
            "script": sub.script.name,
            "plan": sub.script.with_suffix(".json").name,
            "array": _short(array_spec(sub.ids), 200),
            "tasks": len(sub.plan.tasks),
            "submitted": jsonio.now(),
        }
        if self.after_job:
            line["after"] = self.after_job
            if self.after_script is not None:
                line["afterScript"] = self.after_script.name
        with open(self.exp.dir / SLURM_DIR / SUBMISSIONS, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    # -- dry run -----------------------------------------------------------------------------
    def dry_run(self, jobs: Sequence[Job]) -> str:
        """The sbatch script(s) a submission of `jobs` would write, without writing anything."""
        note = ""
        try:
            limit = self.array_limit()
        except SlurmError as e:
            limit = min(DEFAULT_MAX_ARRAY_SIZE, self.settings.array_limit or DEFAULT_MAX_ARRAY_SIZE)
            note = f"# (could not ask Slurm for MaxArraySize, {DEFAULT_MAX_ARRAY_SIZE} assumed: {e})\n"
        arrays = self.arrays(jobs, limit)
        head = self._head()
        d = self.exp.dir / SLURM_DIR
        first = 1 + max((int(p.stem[7:]) for p in d.glob("submit-*.sh") if p.stem[7:].isdigit()), default=0)
        out = [f"# {len(jobs)} sub-experiment(s) as {len(arrays)} array(s); nothing written, nothing submitted\n{note}"]
        for k, array in enumerate(arrays):
            name = f"submit-{first + k:03d}"
            dep = f" --dependency=afterany:<job of {first + int(array.after):03d}>" if array.after else ""
            tasks = "; ".join(f"{t}: {_short(array_spec(ids), 40)}" for t, ids in enumerate(array.tasks[:5]))
            more = f"; ... ({len(array.tasks)} tasks)" if len(array.tasks) > 5 else ""
            out.append(
                f"# ---- {d / name}.sh (sbatch --parsable --hold{dep}); tasks {tasks}{more}\n"
                + render_script(head, array, d / f"{name}.json")
            )
        steps = after.steps(self.exp)
        if steps:
            lines = [ln for ln in arrays[0].lines if ln.split("=")[0] in _AFTER_OPTIONS]
            name = f"after-{first + len(arrays) - 1:03d}"
            out.append(
                f"# ---- {d}/{name}.sh (sbatch --dependency=afterany:<every array above>)\n"
                + render_after_script(head, steps, lines, d / f"{name}.json")
            )
        return "\n".join(out)

    # -- poll --------------------------------------------------------------------------------
    def poll(self, jobs: Sequence[Job]) -> list[JobState]:
        """Each job's state: its `.mrl.status` merged with squeue (and sacct).

        A final scheduler state that changes the record (timeout, a task killed behind
        mrl's back) is written into `.mrl.status`, so it outlives the scheduler's memory of
        the job; `stale` is never written. The scheduler is asked at most once a
        `query_interval` (the records are read every time). While waiting (`--wait`), an
        unreachable controller leaves the records as written and is asked again with a
        growing interval, for at least run.slurm.unreachable_timeout seconds.
        """
        statuses = [self._read(j) for j in jobs]
        ask = [s.job_id for s in statuses if s is not None and s.job_id and needs_scheduler(s)]
        reachable = True
        if ask and self._time_to_ask(ask):
            reachable = self._ask(ask)
        self._settled = False
        for job, rec in zip(jobs, statuses, strict=True):
            if not reachable and rec is not None and rec.job_id not in self._infos:
                job.state = recorded_state(rec)
            else:
                self._observe(job, rec)
        if self._settled:  # verdicts were written without an fsync each: once for all
            jsonio.sync_filesystem(self.exp.dir)
        if self.fail_fast and not self.halted and any(j.state is JobState.FAILED for j in jobs):
            self.halted = True  # like the local pool: nothing new starts after a failure
            self.cancel([j for j in jobs if j.state is JobState.QUEUED])
        return [j.state for j in jobs]

    def _read(self, job: Job) -> Status | None:
        """The job's record, re-read only when the file changed: every write replaces it
        (a new inode), so (inode, mtime, size) unchanged means the same record. Waiting on
        thousands of sub-experiments then costs a stat each per poll, not a JSON parse."""
        key = _file_key(job.sub.status_path)
        if key is not None and self._seen.get(id(job)) == key and job.status is not None:
            return job.status
        self._seen[id(job)] = key
        return job.read_status()

    def _remember(self, job: Job) -> None:
        """`job.status` is what its record file holds now (this process just wrote it)."""
        self._seen[id(job)] = _file_key(job.sub.status_path)

    def _time_to_ask(self, ask: Sequence[str]) -> bool:
        interval = self.query_interval
        if self._unreachable_since is not None:
            gone = time.monotonic() - self._unreachable_since
            interval = min(self.max_query_interval, max(self.query_interval, gone / 4))
            return time.monotonic() - self._asked >= interval
        return time.monotonic() - self._asked >= interval or any(a not in self._infos for a in ask)

    def _ask(self, ask: Sequence[str]) -> bool:
        """Query the scheduler; False when it cannot be reached (and we may wait for it)."""
        self._asked = time.monotonic()
        try:
            # while waiting, a controller that does not answer soon is said to be unreachable
            # (and asked again), rather than blocking the wait for a minute
            self._infos = query(ask, WAIT_QUERY_TIMEOUT_S if self.waits else self.settings.query_timeout)
        except SlurmError as e:
            if self.waits:
                return self._unreachable(e)
            if isinstance(e, SlurmTimeout):  # the key that sets the wait, for a slow controller
                raise SlurmTimeout(
                    f"squeue got no answer in {self.settings.query_timeout:g} s "
                    "(run.slurm.query_timeout; is slurmctld up?)"
                ) from None
            raise
        if self._unreachable_since is not None:
            self.warnings.append("the Slurm controller answers again")
        self._unreachable_since = None
        return True

    def _unreachable(self, e: SlurmError) -> bool:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
            self.warnings.append(
                f"the Slurm controller is unreachable ({e}); the tasks go on: asking again "
                f"for up to {self.settings.unreachable_timeout:g} s (run.slurm.unreachable_timeout)"
            )
        elif now - self._unreachable_since > self.settings.unreachable_timeout:
            raise SlurmError(
                f"the Slurm controller has been unreachable for {now - self._unreachable_since:.0f} s "
                f"(run.slurm.unreachable_timeout): {e}; the tasks may still run: follow them with `mrl status`"
            ) from None
        return False

    def _observe(self, job: Job, rec: Status | None) -> None:
        self._rerun_seen(job, rec)
        if rec is None or not needs_scheduler(rec) or _cancel_asked(job.sub, rec):
            job.state = recorded_state(rec)
            # the task's own final word: what the scheduler said of it earlier ("waiting in
            # its packed task") is over; a `pending` one says why it never started
            job.message = _not_started(rec) or ("" if _explained(job.message) else job.message)
            return
        job.job_id = rec.job_id
        info = self._infos.get(rec.job_id or "")
        if info is not None and info.runs_for(self.exp.dir) is False:  # a copy's record: nothing runs it
            job.state = JobState.STALE
            job.message = f"Slurm task {rec.job_id} runs {info.script}, not this experiment's (a copy?)"
            return
        job.state = merged_state(rec, info)
        job.message = _explain(job.state, rec, info, self.exp.dir)
        job.unstarted = job.state is JobState.DONE and rec.dropped_rerun() is not None
        if info is not None and info.state.finished:
            job.status = _with_verdict(rec, job.state, info)
            job.message = job.message or _not_started(job.status)
            if job.status != rec:
                try:
                    job.sub.write_status(job.status, durable=False)
                except OSError:  # a read-only experiment (someone else's, an archive): shown, not written
                    return
                self._settled = True

    def _rerun_seen(self, job: Job, rec: Status | None) -> None:
        """A --force rerun of a done one that its task (or a cancel) dropped before it
        started: its record is the earlier done one again (`Status.dropped_rerun`), which
        `mrl run --wait` must not count as this run's (as the local backend says it)."""
        if rec is None:
            return
        if rec.dropped_rerun() is not None and rec.job_id:
            self._reruns[id(job)] = rec.job_id
            return
        task = self._reruns.get(id(job))
        if task is None:
            return
        if rec.job_id == task and rec.backend == self.name:  # this submission's record
            if rec.state is not JobState.QUEUED:
                del self._reruns[id(job)]  # it started: what it records is this run's
            return
        del self._reruns[id(job)]
        if rec.state is JobState.DONE:
            job.unstarted = True
            cancelled = (job.sub.dir / CANCEL_MARK).exists()  # `mrl cancel` (its task may go on)
            job.message = (
                "cancelled before it started"
                if cancelled
                else f"its --force rerun never started: its Slurm task {task} ended first"
            )

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, jobs: Sequence[Job]) -> None:
        """Stop the queued/running ones: `scancel` of their array tasks, except for a packed
        task that still has other sub-experiments to run: that task is asked (through
        `SUBDIR/.mrl.cancel`) to stop or skip just these."""
        # as the caller just read them (each is read again right before it is written)
        targets = [j for j in jobs if needs_scheduler(_read_once(j)) and recorded_state(j.status).active]
        now = jsonio.now()
        try:
            targets = self._not_anothers(targets, now)
        except SlurmError as e:
            raise _not_cancelled(e, sent=False) from None
        whole, partial = self._split_by_task(targets)
        for j in targets:  # the task's own `cancelled` then says that mrl cancel asked for it
            (j.sub.dir / CANCEL_MARK).write_text(f"{now}\n", encoding="utf-8")
        try:
            scancel(sorted({j.status.job_id for j in whole if j.status is not None and j.status.job_id}))
        except SlurmError as e:
            # not cancelled, and said so: no mark may cancel them later (a packed task
            # skipping them, a preemption's requeue recorded as this cancel)
            for j in targets:
                with contextlib.suppress(FileNotFoundError):
                    (j.sub.dir / CANCEL_MARK).unlink()
            raise _not_cancelled(e, sent=True) from None
        for j in whole:
            cur = j.read_status()
            if cur is not None and cur.state in (JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED):
                j.status = _cancelled_by_us(cur, now, stale=j.state is JobState.STALE)
                j.sub.write_status(j.status, durable=False)  # synced once, below
            j.state, j.message = recorded_state(j.status), ""
            _say_unstarted(j, cur)
        if whole:
            jsonio.sync_filesystem(self.exp.dir)
        self._cancel_in_task(partial)

    def _not_anothers(self, targets: list[Job], now: str) -> list[Job]:
        """`targets` but those whose Slurm task provably runs another experiment's script (a
        copy's records): never scancel-ed, their records (the copy's) say cancelled."""
        ids = [j.status.job_id for j in targets if j.status is not None and j.status.job_id]
        # a task's script never changes: what this backend's last poll asked is reused
        unasked = [i for i in ids if i not in self._infos]
        infos = {**self._infos, **(squeue(unasked, self.settings.query_timeout) if unasked else {})}
        ours = []
        for j in targets:
            info = infos.get(j.status.job_id or "") if j.status is not None else None
            if info is None or info.runs_for(self.exp.dir) is not False:
                ours.append(j)
                continue
            assert j.status is not None
            task = j.status.job_id
            reason = f"cancelled with mrl cancel: its Slurm task {task} runs another experiment's script (a copy?)"
            j.status = _with_reason(j.status.cancelled(now), reason)
            j.sub.write_status(j.status)
            j.state = JobState.CANCELLED
            j.message = f"Slurm task {task} runs {info.script}, not this experiment's: left alone in Slurm"
        return ours

    def _split_by_task(self, targets: Sequence[Job]) -> tuple[list[Job], list[Job]]:
        """(jobs whose whole array task can go, jobs to stop inside a task that goes on)."""
        by_task: dict[str, list[Job]] = {}
        for j in targets:
            by_task.setdefault(j.status.job_id or "", []).append(j)  # type: ignore[union-attr]
        whole, partial = [], []
        tasks = _TaskMembers(self.exp)  # each plan read once, not once per task
        for task, group in by_task.items():
            if not any(j.status is not None and j.status.packed for j in group):
                whole += group
                continue
            asked = {j.sub.id for j in group}
            others = tasks.subs(task, asked)
            if any(recorded_state(s.read_status()).active for s in others):
                partial += group
            else:
                whole += group
        return whole, partial

    def _cancel_in_task(self, jobs: Sequence[Job], grace: float = 15.0) -> None:
        """Ask their packed task to stop these: a queued one is marked cancelled now (the
        task skips it), a running one is stopped by its task, which writes `cancelled`."""
        now = jsonio.now()
        for j in jobs:
            cur = j.read_status()
            if cur is not None and cur.state is JobState.QUEUED:
                j.status = cur.cancelled(now, slurm_state="CANCELLED")
                j.sub.write_status(j.status)
                _say_unstarted(j, cur)
        deadline = time.monotonic() + grace
        waiting = list(jobs)
        while waiting and time.monotonic() < deadline:
            waiting = [j for j in waiting if recorded_state(j.read_status()).active]
            if waiting:
                time.sleep(0.1)
        for j in jobs:
            j.state = recorded_state(j.read_status())
            j.message = "its task did not stop it yet" if j.state.active else j.message if j.unstarted else ""

    def wait(self, timeout: float) -> None:
        time.sleep(max(timeout, 0.1))


class _TaskMembers:
    """Which sub-experiments each array task `<job>_<index>` runs, from the submissions'
    plans, each read once; the experiment's folders are listed only when some task has
    members besides those asked (a cancel of 10,000 asked each of 100 tasks: 100 listings)."""

    def __init__(self, exp: Experiment) -> None:
        self.exp = exp
        self._files: dict[str, str] | None = None  # job id -> its plan's file name
        self._plans: dict[str, TaskPlan] = {}
        self._by_id: dict[int, SubExperiment] | None = None

    def ids(self, task: str) -> list[int]:
        job, _, index = task.partition("_")
        if self._files is None:
            self._files = {}
            for entry in _submission_lines(self.exp.dir):
                job_id, plan = entry.get("jobId"), entry.get("plan")
                if job_id and plan and job_id not in self._files:
                    self._files[str(job_id)] = str(plan)
        if job not in self._files or not index.isdigit():
            return []
        if job not in self._plans:  # an unreadable plan is an error: never guess a task's members
            self._plans[job] = TaskPlan.read(self.exp.dir / SLURM_DIR / self._files[job])
        tasks = self._plans[job].tasks
        return tasks[int(index)] if int(index) < len(tasks) else []

    def subs(self, task: str, leaving: set[int]) -> list[SubExperiment]:
        """Task `task`'s sub-experiments but those in `leaving`."""
        ids = [i for i in self.ids(task) if i not in leaving]
        if not ids:
            return []
        if self._by_id is None:
            self._by_id = {s.id: s for s in self.exp.sub_experiments()}
        return [self._by_id[i] for i in ids if i in self._by_id]


def _cancelled_by_us(rec: Status, now: str, *, stale: bool) -> Status:
    """The record of a task `mrl cancel` scancel-ed: we know why it ended, nothing for the
    scheduler to settle (slurmState). Unless Slurm had already forgotten its job (stale):
    then Slurm cancelled nothing, and how it ended is not known."""
    if not stale:
        return rec.cancelled(now, slurm_state="CANCELLED")
    reason = "cancelled with mrl cancel once Slurm no longer knew its job: how it ended is not known"
    return _with_reason(rec.cancelled(now), reason)


def _not_cancelled(e: SlurmError, *, sent: bool) -> SlurmError:
    """A cancel Slurm could not be asked for (`sent`: scancel ran): what is known of its
    outcome, and what to do."""
    if sent and isinstance(e, SlurmTimeout):  # scancel may have reached the controller after all
        return SlurmError(f"{e}; whether Slurm cancelled them is not known: `mrl status` shows it")
    return SlurmError(f"{e}; nothing was cancelled: run `mrl cancel` again once the controller answers")


def _with_reason(rec: Status, reason: str) -> Status:
    """A `cancelled` record with why; a done one whose --force rerun never started is done
    again as it was (`Status.dropped_rerun`), nothing added to what happened before."""
    return dataclasses.replace(rec, reason=reason) if rec.state is JobState.CANCELLED else rec


def _say_unstarted(job: Job, before: Status | None) -> None:
    """A done one queued by --force and cancelled before it started is done again: said as
    the local backend says it (`mrl run`'s progress: "not run: ... (its record says done)")."""
    if before is not None and before.dropped_rerun() is not None and recorded_state(job.status) is JobState.DONE:
        job.message, job.unstarted = "cancelled before it started", True


def _explained(message: str) -> bool:
    """A message `_explain` wrote (while the job waited or ran), not one of its own."""
    return message.startswith(("waiting in its packed task", "pending in Slurm", REQUEUED_NOTE))


def _not_started(rec: Status | None) -> str:
    """Why a sub-experiment its task never started is `pending` (its record's reason), or ""."""
    return (rec.reason or "") if rec is not None and rec.state is JobState.PENDING else ""


def _file_key(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of a record file: unchanged means the same record; None: no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_once(job: Job) -> Status | None:
    """The job's record as its caller last read it, else read now (and kept in `job.status`)."""
    return job.status if job.status is not None else job.read_status()


def _as_read(job: Job) -> Status | None:
    """The job's record as `mrl run`'s plan just read it (read now when it was not)."""
    return job.status if job.status is not None else job.sub.read_status()


def _ended(rec: Mapping[str, Any]) -> bool:
    state = _recorded(rec)
    return state is not None and state.finished


def _cancel_asked(sub: SubExperiment, rec: Status) -> bool:
    """A `cancelled` record of a task that `mrl cancel` stopped: final, whatever Slurm adds."""
    return rec.state is JobState.CANCELLED and (sub.dir / CANCEL_MARK).exists()


# Of the #SBATCH options, those the run.after job takes from the first array too.
_AFTER_OPTIONS = frozenset({"#SBATCH --partition", "#SBATCH --account", "#SBATCH --qos"})


def _explain(state: JobState, rec: Status, info: TaskInfo | None, expdir: Path) -> str:
    """What the scheduler adds to the record: why it waits, or why it ended when the task
    could not say so itself."""
    recorded = rec.state
    if state is JobState.DONE and rec.dropped_rerun() is not None:
        verdict = f" (Slurm: {info.slurm_state.split()[0]})" if info is not None and info.slurm_state else ""
        task = f"its Slurm task {rec.job_id}" if rec.job_id else "its Slurm task"
        return f"its --force rerun never started: {task} ended first{verdict}"
    if state is JobState.STALE:
        return "Slurm no longer knows its job"
    if info is None:
        return ""
    if state is JobState.QUEUED and rec.packed and info.state is JobState.RUNNING:
        return f"waiting in its packed task {info.job_id}"
    if state is JobState.QUEUED:
        pending = f"pending in Slurm ({info.reason})" if info.reason else "pending in Slurm"
        # a requeue or a preemption interrupted it: said, not only "pending" like a first run
        return f"{REQUEUED_NOTE} {rec.attempts}: {pending}" if rec.requeues and rec.attempts else pending
    if state.finished and info.state.finished and state is not recorded:
        job, _, task = info.job_id.partition("_")
        out = f"{SLURM_DIR}/slurm-{job}_{task}.out"
        # a task Slurm ended before it started (a scancel while pending) wrote none
        return f"Slurm: {info.slurm_state}" + (f" (its output: {out})" if (expdir / out).exists() else "")
    return ""


def _with_verdict(rec: Status, state: JobState, info: TaskInfo) -> Status:
    """The record with the scheduler's final word (and the state it implies) written in;
    a packed one its task never started is `pending` again, saying why."""
    if state is JobState.PENDING and rec.state is JobState.QUEUED:
        verdict = info.slurm_state.split()[0]
        return rec.not_started(f"not started: its Slurm task {info.job_id} ended first (Slurm: {verdict})")
    changed = state if state is not rec.state and state is not JobState.STALE else None
    return rec.settled(info.slurm_state.split()[0], changed, info.node, jsonio.now())
