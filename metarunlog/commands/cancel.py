"""Stop running or queued sub-experiments, wherever they run.

Local ones: their process group gets SIGTERM and SIGCONT (SIGKILL after 10 s); the
`mrl run` running them marks them cancelled in .mrl.status, or this command does when that
runner is gone.
Slurm ones: `scancel` of their array tasks. A plugin backend's: its cancel(), then up to its
`cancel_wait` (15 s) for them to end. Finished and pending ones are left alone.
Cancelling the whole experiment (no SELECTION, or all of it) also cancels the run.after
job of a Slurm run that has not ended (else it would start once the arrays are cancelled).
A cancelled sub-experiment runs again with the next `mrl run` (or `mrl run --failed`).
Writes: the `cancelled` state into each stopped one's .mrl.status (when no runner does);
SUBDIR/.mrl.cancel for one in a packed Slurm task (the task stops or skips it; the next
submission of it removes the mark); a request to a live `mrl run` in EXPDIR/.mrl.owners/,
removed once answered.

Prints each sub-experiment's state now (`002: cancelled`; one asked to stop that has not
ended yet: `001: running (asked to stop; still running after 15 s: ...)`), or, for more than 20, a line
per state naming them as a selection (`cancelled: 9998 (1-9998)`), those with a note, and
the counts. Exit code 0 when nothing asked is still running or queued, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from metarunlog.backends.base import FollowUp, Job, RunOptions, follow_ups, get_backend, observe_any
from metarunlog.backends.registry import DEFAULT, blamed
from metarunlog.commands._args import add_target_arguments
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment, SubExperiment
from metarunlog.ownership import removed_folders_steps, unrecorded
from metarunlog.project import Project
from metarunlog.selection import pick, selected
from metarunlog.states import JobState

if TYPE_CHECKING:
    from metarunlog.ownership import Claim

HELP = "stop running or queued sub-experiments (local or Slurm)"
SHOWN = 20  # sub-experiments named one by one; beyond, a line per outcome
RUNNER_ANSWER_S = 5.0  # how long a live `mrl run` gets to answer a cancel request
TAKEN_WAIT_S = 120.0  # ... once it took it (and says so), while it lives
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
    lines = report(exp, res.asked) + [follow.describe() for follow in res.follow_ups]
    sys.stdout.write("".join(line + "\n" for line in lines))
    # 0: nothing it was asked to stop is running or queued any more; 1: something is
    return 0 if not res.left and not any(f.state.active for f in res.follow_ups) else 1


def report(exp: Experiment, asked: list[Job]) -> list[str]:
    """What `mrl cancel` prints: a line per sub-experiment (`002: cancelled`) for up to
    SHOWN of them; for more, a line per outcome naming them as a selection
    (`cancelled: 9998 (1-9998)`), those with a note one by one (up to SHOWN), and a
    summary line of the counts, as `mrl run` ends."""
    from metarunlog.progress import counts_line
    from metarunlog.selection import spec_of

    def line(job: Job) -> str:
        return f"{job.name}: {job.state}" + (f" ({job.message})" if job.message else "")

    if len(asked) <= SHOWN:
        return [line(job) for job in asked]
    by_state: dict[JobState, list[int]] = {}
    for job in asked:
        by_state.setdefault(job.state, []).append(job.id)
    out = [f"{state}: {len(ids)} ({spec_of(ids)})" for state, ids in by_state.items()]
    noted = [job for job in asked if job.message]
    out += [line(job) for job in noted[:SHOWN]]
    if len(noted) > SHOWN:
        out.append(f"... and {len(noted) - SHOWN} more with a note (`mrl status {exp.id}` shows each)")
    return out + [f"mrl: {len(asked)} asked to stop in {exp.name}: {counts_line([j.state for j in asked])}"]


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
    # live steps whose folders were removed as they ran: `mrl status` shows them running
    removed = removed_folders_steps(exp, {s.id for s in subs})
    jobs = [Job(sub) for sub in pick(subs, selection, list(removed))]
    loose = selected(selection, sorted(removed))
    by_runner = _ask_runners(exp, {j.id for j in jobs} | set(loose))
    observe_any(exp, jobs)
    for job in jobs:  # the runner's word on one whose state alone misleads (done again)
        if by_runner.get(job.id) and not job.state.active and not job.message:
            job.message = by_runner[job.id]
    _wait_not_running([j for j in jobs if j.id in by_runner and j.state.active])
    gap = unrecorded(exp, jobs)  # steps a runner killed with -9 left with no record naming them
    res = CancelResult(
        asked=[j for j in jobs if j.id in by_runner or j.state.active or j.state is JobState.STALE],
        unreadable=[j for j in jobs if j.unreadable],
    )
    if len(jobs) == len(subs):  # first: cancelled arrays would let an `afterany` job start
        res.follow_ups = follow_ups(exp, [j.status for j in jobs], cancel=True)
    by_backend: dict[str, list[Job]] = {}
    if gap:
        from metarunlog.backends.local import stop_unrecorded

        stop_unrecorded(gap)
    for job in res.asked:
        if (job.id in by_runner and not job.state.active) or job in gap:
            continue  # its runner cancelled it, or it was stopped above
        by_backend.setdefault(job.status.backend if job.status else DEFAULT, []).append(job)
    waits: dict[Job, float] = {}
    for name, group in by_backend.items():
        with blamed(name):
            backend = get_backend(name)(exp, RunOptions())
            backend.cancel(group)
            waits.update(dict.fromkeys(group, float(backend.cancel_wait)))  # a plugin's attribute: its fault
    # what the runners cancelled was seen ended above: read again only what was stopped here
    stopped_here = [j for group in by_backend.values() for j in group]
    observe_any(exp, stopped_here)
    _wait_stopped(exp, {j: waits[j] for j in stopped_here if j.state.active and not j.message and waits[j] > 0})
    res.asked = sorted(
        res.asked + [_folder_removed(exp, i, removed[i], i in by_runner) for i in loose], key=lambda j: j.id
    )
    res.left = [j for j in res.asked if j.state.active]
    return res


def _folder_removed(exp: Experiment, sub_id: int, step: str, stopped: bool) -> Job:
    """A job for a live step whose folder was removed as it ran: its runner stopped it, or not."""
    name = exp.cfg["subExpFormat"].format(subExpId=sub_id, expId=exp.id)
    job = Job(SubExperiment(exp, sub_id, name, exp.subexp_dir(sub_id)))
    if stopped:
        job.state, job.message = JobState.CANCELLED, "its folder was removed as it ran; its runner stopped its step"
    else:
        job.state, job.message = JobState.RUNNING, f"its {step} is still running (its folder was removed as it ran)"
    return job


def _wait_stopped(exp: Experiment, waits: dict[Job, float]) -> None:
    """A backend's `cancel()` may return once it has asked (a plugin's that only signals):
    its jobs still read running, and printed so, the cancel looked as if it had not
    worked. Each job is read again until it is no longer active, up to its backend's
    `cancel_wait` seconds; one still active then says so, and how long it was given."""
    start = time.monotonic()
    jobs = list(waits)
    while jobs:
        waited = time.monotonic() - start
        for job in [j for j in jobs if waited >= waits[j]]:
            job.message = (
                f"asked to stop; still {job.state} after {waits[job]:g} s: `mrl status {exp.id}` shows when it ends"
            )
            jobs.remove(job)
        if jobs:
            time.sleep(0.05)
            observe_any(exp, jobs)
            jobs = [j for j in jobs if j.state.active]


def _ask_runners(exp: Experiment, ids: set[int]) -> dict[int, str]:
    """Ask each live runner of `exp` on this machine to cancel its jobs among `ids`; wait
    for their answers. Returns the ids the runners said they cancelled, each with the
    runner's note on it ("cancelled before it started"; "" for none)."""
    from metarunlog import ownership

    asked: dict[Path, _Asked] = {}
    for claim in ownership.live_runners(exp):
        # one still planning (no .jobs yet) is asked for all of `ids`: it takes the request
        # once it starts and cancels what of them is its own (it said "nothing is running"
        # and the runner went on to run them all)
        planned = ownership.planned(claim)
        mine = ownership.runner_jobs(claim) & ids if planned else ids
        if mine:
            now = time.monotonic()
            serving = ownership.serving(claim)
            try:
                request = ownership.request_cancel(claim, mine)
            except OSError as e:  # read-only, full: that runner cannot be asked
                for made in asked:
                    ownership.withdraw(made)
                raise _unaskable(claim, e) from e
            asked[request] = _Asked(claim, now, now if serving else None)
    cancelled: dict[int, str] = {}
    while asked:
        for request, a in list(asked.items()):
            answer = ownership.answer_with_notes(request)
            if answer is not None:
                cancelled.update(answer)
                del asked[request]
            elif not _still_waiting(request, a):
                # not taken in time, or its runner is gone: we stop its jobs ourselves
                ownership.withdraw(request)
                del asked[request]
        if asked:
            time.sleep(0.02)
    return cancelled


def _unaskable(claim: Claim, e: OSError) -> MrlError:
    """What to do when a request to a runner cannot be written: stop that runner itself."""
    from metarunlog.error_handler import environment_message

    return MrlError(
        f"cannot ask the mrl run (pid {claim.pid}) running it to cancel: {environment_message(e)}; "
        f"stop that run instead (Ctrl-C in its terminal, or `kill {claim.pid}`): it cancels what it runs"
    )


@dataclass
class _Asked:
    """A request to a runner: when it was made, and when that runner was first seen serving
    requests (`ownership.serving`: it has planned and submitted)."""

    claim: Claim
    at: float
    served_at: float | None


def _still_waiting(request: Path, a: _Asked) -> bool:
    """While its runner lives: while it plans and submits (up to TAKEN_WAIT_S: until it
    serves requests, `ownership.serving`), then as `_worth_waiting` says, counting from
    when it served (a submit that took seconds on a loaded machine ate the time it had to
    answer, and the cancel said "nothing is running" of what it went on to run)."""
    from metarunlog import ownership

    if not ownership.runner_alive(a.claim):
        return request.with_suffix(".done").exists()  # gone: its answer may have come last
    now = time.monotonic()
    if a.served_at is None:
        # it took the request: it serves, whether or not it could write `.serving` (a full disk)
        if not ownership.serving(a.claim) and not ownership.taken(request):
            return now - a.at < TAKEN_WAIT_S
        a.served_at = now
    return _worth_waiting(request, a.claim, now - a.served_at)


def _worth_waiting(request: Path, claim: Claim, waited: float) -> bool:
    """A runner answers within RUNNER_ANSWER_S (of having planned); one that took the
    request (it is stopping thousands, say) is waited for while it lives, up to
    TAKEN_WAIT_S: giving up on it then said "nothing is running" of what it went on to cancel."""
    from metarunlog import ownership

    if waited < RUNNER_ANSWER_S:
        return True
    return waited < TAKEN_WAIT_S and ownership.taken(request) and ownership.runner_alive(claim)


def _wait_not_running(jobs: list[Job]) -> None:
    """Wait until the runners' jobs among `jobs` (seen running) are no longer running (a
    runner sends SIGKILL after its grace)."""
    from metarunlog.backends.local import CANCEL_GRACE_S

    deadline = time.monotonic() + CANCEL_GRACE_S + RUNNER_ANSWER_S
    while jobs and time.monotonic() < deadline:
        jobs = [j for j in jobs if j.observe().active]
        if jobs:
            time.sleep(0.05)
