"""Show the state of every sub-experiment of an experiment (or of a SELECTION: `2/1-4`).

Reads each sub-experiment's .mrl.status (no file: pending) and checks it against what is
true now: a `running` record whose process is gone (runner killed, machine rebooted) shows
as `stale`, and Slurm records are merged with what the scheduler says. One whose folder was
removed while a run ran it has a row too: `running` while its step runs, then `gone`,
with what that run kept of it in EXPDIR/.mrl.gone/ (docs/running.md). Prints the counts,
then one row per sub-experiment: id, state, attempts, duration, exit code, resource or
Slurm job, host, start; then the latest run's follow-up job (Slurm: `run.after: Slurm job
1240: queued; pending in Slurm (Dependency); its output: ...`). --json prints the same
rows as a JSON list, each with its `state`. --watch redraws until nothing is running or
queued, the run.after job included (Ctrl-C leaves); in a pipe it prints the counts and
the run.after line when they change; with --json it prints nothing until then, and then
the JSON list once.

Writes nothing, except EXPDIR/.mrl.done when it finds every sub-experiment done (a Slurm
run that finished after `mrl run` returned) and the folder is writable, and its removal
once a record no longer says done (a .mrl.status removed by hand); a .mrl.done you made
yourself (`touch`: empty, or text that is not mrl's timestamp) is kept. Of a Slurm run, it
also writes Slurm's final word into the .mrl.status of a task that ended without its record
saying so (a scancel, a time limit), and into the run.after job's record
(EXPDIR/.mrl.slurm/after-NNN.json), so they outlive Slurm's memory of the jobs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metarunlog.backends.base import FollowUp, Job, observe_any
from metarunlog.backends.base import follow_ups as backend_follow_ups
from metarunlog.commands._args import add_target_arguments
from metarunlog.experiment import DONE_MARK, Experiment
from metarunlog.ownership import records_removed, unrecorded
from metarunlog.project import Project
from metarunlog.records import Status
from metarunlog.selection import pick, selected
from metarunlog.states import JobState, unknown_note

HELP = "state of each sub-experiment (stale = its process is gone); --watch, --json"
COLUMNS = ["id", "state", "attempts", "duration", "exit", "where", "host", "start"]
WATCH_S = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_target_arguments(p, "show")
    p.add_argument("--json", action="store_true", help="a JSON list of rows, each the .mrl.status record plus state")
    p.add_argument(
        "--watch",
        action="store_true",
        help=f"redraw every {WATCH_S:g} s until nothing runs (with --json: wait, then print the JSON once)",
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    exp = project.load_exp(args.expId)
    if args.watch and not args.json:
        return _watch(exp, args.selection)
    rows = _until_settled(exp, args.selection) if args.watch else status(exp, args.selection)
    if args.json:
        sys.stdout.write(json.dumps([r.as_dict() for r in rows], indent=1, default=str) + "\n")
    else:
        sys.stdout.write(render(exp, rows, follow_ups(exp, rows)))
    return 0


def follow_ups(exp: Experiment, rows: list[Row]) -> list[FollowUp]:
    """What the backends of these rows scheduled after the latest run (Slurm's run.after job)."""
    return backend_follow_ups(exp, [r.status for r in rows])


@dataclass
class Row:
    """One sub-experiment: its id, folder name, state now, and its .mrl.status (None: never ran)."""

    id: int
    name: str
    state: JobState
    status: Status | None
    note: str = ""
    age: float | None = None  # the kill -9 gap: its step's age; `status` is an earlier attempt's (or None)
    unrecorded: bool = False

    def as_dict(self) -> dict[str, Any]:
        raw = self.status.to_json() if self.status is not None else {}
        if self.unrecorded:  # only what /proc proves; the record is an earlier attempt's, as such
            from metarunlog.procs import HOST

            out = {"id": self.id, "name": self.name, "recordedState": raw.get("state"), "unrecorded": True}
            out.update(duration=self.age, host=HOST, lastRecord=raw or None)
        else:
            out = {"id": self.id, "name": self.name, **raw, "recordedState": raw.get("state")}
        out["state"] = self.state.value
        if self.note:
            out["note"] = self.note
        return out


def status(exp: Experiment, selection: str | None = None) -> list[Row]:
    """The rows of `mrl status`: every selected sub-experiment with its observed state, and
    a row for each whose folder was removed while a run ran it (`removed_rows`)."""
    subs = exp.sub_experiments()
    removed = removed_rows(exp, {s.id for s in subs})
    picked = pick(subs, selection, [r.id for r in removed])
    jobs = [Job(sub) for sub in picked]
    observe_any(exp, jobs)
    gap = unrecorded(exp, jobs)  # a step a runner killed with -9 left with no record naming it
    records_removed(exp, jobs)  # a live runner's step that wiped its own folder: running, not pending
    rows = [Row(j.id, j.name, j.state, j.status, note(j)) for j in jobs]
    for row, job in zip(rows, jobs, strict=True):
        if job in gap:
            from metarunlog.procs import age_s

            row.unrecorded, row.age = True, age_s(gap[job].start)
    every = len(picked) == len(subs)  # a selection cannot tell that the experiment is done
    marked = (exp.dir / DONE_MARK).exists()
    all_done = bool(rows) and all(r.state is JobState.DONE for r in rows) and not removed
    if every and all_done != marked:
        _mark_done(exp, drop=marked)
    if removed:
        shown = set(selected(selection, [r.id for r in removed]))
        rows = sorted(rows + [r for r in removed if r.id in shown], key=lambda r: r.id)
    return rows


def removed_rows(exp: Experiment, present: set[int]) -> list[Row]:
    """Rows for the sub-experiments with no folder that a run saw removed as it ran them: a
    step of a live runner still running (its plan names it; /proc finds it), else what the
    runner kept of it once it saw it gone (`gone`: state `gone`, the record it was about to
    write as its last known one). Nothing to read unless a runner lives or a run kept one."""
    from metarunlog import gone
    from metarunlog.ownership import removed_folders_steps

    fmt = exp.cfg["subExpFormat"]
    running = removed_folders_steps(exp, present)
    rows = [
        Row(
            i,
            fmt.format(subExpId=i, expId=exp.id),
            JobState.RUNNING,
            None,
            f"its {d} is still running; its folder was removed as it ran",
        )
        for i, d in running.items()
    ]
    rows += [
        Row(g.id, g.name, JobState.GONE, g.last, g.note())
        for g in gone.entries(exp)
        if g.id not in present | set(running)
    ]
    return sorted(rows, key=lambda r: r.id)


def note(job: Job) -> str:
    """The note shown beside a row: what its backend said (`job.message`), else why mrl
    ended it or never started it (`Status.reason_shown`: a requeue limit, its packed task's
    time limit). `mrl info EXP/SUB` shows the same."""
    if job.state is JobState.UNKNOWN and job.status is not None and not job.message:
        return unknown_note(job.status.unknown_state)
    return job.message or (job.status.reason_shown(job.state) if job.status is not None else "")


def _mark_done(exp: Experiment, *, drop: bool = False) -> None:
    """`.mrl.done` for a run that finished after `mrl run` returned (Slurm); with `drop`,
    the one mrl wrote removed once a record no longer says done (a marker the user made is
    kept: `execute.drop_stale_done_marker`). Only where we may write: a read command works
    on a read-only experiment, writing nothing."""
    import contextlib
    import os

    from metarunlog.execute import drop_stale_done_marker, update_done_marker

    if os.access(exp.dir, os.W_OK):
        with contextlib.suppress(OSError):
            if drop:
                drop_stale_done_marker(exp)
            else:
                update_done_marker(exp)


def render(exp: Experiment, rows: list[Row], after: Sequence[FollowUp] = ()) -> str:
    """The counts, the table, the follow-up jobs (`run.after: Slurm job ...`), the first notes."""
    from metarunlog.fmt import cell_width, pad
    from metarunlog.progress import counts_line

    if not rows:
        return f"{exp.name}: no sub-experiments yet (run `mrl makebatch`)\n"
    head = f"{exp.name}: {len(rows)} sub-experiment(s): {counts_line([r.state for r in rows])}"
    table = [COLUMNS] + [_cells(r) for r in rows]
    # widths in terminal cells, so a wide resource or host name (显卡0) keeps the columns after it
    widths = [max(cell_width(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = [head] + ["  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    notes = [f"{r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + [f.describe() for f in after] + notes[:5]) + "\n"


def _cells(r: Row) -> list[str]:
    from metarunlog.fmt import fmt_duration

    if r.unrecorded:  # only what /proc proves: its record (attempts, exit code, start) is an earlier attempt's
        from metarunlog.procs import HOST

        return [r.name, r.state.value, "", fmt_duration(r.age), "", "", HOST, ""]
    st = r.status or Status()
    where = st.job_id or st.resource or ""
    start = (st.start or "")[:19].replace("T", " ")
    return [
        r.name,
        r.state.value,
        str(st.attempts or ""),
        fmt_duration(st.duration),
        "" if st.exit_code is None else str(st.exit_code),
        where,
        st.node or st.host or "",
        start,
    ]


def _until_settled(exp: Experiment, selection: str | None) -> list[Row]:
    """`--watch --json`: the rows once nothing runs (the run.after job included); printed
    once, so that stdout stays one JSON document."""
    while True:
        rows = status(exp, selection)
        if not any(r.state.active for r in rows) and not any(f.state.active for f in follow_ups(exp, rows)):
            return rows
        time.sleep(WATCH_S)


def _watch(exp: Experiment, selection: str | None = None) -> int:
    live = sys.stdout.isatty()
    last = ""
    while True:
        rows = status(exp, selection)
        after = follow_ups(exp, rows)
        text = render(exp, rows, after)
        # in a pipe: the counts and the run.after line, when they change (it is waited for)
        head = "\n".join([text.splitlines()[0], *(f.describe() for f in after)]) + "\n"
        if live:
            sys.stdout.write("\x1b[H\x1b[2J" + text)
        elif head != last:
            sys.stdout.write(head)
        last = head
        sys.stdout.flush()
        if not any(r.state.active for r in rows) and not any(f.state.active for f in after):
            return 0  # the run.after job too: its report is what one waits for
        time.sleep(WATCH_S)
