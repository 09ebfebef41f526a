"""Run the sub-experiments of an experiment with the command in .mrl.cfg `run.command`.

run.command is a Jinja string, or a list of steps run in order, rendered per
sub-experiment with its params and expId, subExpId (folder name), subExpNum, expDir,
subExpDir, codeDir, resource.
Each runs with /bin/sh in its sub-experiment folder, with MRL_EXP_DIR, MRL_SUBEXP_DIR,
MRL_CODE_DIR (and CUDA_VISIBLE_DEVICES=R with --resources) in its environment.

Writes, per sub-experiment: run.log (stdout and stderr, appended; each attempt and step
headed by a `==== mrl attempt N step K/M ...` line) and .mrl.status (JSON: state, exit
code, attempts, steps done, start, end, duration, host, pid, resource, backend), and
EXPDIR/.mrl.done once every sub-experiment is done. When one runs again, the metrics files
its earlier attempt left move to SUBDIR/.mrl.attempts/N/ first. Also SUBDIR/.mrl.lock (the
lock file, kept) and, while the run lasts, its claim in EXPDIR/.mrl.owners/.

Done ones are skipped unless --force; failed, cancelled and stale ones run again; a
multi-step command resumes at its first unfinished step. Ctrl-C stops every running
command and marks it cancelled. Exit code: 0 when every selected one is done (but those
running or queued elsewhere: named as skipped, not waited for), 1 if any failed or was not
run, 130 when interrupted.

Examples:
  mrl run                      all of the current (else newest) experiment, run.jobs workers
  mrl run 3 -j 4               experiment 3, four at a time
  mrl run 1,4-6 --resources 0 1 1   three workers: GPU 0, and GPU 1 shared by two
  mrl run --failed --retries 2
  mrl run --backend slurm --slurm-opt=--partition=gpu
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import gone, ownership, plugins
from metarunlog.backends import registry
from metarunlog.backends.base import Backend, Job, RunOptions, follow_ups, get_backend, observe_any
from metarunlog.commands._args import add_target_arguments
from metarunlog.config import DEFAULT_HEARTBEAT_S
from metarunlog.errors import MrlError
from metarunlog.experiment import DONE_MARK, Experiment
from metarunlog.gone import Gone
from metarunlog.ownership import RunnerClaim
from metarunlog.project import Project
from metarunlog.selection import narrow, pick, selected, split_sub_ref
from metarunlog.states import JobState, unknown_note

NAMED = 20  # sub-experiments named one by one in the lines after a run
HELP = "run sub-experiments (local workers or Slurm): run.log and .mrl.status in each"
USAGE = "mrl run [EXP] [SELECTION] [-j N | --resources R [R ...]] [options]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    add_target_arguments(p, "run")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-j", "--jobs", type=int, metavar="N", help="run N at a time (default: run.jobs, 1)")
    g.add_argument(
        "--resources",
        nargs="+",
        type=_resource,
        metavar="R",
        help="one worker per entry, each with CUDA_VISIBLE_DEVICES=R; repeat an entry to share it "
        "(0 1 1: GPU 0 alone, GPU 1 for two jobs at once). Default: run.resources",
    )
    p.add_argument(
        "--backend", type=_backend_name, choices=registry.names(), help="where to run (default: run.backend, local)"
    )
    p.add_argument("--failed", action="store_true", help="only failed, cancelled, timed-out or stale ones")
    p.add_argument("--pending", action="store_true", help="only ones that never ran")
    p.add_argument("--force", action="store_true", help="rerun done ones too")
    p.add_argument("--retries", type=int, metavar="N", help="retry a failure up to N times (default: run.retries)")
    p.add_argument("--fail-fast", action="store_true", default=None, help="start nothing new after a failure")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing, write nothing")
    for spec in registry.specs():  # each backend's own options (backends/registry.py)
        for arg in spec.run_args:
            _add_backend_option(p, spec, arg)


def _resource(value: str) -> str:
    """--resources R: an entry that reads as EXP/SELECTION is refused, naming the order that
    works (`--resources 0 1 2/3` would take it for a GPU and run everything); device ids are
    numbers and GPU-/MIG- UUIDs (old MIG ids hold slashes, after `MIG-`)."""
    if split_sub_ref(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is an EXP/SELECTION, not a device: --resources takes every word after it; "
            f"write `mrl run {value} --resources ...`"
        )
    return value


def _backend_name(name: str) -> str:
    """--backend NAME: one no module registered says how to load a plugin's (argparse's
    "invalid choice" would not)."""
    if name not in registry.names():
        raise argparse.ArgumentTypeError(registry.unknown(name))
    return name


# What `main` sets on args itself after parsing: an option with one of these dests is lost.
_MAIN_DESTS = ("command", "mode")


def _add_backend_option(p: argparse.ArgumentParser, spec: registry.BackendSpec, arg: registry.RunArg) -> None:
    """A backend's `mrl run` option; one a backend from outside mrl got wrong (a flag or a
    dest another option has: argparse would let it overwrite mrl's own value) is an
    MrlError naming it."""
    where = f"the {spec.name} backend's mrl run option {'/'.join(arg.flags)}"
    # argparse has no public list of the dests a parser fills: its actions and set_defaults
    taken = {a.dest for a in p._actions} | set(p._defaults) | set(_MAIN_DESTS)
    if arg.dest in taken:
        raise MrlError(f"{where}: its dest {arg.dest!r} is already another option's (mrl's or a backend's): rename it")
    try:
        p.add_argument(*arg.flags, dest=arg.dest, **arg.kwargs)
    except (argparse.ArgumentError, TypeError, ValueError) as e:  # a backend from outside mrl
        raise MrlError(f"{where}: {e}") from e


def cli(args: argparse.Namespace, project: Project) -> int:
    from metarunlog.progress import guarded_output

    if args.dry_run:  # the output is all a dry run makes: losing it is the error, not a warning
        return _cli(args, project)
    # Output errors (`mrl run | head -1`, a closed terminal) never drop work: see Guarded.
    with guarded_output():
        return _cli(args, project)


def _cli(args: argparse.Namespace, project: Project) -> int:
    from metarunlog.results import finder_for

    exp = project.load_exp(args.expId)
    options, backend_name = options_from(exp, args)
    if not args.dry_run:  # a run this machine cannot hold is refused before it claims or plans
        with registry.blamed(backend_name):
            get_backend(backend_name).preflight(exp, options)
    finder_for(exp)  # its readers set earlier attempts' metrics aside: a reader no module registers? now
    if args.dry_run:
        the_plan = plan(exp, args.selection, failed=args.failed, pending=args.pending, force=options.force)
        _print_provenance(project, exp, args)
        with registry.blamed(backend_name):
            return _print_dry_run(the_plan, get_backend(backend_name)(exp, options))
    with owning(exp) as claim:  # makebatch -replace/--extend refuse until this run ends
        the_plan = plan(
            exp,
            args.selection,
            failed=args.failed,
            pending=args.pending,
            force=options.force,
            orphans=claim.orphans,
            others=claim.others,
        )
        _print_provenance(project, exp, args)
        _print_plan(the_plan, backend_name, options)
        if not the_plan.jobs:
            return 1 if the_plan.refused else 0
        with registry.blamed(backend_name):
            result = run(exp, the_plan, backend_name=backend_name, options=options, show=True, claim=claim)
    said = [
        job
        for job in the_plan.jobs
        # skipped, or not recordable (then it is stale, or pending when it never started:
        # a packed Slurm task that ended first says why); the progress lines name only
        # finished ones, so this is where it is said
        if job.changed or (job.message and not job.skipped and job.state in (JobState.STALE, JobState.PENDING))
    ]
    for job in said[:NAMED]:
        print(f"mrl: {job.name}: {job.message}", file=sys.stderr)
    if len(said) > NAMED:  # a packed task of 1,000 that hit its time limit: not 999 lines
        print(f"mrl: ... and {len(said) - NAMED} more (`mrl status {exp.id}` shows each)", file=sys.stderr)
    print(result.summary)
    code = result.code or (1 if the_plan.refused else 0)
    if result.waited_for_submitted_after:
        return _await_after_job(exp, the_plan.jobs, code)
    return _run_after(exp, code) if result.ran_here else code


@contextlib.contextmanager
def owning(exp: Experiment) -> Iterator[RunnerClaim]:
    """This run's claim on `exp` (see metarunlog.ownership), taken under the batch lock so
    that a makebatch either finished before we plan or sees the claim."""
    busy = f"mrl makebatch is still changing {exp.dir}: run again once it is done"
    with ownership.batch_lock(exp, wait=ownership.BATCH_WAIT_S, busy=busy):
        claim = ownership.claim_runner(exp)
    with claim:
        yield claim


def options_from(exp: Experiment, args: argparse.Namespace) -> tuple[RunOptions, str]:
    """Command line first, then the experiment's `run.*` config."""
    cfg = exp.cfg["run"]
    resources = args.resources
    if resources is None:
        resources = [] if args.jobs else list(cfg.get("resources") or [])
    jobs = args.jobs if args.jobs is not None else int(cfg.get("jobs") or 1)
    if jobs < 1:
        raise MrlError(f"-j must be at least 1, not {jobs}")
    retries = args.retries if args.retries is not None else int(cfg.get("retries") or 0)
    if retries < 0:
        raise MrlError(f"--retries must be 0 or more, not {retries}")
    name = args.backend or cfg.get("backend") or registry.DEFAULT
    _warn_foreign_options(args, name)
    if args.resources is None and args.jobs and cfg.get("resources") and name == registry.DEFAULT:
        slots = " ".join(str(r) for r in cfg["resources"])
        print(
            f"mrl: note: -j {args.jobs} runs without run.resources ({slots}): CUDA_VISIBLE_DEVICES is not set "
            f"for the steps; `--resources {slots}` (or no -j) gives each slot its GPU",
            file=sys.stderr,
        )
    spec = registry.spec(name)
    cls = spec.load()
    with spec.blamed():
        backend_options = cls.run_options(
            {a.dest: getattr(args, a.dest, None) for a in spec.run_args}, cfg.get(name) or {}
        )
    options = RunOptions(
        jobs=jobs,
        resources=[str(r) for r in resources],
        retries=retries,
        fail_fast=bool(cfg.get("fail_fast")) if args.fail_fast is None else True,
        force=args.force,
        backend_options=backend_options,
    )
    return options, name


def _warn_foreign_options(args: argparse.Namespace, name: str) -> None:
    """Another backend's options (`--pack`, `--slurm-opt` on a local run) do nothing here:
    say so once rather than ignore them silently."""
    for spec in registry.specs():
        given = [a.flags[0] for a in spec.run_args if getattr(args, a.dest, None) not in (None, [], False)]
        if spec.name != name and given:
            verb = "applies" if len(given) == 1 else "apply"
            print(
                f"mrl: warning: {', '.join(given)} only {verb} to `--backend {spec.name}`: "
                f"ignored by the {name} backend",
                file=sys.stderr,
            )


# -- the plan ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a run will do: the jobs to run, and what it leaves alone and why."""

    exp: Experiment
    jobs: list[Job]
    selected: int
    done: list[Job] = field(default_factory=list)  # skipped: done (no --force)
    active: list[Job] = field(default_factory=list)  # skipped: running or queued elsewhere
    other: list[Job] = field(default_factory=list)  # skipped by --failed / --pending
    unreadable: list[Job] = field(default_factory=list)  # skipped: corrupt .mrl.status (fix or remove it)
    unknown: list[Job] = field(default_factory=list)  # skipped: a state this mrl does not know (no --force)
    # of `active`: a killed runner's step, unrecorded, still runs (or a live runner's, its records removed)
    orphaned: list[Job] = field(default_factory=list)
    gone: list[Gone] = field(default_factory=list)  # not run: their folders were removed as a run ran them
    narrowed_by: str = "--failed/--pending"  # the options that left `other` out, as given

    @property
    def refused(self) -> bool:
        """Something selected is not run, and will not be by running again as it is: exit 1."""
        return bool(self.unreadable or self.unknown or self.gone)


def plan(
    exp: Experiment,
    selection: str = "all",
    *,
    failed: bool = False,
    pending: bool = False,
    force: bool = False,
    orphans: Mapping[int, ownership.Unrecorded] | None = None,
    others: Mapping[int, str] | None = None,
) -> Plan:
    """Select, read the states, render every command (an error here runs nothing).
    `orphans` ({id: step}, `RunnerClaim.orphans`): live steps no record names, which may be
    a killed runner's; never run beside (unless their record says otherwise: `still_open`).
    `others` (`RunnerClaim.others`): live steps of other runners; they decide where no record is."""
    from metarunlog.execute import Command

    subs = exp.sub_experiments()
    removed = gone.entries(exp)  # folders a run saw removed as it ran them: nothing left to run
    if not subs and not removed:
        raise MrlError(f"experiment {exp.name} has no sub-experiments yet: run `mrl makebatch {exp.id}` first")
    jobs = [Job(sub) for sub in pick(subs, selection, [g.id for g in removed])]
    states = observe_any(exp, jobs)
    keep = narrow(states, failed=failed, pending=pending)
    named = set(selected(selection, [g.id for g in removed]))
    out = Plan(exp, [], len(jobs) + len(named), gone=[g for g in removed if g.id in named])
    out.narrowed_by = "/".join(o for o, given in (("--failed", failed), ("--pending", pending)) if given)
    for job, state, kept in zip(jobs, states, keep, strict=True):
        if job.unreadable:
            out.unreadable.append(job)
        elif not kept:
            out.other.append(job)
        elif state.active:
            out.active.append(job)
        elif orphans and job.id in orphans and ownership.still_open(orphans[job.id], job.status):
            job.message = orphans[job.id].blocks()
            out.active.append(job)
            out.orphaned.append(job)
        elif others and job.id in others and job.status is None:  # its records were removed as it ran
            job.message = (
                f"not run: its {others[job.id]} is still running (its .mrl.status and .mrl.lock were removed): "
                "wait for it to end"
            )
            out.active.append(job)
            out.orphaned.append(job)
        elif state is JobState.DONE and not force:
            out.done.append(job)
        elif state is JobState.UNKNOWN and not force and job.status is not None:
            job.message = unknown_note(job.status.unknown_state)  # a newer mrl's record: never overwritten unasked
            out.unknown.append(job)
        else:
            out.jobs.append(job)
    if out.jobs:
        command = Command.of(exp)
        for job in out.jobs:
            job.steps = command.render(job.sub)
            job.fingerprint = job.sub.fingerprint()  # of the params just rendered
    return out


# -- running -------------------------------------------------------------------------------------


@dataclass
class RunResult:
    states: list[JobState]
    interrupted: bool
    submitted_only: bool
    seconds: float
    hung_up: bool = False  # interrupted by SIGHUP (its terminal closed): exit 129
    skipped: int = 0
    changed: int = 0  # skipped: changed after planning (never run with the old commands)
    removed: int = 0  # of `changed`: their folders were removed during the run (nothing recorded)
    left_alone: int = 0  # of `not_run`: a plugin backend never ran them (`_never_ran`)
    not_run: int = 0  # could not be started (read-only, disk full): their records are earlier runs' (not in states)
    kept_done: int = 0  # done ones queued by --force, cancelled or dropped before they started (not in states)
    note: str = ""  # what the backend says of a submission (Slurm: the job id, the script)
    after_submitted: bool = False  # the backend scheduled run.after itself

    @property
    def ran_here(self) -> bool:
        """The run ended here, not interrupted: run.after runs now (a scheduler submits it)."""
        return not self.submitted_only and not self.interrupted and not self.after_submitted

    @property
    def waited_for_submitted_after(self) -> bool:
        """`--wait` on a scheduler that submitted run.after as a job: the wait goes on until
        that job ended too, as a local run's ends once run.after ran."""
        return not self.submitted_only and not self.interrupted and self.after_submitted

    @property
    def code(self) -> int:
        if self.interrupted:
            return 129 if self.hung_up else 130
        if self.submitted_only:
            return 0
        return 0 if all(s is JobState.DONE for s in self.states) and not self.changed and not self.not_run else 1

    @property
    def summary(self) -> str:
        from metarunlog.progress import counts_line, fmt_duration

        if self.submitted_only:
            note = f" {self.note}" if self.note else ""
            return f"mrl: {len(self.states)} submitted{note}; follow them with `mrl status --watch`"
        what = "interrupted" if self.interrupted else "finished"
        left = self.skipped - self.changed
        extra = f"; {left} left to another runner" if left else ""
        if self.changed - self.removed:
            extra += f"; {self.changed - self.removed} skipped: changed after planning"
        if self.removed:
            extra += f"; {self.removed} removed during the run: nothing of them left in their folders (see above)"
        if self.not_run - self.left_alone:
            extra += f"; {self.not_run - self.left_alone} not run: mrl could not record them (see above)"
        if self.left_alone:
            extra += f"; {self.left_alone} not run by the backend (see above): their records are earlier runs'"
        if self.kept_done:
            extra += f"; {self.kept_done} never started again (their records say done)"
        counts = counts_line(self.states)
        if self.interrupted:  # never started by this run: their records say what an earlier run left
            unstarted = sum(s is JobState.PENDING for s in self.states)
            started = counts_line([s for s in self.states if s is not JobState.PENDING])
            counts = ", ".join(part for part in (started, f"{unstarted} not started" if unstarted else "") if part)
        return f"mrl: {what} in {fmt_duration(self.seconds)}: {counts or 'nothing run'}{extra}"


def run(
    exp: Experiment,
    the_plan: Plan,
    *,
    backend_name: str = registry.DEFAULT,
    options: RunOptions | None = None,
    show: bool = False,
    claim: RunnerClaim | None = None,
) -> RunResult:
    """Run the plan's jobs to the end (or submit them, for a scheduler); `show` draws progress.

    With `claim` (this run's, see `owning`), `mrl cancel`'s requests reach it: the jobs it
    asks for are cancelled here (queued ones never start), and a run whose every
    remaining job was cancelled ends as an interrupted one (exit 130), unless each of them
    had in fact ended done (its last step over, see `_Cancels.cut_short`).
    """
    from metarunlog.execute import Heartbeat

    options = options or RunOptions()
    # One heartbeat thread per run (`run.heartbeat`): refreshes its claim and live records.
    heartbeat = options.heartbeat or Heartbeat(float(exp.cfg["run"].get("heartbeat") or DEFAULT_HEARTBEAT_S))
    options = dataclasses.replace(options, heartbeat=heartbeat)
    if claim is not None:
        heartbeat.add(claim.path)
    backend = get_backend(backend_name)(exp, options)
    jobs = the_plan.jobs
    t0 = time.monotonic()
    if claim is not None:
        claim.set_jobs([j.id for j in jobs])
    # What `mrl cancel` asked while this run planned is taken now (it then waits while this
    # run lives) and applied once the jobs are submitted: a submit that takes seconds (a
    # loaded machine, a scheduler) made it give up and say "nothing is running" of them.
    cancels = _Cancels(backend, jobs, claim)
    if backend.waits:  # (one that returns once queued answers none: `mrl cancel` stops them itself)
        cancels.take()
    _clear_done_mark(exp)
    # A backend from outside mrl may leave a job alone (never run it) and let its record,
    # an earlier run's, speak for it: each record as planned tells (see `_never_ran`).
    planned = {id(j): j.status for j in jobs} if plugins.is_foreign(backend) else None
    left_alone: set[int] = set()
    try:
        backend.submit(jobs)
    except BaseException:
        # nothing was submitted (a backend submits all or nothing): a refused --slurm-opt
        # must not leave `mrl ls` saying ** of an experiment whose every record says done
        _update_done_mark(exp)
        raise
    if not backend.waits:
        backend.poll(jobs)
        _say_warnings(backend)
        backend.close()
        heartbeat.close()
        return RunResult(
            [j.state for j in jobs],
            False,
            True,
            time.monotonic() - t0,
            note=backend.note,
            after_submitted=backend.submits_after,
        )
    progress = _progress(exp, jobs, backend, backend_name) if show else None
    try:
        _wait_all(backend, jobs, progress, cancels, name=backend_name, planned=planned, left_alone=left_alone)
    except KeyboardInterrupt:
        if backend.note:  # submitted to a scheduler: Ctrl-C leaves the wait, not the jobs
            print(f"mrl: left the wait; they go on {backend.note}: stop them with `mrl cancel`", file=sys.stderr)
        raise
    finally:
        backend.close()
        heartbeat.close()
    if progress is not None:
        progress.close(jobs)
    _update_done_mark(exp)
    ours = [j for j in jobs if not j.skipped]
    kept = [j for j in ours if _kept_done(j)]  # this run never ran them
    ours = [j for j in ours if not _kept_done(j)]  # (not `j not in kept`: n x k for 10,000 cancelled)
    return RunResult(
        [j.state for j in ours if not j.not_run],  # a not-run one's state is an earlier run's
        backend.interrupted or cancels.cut_short(),
        False,
        time.monotonic() - t0,
        skipped=sum(j.skipped for j in jobs),
        changed=sum(j.changed for j in jobs),
        removed=sum(j.removed for j in jobs),
        not_run=sum(j.not_run for j in ours),
        left_alone=len(left_alone),
        kept_done=len(kept),
        hung_up=backend.hung_up,
        note=backend.note,
        after_submitted=backend.submits_after,
    )


@dataclass
class _Cancels:
    """`mrl cancel`'s requests to this run (files next to its claim), applied between polls."""

    backend: Backend
    jobs: list[Job]
    claim: RunnerClaim | None
    cancelled: set[int] = field(default_factory=set)
    unstarted: set[int] = field(default_factory=set)  # cancelled while queued: they never ran
    all_cancelled: bool = False
    taken: list[tuple[Path, set[int]]] = field(default_factory=list)  # taken by `take`, not applied yet
    serving: bool = False  # the claim says this run answers requests (`RunnerClaim.serve`)

    def take(self) -> None:
        """Take the requests waiting now (`mrl cancel` then waits for the answer while this
        run lives); `apply` answers them."""
        if self.claim is not None:
            self.taken += self.claim.take_requests()

    def apply(self) -> None:
        if self.claim is None:
            return
        if not self.serving:  # from now on `mrl cancel` counts the time this run takes to answer
            self.claim.serve()
            self.serving = True
        self.take()
        requests, self.taken = self.taken, []
        for request, ids in requests:
            hit = [j for j in self.jobs if j.id in ids and not _ended(j)]
            self.unstarted |= {j.id for j in hit if j.state is JobState.QUEUED}
            self.backend.cancel(hit)
            self.cancelled |= {j.id for j in hit}
            # a done one queued by --force reads `done` again: `mrl cancel` must say why
            notes = {j.id: j.message for j in hit if _kept_done(j) and j.message}
            self.claim.answer(request, sorted(j.id for j in hit), notes)
            if hit and all(_ended(j) or j.id in self.cancelled for j in self.jobs):
                self.all_cancelled = True  # nothing of this run was left: it was cancelled

    def cut_short(self) -> bool:
        """The run ends as an interrupted one: all it had left was cancelled, and something was
        in fact stopped (never started, or ended cancelled). A job whose last step had already
        ended (its slot waiting for what that step left behind) ends as that step did: a run
        whose every job ended done is finished."""
        asked = [j for j in self.jobs if j.id in self.cancelled]
        return self.all_cancelled and any(j.id in self.unstarted or j.state is JobState.CANCELLED for j in asked)


def _ended(job: Job) -> bool:
    """Nothing left to cancel: finished, skipped, or its final record already in place (the
    local pool counts it ended only once that record is durable, a moment later)."""
    in_place = job.state is JobState.RUNNING and job.status is not None and job.status.state.finished
    return job.state.finished or job.skipped or in_place


def _kept_done(job: Job) -> bool:
    """A done one queued by --force and cancelled before it started: its record stays done."""
    return job.unstarted and job.state is JobState.DONE


def _say_warnings(backend: Backend) -> None:
    """What the backend met (a late sbatch answer, an unreachable controller), said once."""
    for warning in backend.warnings:
        print(f"mrl: warning: {warning}", file=sys.stderr, flush=True)
    backend.warnings.clear()


STOPPING_NOTE_S = 2.0  # after Ctrl-C, how long steps may take to stop before mrl says who is left


def _wait_all(
    backend: Backend,
    jobs: list[Job],
    progress: Any,
    cancels: _Cancels | None = None,
    name: str = "",
    planned: Mapping[int, Any] | None = None,
    left_alone: set[int] | None = None,
) -> None:
    interrupted_at: float | None = None
    while True:
        if cancels is not None:
            cancels.apply()
        states = _polled(backend, jobs, name)
        if planned is not None:
            _never_ran(jobs, planned, name or backend.name, left_alone if left_alone is not None else set())
        _say_warnings(backend)
        if progress is not None:
            progress.update(jobs)
        if not any(s.active for s, j in zip(states, jobs, strict=True) if not j.skipped):
            return
        if backend.interrupted and interrupted_at is None:
            interrupted_at = time.monotonic()
        elif interrupted_at is not None and time.monotonic() - interrupted_at > STOPPING_NOTE_S:
            _say_stopping([j for s, j in zip(states, jobs, strict=True) if s.active and not j.skipped])
            interrupted_at = float("inf")  # once
        backend.wait(0.2)


def _polled(backend: Backend, jobs: list[Job], name: str) -> list[JobState]:
    """`backend.poll(jobs)`: one JobState per job. A backend from outside mrl answering anything
    else is its error, one line naming it (mrl's own are trusted: no check per poll)."""
    states = backend.poll(jobs)
    if not plugins.is_foreign(backend):
        return states
    what = f"the {name or backend.name or type(backend).__name__} backend's poll(jobs)"
    if not isinstance(states, (list, tuple)):
        raise plugins.PluginError(f"{what} returned {_a(type(states).__name__)}, not a list of one JobState per job")
    if len(states) != len(jobs):
        raise plugins.PluginError(f"{what} returned {len(states)} state(s) for {len(jobs)} job(s): one per job")
    for state, job in zip(states, jobs, strict=True):
        if not isinstance(state, JobState):
            raise plugins.PluginError(
                f"{what} returned {state!r} ({type(state).__name__}) for {job.name}, not a JobState "
                "(metarunlog.states.JobState; job.observe() gives it from the job's record)"
            )
    return list(states)


def _never_ran(jobs: list[Job], planned: Mapping[int, Any], name: str, found: set[int]) -> None:
    """Jobs that read finished while their record is still the one this run planned with
    (an earlier run's: every execution writes a new one as it starts) were not run by this
    run: a plugin backend that left them alone (under --force, a done one read `done`).
    They are said `not run`, never counted as this run's outcome; their ids go to `found`."""
    for job in jobs:
        ended = job.state.finished and not job.skipped and not job.not_run
        if ended and job.status is not None and job.status == planned.get(id(job)):
            job.not_run = True
            job.message = f"the {name} backend did not run it"
            found.add(job.id)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _say_stopping(left: list[Job]) -> None:
    """A step that traps or ignores SIGTERM keeps the run waiting: say so, and how to end it."""
    print(
        f"mrl: {len(left)} step(s) still stopping after SIGTERM ({_names(left)}); Ctrl-C again kills them (SIGKILL)",
        file=sys.stderr,
    )


def _progress(exp: Experiment, jobs: list[Job], backend: Backend, name: str) -> Any:
    from metarunlog.progress import Progress

    return Progress(jobs, _slots(backend, name), tail=int(exp.cfg["run"].get("log_tail") or 20))


def _slots(backend: Backend, name: str) -> Any:
    """`backend.slots`; from a backend outside mrl, anything but a list of names (str, or None
    for a worker without a resource) is its error (an int was a TypeError traceback)."""
    slots = backend.slots
    if not plugins.is_foreign(backend):
        return slots
    if isinstance(slots, (list, tuple)) and all(s is None or isinstance(s, str) for s in slots):
        return slots
    raise plugins.PluginError(
        f"the {name} backend's slots is {slots!r} ({type(slots).__name__}), not a list of its workers' "
        "resource names (str, or None for a worker without one; () shows no worker lines)"
    )


def _clear_done_mark(exp: Experiment) -> None:
    # some sub-experiment is about to run again: the experiment is not done (another
    # runner may remove it at the same moment)
    (exp.dir / DONE_MARK).unlink(missing_ok=True)


def _update_done_mark(exp: Experiment) -> None:
    """After the jobs: a folder that went read-only or full mid-run must not take the run's
    own lines and summary with it; a mark that cannot follow is one warning line."""
    from metarunlog.error_handler import ENVIRONMENT_ERRNOS, environment_message
    from metarunlog.execute import update_done_marker

    try:
        update_done_marker(exp)
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        warning = f"`mrl ls` may show this experiment's ** wrongly: {environment_message(e)}"
        print(f"mrl: warning: {warning}", file=sys.stderr)


# -- printing ------------------------------------------------------------------------------------


def _print_provenance(project: Project, exp: Experiment, args: argparse.Namespace) -> None:
    """Once per run: the pinned run block when the project's differs, and the pinned
    commit when HEAD has moved past it (with the `mrl rerun` that runs the new code)."""
    from metarunlog.provenance import head_note, run_block_note

    # The rerun that takes the same param sets: a SELECTION and --failed narrow each other.
    chosen = [args.selection] if args.selection not in (None, "all") else []
    selection = " ".join([*chosen, *(["--failed"] if args.failed else [])])
    for note in (run_block_note(project, exp), head_note(project, exp, selection)):
        if note:
            print(f"mrl: note: {note}", file=sys.stderr)


def _print_plan(p: Plan, backend_name: str, options: RunOptions) -> None:
    notes = []
    if p.done:
        notes.append(f"{len(p.done)} done (--force reruns them)")
    if p.active:
        notes.append(f"{len(p.active)} running or queued elsewhere ({_names(p.active)})")
    if p.other:
        notes.append(f"{len(p.other)} not matching {p.narrowed_by}")
    if p.unreadable:
        notes.append(f"{len(p.unreadable)} with an unreadable .mrl.status ({_names(p.unreadable)})")
    if p.unknown:
        notes.append(f"{len(p.unknown)} in a state this mrl does not know ({_names(p.unknown)})")
    if p.gone:
        notes.append(f"{len(p.gone)} whose folders were removed as a run ran them")
    for line in gone.lines(p.gone, "not run"):
        print(f"mrl: warning: {line}", file=sys.stderr)
    for job in p.unreadable[:5]:
        print(f"mrl: warning: {job.name} not run: {job.unreadable}", file=sys.stderr)
    for job in p.unknown[:5]:
        print(f"mrl: warning: {job.name} not run: {job.message}", file=sys.stderr)
    for job in p.orphaned[:5]:
        print(f"mrl: warning: {job.name} {job.message}", file=sys.stderr)
    skip = f"; skipping {', '.join(notes)}" if notes else ""
    if not p.jobs:
        print(f"mrl: nothing to run in {p.exp.name}{skip}")
        return
    # -j 10000000 on 3 jobs starts 3 workers: say so
    workers = dataclasses.replace(options, jobs=min(options.jobs, len(p.jobs)))
    with registry.blamed(backend_name):
        where = get_backend(backend_name).where(workers)
    print(f"mrl: running {len(p.jobs)} of {p.selected} in {p.exp.dir} on {where}{skip}", flush=True)


def _names(jobs: list[Job]) -> str:
    names = [j.name for j in jobs[:5]]
    return ", ".join(names) + (", ..." if len(jobs) > 5 else "")


def _run_after(exp: Experiment, code: int) -> int:
    """run.after, once a run ended here (the Slurm backend submits it as a job instead);
    the run's exit `code`, or 1 when run.after failed."""
    from metarunlog import after

    steps = after.steps(exp)
    if not steps:
        return code
    print(f"mrl: run.after: {' && '.join(steps)}", flush=True)
    after_code = after.run_here(exp, steps)
    if after_code != 0:
        print(f"mrl: run.after failed (exit code {after_code})", file=sys.stderr)
        return code or 1
    return code


AFTER_POLL_S = 1.0  # `--wait`: how often the run.after job is asked about


def _await_after_job(exp: Experiment, jobs: list[Job], code: int) -> int:
    """`--wait` with a run.after job (Slurm): its line each time it changes, until it ended;
    the run's exit `code`, or 1 when the job did not end done. Ctrl-C leaves the job alone."""
    statuses = [j.status for j in jobs]
    said = ""
    try:
        while True:
            after = follow_ups(exp, statuses)
            line = "; ".join(f.describe() for f in after)
            if line and line != said:
                print(f"mrl: {line}", flush=True)
                said = line
            if not any(f.state.active for f in after):
                break
            time.sleep(AFTER_POLL_S)
    except KeyboardInterrupt:
        print("mrl: left the wait; the run.after job goes on: `mrl status` shows it", file=sys.stderr)
        raise
    return (code or 1) if any(f.state is not JobState.DONE for f in after) else code


def _print_dry_run(p: Plan, backend: Backend | None = None) -> int:
    scripts = backend.dry_run(p.jobs) if backend is not None and p.jobs else None
    if scripts is not None:
        sys.stdout.write(scripts if scripts.endswith("\n") else scripts + "\n")
        return 0
    lines = [f"# {len(p.jobs)} of {p.selected} would run; {len(p.done)} done, {len(p.active)} running elsewhere"]
    from metarunlog.execute import resume_at

    for job in p.jobs:
        first = 0 if job.state is JobState.DONE else resume_at(job.status, job.steps)
        for k, step in enumerate(job.steps):
            lines.append(f"{job.name}: {step}" + ("  # done, skipped" if k < first else ""))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
