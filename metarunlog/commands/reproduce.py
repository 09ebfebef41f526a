"""Make an experiment again exactly as it was pinned: same commit, same changes, same run block.

`mrl reproduce 3` makes a new experiment whose code/ is experiment 3's pinned commit plus
its .mrl.diff (not HEAD; the working tree is not looked at), whose run block is the one
experiment 3 pinned (and its EXPDIR/.mrl.cfg, copied), and whose sub-experiments have the
same params (and ids) as the selected ones of 3, rendered from the config files copied
from 3. Then `mrl run` runs it, and `mrl diff 3 <new>` compares the two.

Writes OUTDIR/<id>/ as `mrl new` does (code/, .mrl, .mrl.note, config files; `last`),
with `"reproduces": {"expId": 3, "subExpIds": [...], "gitHash": "<the commit>"}` in .mrl,
and one sub-experiment folder per selected one. The commit must still be in the
repository.

Examples:
  mrl reproduce 3              all of experiment 3
  mrl reproduce 3 2,5          two of its sub-experiments
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from metarunlog import git
from metarunlog.commands._args import add_target_arguments
from metarunlog.commands._derive import Derived, derive
from metarunlog.commands.new import Pin, print_result
from metarunlog.commands.rerun import summary
from metarunlog.config import CFG_NAME
from metarunlog.errors import MrlError
from metarunlog.experiment import DIFF, Experiment
from metarunlog.project import Project
from metarunlog.provenance import origin, selected

HELP = "a new experiment at an experiment's pinned commit (+ .mrl.diff) and run block, with its params"
USAGE = "mrl reproduce [EXP] [SELECTION] [--description TEXT]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    add_target_arguments(p, "reproduce")
    p.add_argument(
        "--description",
        metavar="TEXT",
        default=None,
        help="what the new experiment asks (default: 'reproduces EXP: ...')",
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    res, notes = reproduce(project, args.expId, args.selection, description=args.description)
    print_result(res.made, differs=False)  # its config files are the source's on purpose
    for w in [*notes, *res.warnings]:
        print(f"mrl: warning: {w}", file=sys.stderr)
    print(summary(res, "reproduce") + f"; then `mrl diff {res.source.id} {res.exp.id}` compares the two")
    print(res.exp.dir)
    return 0


def reproduce(
    project: Project, exp_ref: str | int | None, selection: str | None = None, *, description: str | None = None
) -> tuple[Derived, list[str]]:
    """A new experiment pinned as `exp_ref` was, with the params of its selected sub-experiments."""
    source = project.load_exp(exp_ref)
    subs = selected(source, selection)
    pin = _pin_of(project, source)
    notes = []
    if source.record.sloppy:
        notes.append(
            f"{source.name} was made by the original metarunlog from a dirty tree ({source.record.git_hash}), "
            "which kept no diff of the changes: the new experiment has its commit alone"
        )
    block = source.pinned_run
    if not block:
        block = dict(project.cfg.run)
        notes.append(
            f"{source.name} has no pinned run block (made before mrl pinned them, or while run.command "
            "was unset): the new experiment pins the project's current one"
        )
    text = description or f"reproduces {source.name}: {source.record.description}".rstrip(": ")
    files, keys = _config_files_of(project, source, notes)
    res = derive(
        project,
        source,
        subs,
        keys,
        files=files,
        description=text,
        copy_from=str(source.id),
        pin=pin,
        run_block=block,
        provenance={"reproduces": origin(source, subs)},
    )
    notes.extend(_rendered_differently(res))
    return res, notes


def _rendered_differently(res: Derived) -> list[str]:
    """One line when a rendered file of the reproduction is not the source's: the source's
    template (or a sub-experiment's file) was edited after its makebatch, so the same
    params no longer give what it ran. The new experiment's folder names in its files are
    read as the source's (a template may name its own folder)."""
    batch = res.source.record.batch  # the new one renders the same files (_config_files_of)
    names = list(batch.templates) if batch else []
    new_dir, old_dir = os.fsencode(res.exp.dir), os.fsencode(res.source.dir)  # a path may not be UTF-8
    differ: list[str] = []
    first = 0
    for sub, name in zip(res.subs, res.names, strict=True):
        for t in names:
            try:
                old = (sub.dir / t).read_bytes()
                new = (res.exp.dir / name / t).read_bytes().replace(new_dir, old_dir)
            except OSError:
                continue
            if old != new:
                first = first or sub.id
                differ.append(f"{name}/{t}")
    if not differ:
        return []
    src, exp = res.source, res.exp
    return [
        f"{len(differ)} rendered file(s) differ from {src.name}'s ({_few(differ)}): {src.name}'s template or "
        f"its sub-experiments' files were edited after its makebatch, so its params render otherwise now; "
        f"`mrl diff {src.id}/{first} {exp.id}/{first}` shows how"
    ]


def _few(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _config_files_of(project: Project, source: Experiment, notes: list[str]) -> tuple[list[str] | None, dict[str, Any]]:
    """The files to copy from `source` (the ones it copied, and the templates it rendered)
    and, when the project names others now (a renamed confTemplFile), the keys for the new
    EXPDIR/.mrl.cfg that make it render the source's: (None, {}) when they agree."""
    batch = source.record.batch
    if batch is None:
        return None, {}
    templates = list(batch.templates)
    copied = [n for n in (source.record.copied or source.record.copied_files) if n != CFG_NAME]
    files = list(dict.fromkeys([*copied, *templates]))
    cfg = source.cfg  # the project's, with the source's EXPDIR/.mrl.cfg over it: what the new one gets
    keys: dict[str, Any] = {}
    if cfg.template_files() != templates:
        keys["confTemplFile"] = templates
    if set(cfg["copyFiles"]) - set(templates) != set(copied) - set(templates):  # -cp no copied no template
        keys["copyFiles"] = copied
    if not keys and set(files) == {*cfg["copyFiles"], *cfg.template_files()}:
        return None, {}
    if keys:
        now = ", ".join(f"{k} {json.dumps(cfg[k])}" for k in keys)
        notes.append(
            f"the project's {CFG_NAME} names other config files than {source.name} had ({now}); the new "
            f"experiment copies {source.name}'s ({', '.join(files) or 'none'}) and its {CFG_NAME} sets "
            + ", ".join(f"{k} {json.dumps(v)}" for k, v in keys.items())
        )
    return files, keys


def _pin_of(project: Project, source: Experiment) -> Pin:
    """What `source` pinned: its commit (which must be in the repository) and its .mrl.diff."""
    rec = source.record
    repo = git.toplevel(project.basedir) or project.basedir
    commit = rec.commit
    if not commit or not git.has_commit(repo, commit):
        raise MrlError(
            f"commit {(commit or '?')[:12]} that {source.name} pinned is not in {repo}: "
            "fetch it (git fetch) and run again"
        )
    diff = _diff_of(source)
    head = git.Head(commit, rec.git_description or "", rec.git_describe or commit[:7], rec.branch)
    subdir = rec.code_subdir if rec.code_subdir is not None else ""
    return Pin(head, list(rec.dirty_files), diff, rec.git_fail_untracked == "yes", subdir)


def _diff_of(source: Experiment) -> bytes | None:
    path = source.dir / DIFF
    if path.is_file():
        return path.read_bytes()
    if source.record.dirty:
        raise MrlError(f"{source.name} was made with --notclean but {path} is missing: its code cannot be rebuilt")
    return None
