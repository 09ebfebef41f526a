"""Show an experiment's record (.mrl), its folder and its sub-experiment count.

`mrl info EXP/SUB` (2/3, or a sub-experiment folder's path) shows that sub-experiment: its
folder, params and its .mrl.status record (state and note as `mrl status` shows them: a
Slurm record merged with what the scheduler says).

--verify re-hashes the experiment's code/ snapshot against its commit (plus .mrl.diff for
a --notclean experiment) and lists every file changed, missing or added since `mrl new`
(exit 1 if any). It needs the project's git repository, which holds the commit.
Writes nothing, except what `mrl status` writes too: Slurm's final word on a task that
ended without its record saying so (a scancel, a time limit), when the folder is writable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from metarunlog.errors import MrlError
from metarunlog.experiment import CODE, DIFF, RECORD, Experiment, SubExperiment
from metarunlog.fmt import printable
from metarunlog.project import Project

HELP = "show an experiment's record; --verify checks code/ against its commit"


def RESOLVES_EXP(args: argparse.Namespace) -> bool:  # noqa: N802 (main's per-command flag)
    """main resolves EXP before the hooks run, except for --verify (`verify_target`: EXP
    may be a copy of an experiment outside the outdir)."""
    return not getattr(args, "verify", False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "expId",
        nargs="?",
        metavar="EXP",
        help="experiment (default: the one you are in, else the newest); EXP/SUB (2/3) or a sub-experiment "
        "folder's path: that sub-experiment",
    )
    p.set_defaults(sub_selection=None)  # main resolves EXP/SUB into expId and this
    add_options(p)


def add_options(p: argparse.ArgumentParser) -> None:
    """Options shared with `mrl last` (= `mrl info last`); one of them at a time (each
    prints something else)."""
    one = p.add_mutually_exclusive_group()
    one.add_argument("--json", action="store_true", help="print the record as JSON")
    one.add_argument("--path", action="store_true", help="print only the experiment's folder")
    one.add_argument(
        "--verify",
        action="store_true",
        help="re-hash code/ against the commit: list files changed, missing or added (exit 1 if any)",
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    if args.verify:
        return verify_cli(project, verify_target(project, args.expId))
    exp = project.load_exp(args.expId)
    if getattr(args, "sub_selection", None) is not None:  # mrl last has none
        return sub_cli(args, pick_one(exp, args.sub_selection))
    if args.path:
        print(exp.dir)
        return 0
    info = {"path": str(exp.dir), **exp.record, "subExperiments": len(exp.sub_experiments()), "done": exp.is_done}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    if "run" not in info:  # made before mrl pinned run blocks
        info["run"] = "(none pinned: the project's .mrl.cfg run block applies)"
    _print_info(_with_run_override(exp, info))
    return 0


def pick_one(exp: Experiment, spec: str) -> SubExperiment:
    """The one sub-experiment `spec` names (`mrl info 2/3`); several is an error saying what
    shows them."""
    from metarunlog.selection import ALL, pick

    subs = pick(exp.sub_experiments(), spec)
    if spec == ALL or len(subs) != 1:
        raise MrlError(
            f"mrl info shows one sub-experiment, and {exp.name}/{spec} names {len(subs)}: give one, like "
            f"`mrl info {exp.id}/{subs[0].id if subs else 1}` (`mrl table {exp.id}/{spec}` or "
            f"`mrl status {exp.id}/{spec}` show several)"
        )
    return subs[0]


def sub_info(sub: SubExperiment, *, text: bool = False) -> dict[str, Any]:
    """What `mrl info EXP/SUB` shows: folder, ids, params, and the status record with the
    state and note `mrl status` shows (a dead local run: stale; Slurm's word merged in: a
    task cancelled while queued), from the same rows. When its backend could not be asked
    (the controller down), the note says so and, for the `text` view, the state reads
    `running (last recorded)`: never claimed as the state now (--json keeps the value)."""
    from metarunlog.backends.base import Job, observe_any
    from metarunlog.commands.status import note

    job = Job(sub)
    observe_any(sub.exp, [job])
    record = job.status.to_json() if job.status is not None else {}
    info = {"path": str(sub.dir), "experiment": sub.exp.name, "subExpId": sub.id, "params": sub.own_params}
    shown = job.state.value + (" (last recorded)" if text and job.unread is not None else "")
    info |= {**record, "state": shown}
    return info | ({"note": n} if (n := note(job)) else {})


def sub_cli(args: argparse.Namespace, sub: SubExperiment) -> int:
    if args.path:
        print(sub.dir)
        return 0
    info = sub_info(sub, text=not args.json)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    _print_info(info)
    return 0


def _print_info(info: dict[str, Any]) -> None:
    width = max(len(k) for k in info)
    for k, v in info.items():
        if isinstance(v, (list, dict)):
            v = json.dumps(v, default=str)
        print(f"{k:<{width}} : {'' if v is None else printable(str(v))}")


def _with_run_override(exp: Experiment, info: dict[str, Any]) -> dict[str, Any]:
    """`runOverride` right after `run` when EXPDIR/.mrl.cfg sets run keys: those replace the
    pinned ones when it runs, so the pinned block alone is not what runs."""
    from metarunlog.config import CFG_NAME, read_cfg_file

    path = exp.dir / CFG_NAME
    if not path.is_file():
        return info
    try:
        run = read_cfg_file(path).get("run")
    except MrlError as e:
        run = f"({e})"
    if not run:
        return info
    shown = json.dumps(run) if isinstance(run, dict) else str(run)
    out: dict[str, Any] = {}
    for k, v in info.items():
        out[k] = v
        if k == "run":
            out["runOverride"] = f"{shown} (from {exp.name}/{CFG_NAME}: over the pinned run block, what runs)"
    return out


def verify_target(project: Project, ref: str | None) -> Experiment:
    """The experiment to verify: as `load_exp`, but a copy of one outside the outdir (rsync
    to a backup, `cp -a` elsewhere) is verified where it is: the cwd's, or the one `ref`
    names by its path. A path inside an experiment (its code/, a file of code/, its .mrl)
    names the experiment it is in: code/ is verified whole, as its commit holds it."""
    from metarunlog.experiment import is_id
    from metarunlog.project import LAST
    from metarunlog.selection import sub_target

    if ref is not None and (target := sub_target(project, ref)) is not None:
        raise MrlError(
            f"--verify checks an experiment's code/, which its sub-experiments share: "
            f"`mrl info --verify {target[0].id}`"
        )
    if ref is not None and (is_id(ref) or ref == LAST):
        return project.load_exp(ref)
    path = Path(ref) if ref is not None else Path.cwd()
    copy = project.copy_containing(path)
    if copy is not None:
        return copy
    found = project.experiment_containing(path) if ref is not None and os.path.lexists(path) else None
    return project.load_exp(found.id if found is not None else ref)


def _hook_clone(exp: Experiment) -> tuple[str, ...]:
    """(".git",) for an experiment made before mrl wrote code/ itself (its record has no
    `snapshot`), whose code/ is the clone the original's after_new hook made: its .git is
    not part of the commit's tree, and would be listed file by file as added."""
    return (".git",) if not exp.record.get("snapshot") and (exp.dir / CODE / ".git").is_dir() else ()


def _made_elsewhere(project: Project, repo: Path, exp: Experiment, commit: str) -> None:
    """An experiment of another project (given by its path) is verified against the
    repository that holds its commit: its own project's, not the one mrl runs in. Said
    so, rather than "history rewritten" (which is what a missing commit means here)."""
    from metarunlog import git

    basedir = exp.record.get("basedir")
    if not isinstance(basedir, str) or Path(basedir).resolve() == project.basedir.resolve():
        return
    if Path(basedir).is_dir() and not git.has_commit(repo, commit):
        raise MrlError(
            f"{exp.dir} was made in another project ({basedir}), whose repository holds its commit "
            f"{commit[:10]}: run `mrl verify {exp.dir}` there"
        )


def verify_cli(project: Project, exp: Experiment) -> int:
    """Print what differs between `exp`'s code/ and its commit; 1 if anything does."""
    from metarunlog import git, snapshot

    repo = git.toplevel(project.basedir) or project.basedir  # code/ is the repository's whole tree
    commit = exp.record.commit or ""
    if not commit:
        raise MrlError(f"{exp.dir / RECORD} names no gitHash: there is no commit to verify code/ against")
    diff = exp.dir / DIFF if exp.record.get("dirty") else None
    if diff is not None and not diff.is_file():
        raise MrlError(
            f"{exp.name} was made with --notclean, but its {DIFF} is gone: code/ is commit {commit[:10]} plus "
            "that diff, so it cannot be verified"
        )
    _made_elsewhere(project, repo, exp, commit)
    skip = _hook_clone(exp)
    files, found = snapshot.verify(repo, commit, exp.dir / CODE, diff, skip=skip)
    if skip:
        print(
            f"mrl: {exp.name}: code/.git not compared (a clone made by an after_new hook: {exp.name} "
            "predates mrl's own snapshots)",
            file=sys.stderr,
        )
    against = f"commit {commit[:10]}" + (f" + {DIFF}" if diff is not None else "")
    try:
        for d in found:
            # one line a difference: a name's newline or ESC escaped, as the warnings write them
            detail = f"  ({d.detail})" if d.detail and d.detail != "content" else ""
            print(f"{d.kind:<8} {printable(d.path)}{detail}")
    except BrokenPipeError:  # `mrl verify | head -1`: the verdict is the exit code, whoever stopped reading
        from metarunlog.error_handler import drop_stdout

        drop_stdout()
    if not found:
        print(f"{exp.name}: code/ matches {against} ({files} files)")
        return 0
    counts = ", ".join(
        f"{sum(d.kind == k for d in found)} {k}"
        for k in ("changed", "missing", "added")
        if any(d.kind == k for d in found)
    )
    print(f"mrl: {exp.name}: code/ differs from {against}: {counts}", file=sys.stderr)
    return 1
