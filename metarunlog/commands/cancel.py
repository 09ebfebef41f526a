"""Stop running or queued sub-experiments, wherever they run.

Local ones: their process group gets SIGTERM (SIGKILL after 10 s); the `mrl run` running
them marks them cancelled in .mrl.status, or this command does when that runner is gone.
Slurm ones: `scancel` of their array tasks. Finished and pending ones are left alone.
A cancelled sub-experiment runs again with the next `mrl run` (or `mrl run --failed`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from metarunlog.backends.base import Job, RunOptions, get_backend, observe_any
from metarunlog.backends.registry import DEFAULT
from metarunlog.commands._args import add_target_arguments
from metarunlog.experiment import Experiment
from metarunlog.project import Project
from metarunlog.selection import pick
from metarunlog.states import JobState

HELP = "stop running or queued sub-experiments (local or Slurm)"
USAGE = "mrl cancel [EXP] [SELECTION]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    add_target_arguments(p, "cancel")


def cli(args: argparse.Namespace, project: Project) -> int:
    exp = project.load_exp(args.expId)
    res = cancel(exp, args.selection)
    if not res.asked:
        print(f"mrl: nothing is running or queued in {exp.name}")
        return 0
    for job in res.asked:
        extra = f" ({job.message})" if job.message else ""
        print(f"{job.name}: {job.state}{extra}")
    return 0 if not res.left else 1


@dataclass
class CancelResult:
    asked: list[Job] = field(default_factory=list)  # were active: cancel requested
    left: list[Job] = field(default_factory=list)  # still active afterwards


def cancel(exp: Experiment, selection: str = "all") -> CancelResult:
    """Cancel the active sub-experiments among `selection`; returns what was asked and what is left."""
    jobs = [Job(sub) for sub in pick(exp.sub_experiments(), selection)]
    observe_any(exp, jobs)
    res = CancelResult(asked=[j for j in jobs if j.state.active or j.state is JobState.STALE])
    by_backend: dict[str, list[Job]] = {}
    for job in res.asked:
        by_backend.setdefault(job.status.backend if job.status else DEFAULT, []).append(job)
    for name, group in by_backend.items():
        get_backend(name)(exp, RunOptions()).cancel(group)
    observe_any(exp, res.asked)
    res.left = [j for j in res.asked if j.state.active]
    return res
