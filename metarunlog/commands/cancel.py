"""Stop running or queued sub-experiments, wherever they run.

Local ones: their process group gets SIGTERM (SIGKILL after 10 s); the `mrl run` running
them marks them cancelled in .mrl.status, or this command does when that runner is gone.
Slurm ones: `scancel` of their array tasks. Finished and pending ones are left alone.
Cancelling the whole experiment (no SELECTION, or all of it) also cancels the run.after
job of a Slurm run that has not ended (else it would start once the arrays are cancelled).
A cancelled sub-experiment runs again with the next `mrl run` (or `mrl run --failed`).
Writes: the `cancelled` state into each stopped one's .mrl.status (when no runner does).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from metarunlog.backends.base import FollowUp, Job, RunOptions, follow_ups, get_backend, observe_any
from metarunlog.backends.registry import DEFAULT, blamed
from metarunlog.commands._args import add_target_arguments
from metarunlog.experiment import Experiment
from metarunlog.project import Project
from metarunlog.selection import pick
from metarunlog.states import JobState

HELP = "stop running or queued sub-experiments (local or Slurm)"
RUNNER_ANSWER_S = 5.0  # how long a live `mrl run` gets to answer a cancel request
USAGE = "mrl cancel [EXP] [SELECTION]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    add_target_arguments(p, "cancel")


def cli(args: argparse.Namespace, project: Project) -> int:
    exp = project.load_exp(args.expId)
    res = cancel(exp, args.selection)
    for job in res.unreadable[:5]:
        print(f"mrl: warning: {job.name} left alone: {job.unreadable}", file=sys.stderr)
    if not res.asked and not res.follow_ups:
        print(f"mrl: nothing is running or queued in {exp.name}")
        return 0
    for job in res.asked:
        extra = f" ({job.message})" if job.message else ""
        print(f"{job.name}: {job.state}{extra}")
    for follow in res.follow_ups:
        print(follow.describe())
    return 0 if not res.left and not any(f.state.active for f in res.follow_ups) else 1


@dataclass
class CancelResult:
    asked: list[Job] = field(default_factory=list)  # were active: cancel requested
    left: list[Job] = field(default_factory=list)  # still active afterwards
    unreadable: list[Job] = field(default_factory=list)  # corrupt .mrl.status: nothing known to stop
    follow_ups: list[FollowUp] = field(default_factory=list)  # run.after jobs cancelled (the whole experiment)


def cancel(exp: Experiment, selection: str = "all") -> CancelResult:
    """Cancel the active sub-experiments among `selection`; returns what was asked and what is left.

    A live `mrl run` on this machine is asked to cancel its own (queued ones never start,
    running ones end cancelled); what no live runner answers for is stopped here.
    """
    subs = exp.sub_experiments()
    jobs = [Job(sub) for sub in pick(subs, selection)]
    by_runner = _ask_runners(exp, {j.id for j in jobs})
    observe_any(exp, jobs)
    res = CancelResult(
        asked=[j for j in jobs if j.id in by_runner or j.state.active or j.state is JobState.STALE],
        unreadable=[j for j in jobs if j.unreadable],
    )
    if len(jobs) == len(subs):  # first: cancelled arrays would let an `afterany` job start
        res.follow_ups = follow_ups(exp, [j.status for j in jobs], cancel=True)
    by_backend: dict[str, list[Job]] = {}
    for job in res.asked:
        if job.id in by_runner and not job.state.active:
            continue  # its runner cancelled it
        by_backend.setdefault(job.status.backend if job.status else DEFAULT, []).append(job)
    for name, group in by_backend.items():
        with blamed(name):
            get_backend(name)(exp, RunOptions()).cancel(group)
    observe_any(exp, res.asked)
    res.left = [j for j in res.asked if j.state.active]
    return res


def _ask_runners(exp: Experiment, ids: set[int]) -> set[int]:
    """Ask each live runner of `exp` on this machine to cancel its jobs among `ids`; wait
    until they are no longer running (the runner sends SIGKILL after its grace). Returns
    the ids the runners said they cancelled."""
    from metarunlog import ownership

    asked: dict[Path, set[int]] = {}
    for claim in ownership.live_runners(exp):
        mine = ownership.runner_jobs(claim) & ids
        if mine:
            asked[ownership.request_cancel(claim, mine)] = mine
    cancelled: set[int] = set()
    deadline = time.monotonic() + RUNNER_ANSWER_S
    while asked and time.monotonic() < deadline:
        for request in list(asked):
            answer = ownership.answer_of(request)
            if answer is not None:
                cancelled |= set(answer)
                del asked[request]
        time.sleep(0.02)
    for request in asked:  # no answer: that runner is stuck or gone; we stop its jobs ourselves
        ownership.withdraw(request)
    _wait_not_running(exp, cancelled)
    return cancelled


def _wait_not_running(exp: Experiment, ids: set[int]) -> None:
    from metarunlog.backends.local import CANCEL_GRACE_S

    jobs = [Job(s) for s in exp.sub_experiments() if s.id in ids]
    deadline = time.monotonic() + CANCEL_GRACE_S + RUNNER_ANSWER_S
    while jobs and time.monotonic() < deadline:
        jobs = [j for j in jobs if j.observe().active]
        if jobs:
            time.sleep(0.05)
