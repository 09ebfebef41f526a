"""Run an experiment's param sets again on the current code: a new experiment at HEAD.

The usual "fix the bug, rerun the failures": `mrl run --failed` reruns the code the
experiment pinned (and fails again); `mrl rerun 3 --failed` makes a new experiment, like
`mrl new`, at the current HEAD with the project's current run block, whose sub-experiments
have the same params (and ids) as the selected ones of experiment 3, rendered from the
new experiment's templates (copied from experiment 3 unless -cp says otherwise). Then
`mrl run` runs it.

Writes OUTDIR/<id>/ as `mrl new` does (code/, .mrl, .mrl.note, config files; `last`),
with `"rerunOf": {"expId": 3, "subExpIds": [2, 5], "gitHash": "<its commit>"}` in .mrl,
and one sub-experiment folder per selected one (.mrl with its params, rendered files).

Examples:
  mrl rerun 3 --failed         the failed, cancelled, timed-out or stale ones of 3
  mrl rerun 3 1,4-6            these sub-experiments of 3
  mrl rerun 3                  all of them
  mrl rerun 3 --failed -cp basedir   with the templates as committed at HEAD
"""

from __future__ import annotations

import argparse
import sys

from metarunlog.commands._args import add_copy_options, add_target_arguments
from metarunlog.commands._derive import Derived, derive, span
from metarunlog.commands.new import print_result
from metarunlog.errors import MrlError
from metarunlog.project import Project
from metarunlog.provenance import origin, selected

HELP = "a new experiment at HEAD with the param sets of an experiment's (failed) sub-experiments"
USAGE = "mrl rerun [EXP] [SELECTION | --failed] [-cp EXP|basedir] [-nc] [--description TEXT]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    add_target_arguments(p, "rerun")
    p.add_argument("--failed", action="store_true", help="only the failed, cancelled, timed-out or stale ones")
    add_copy_options(
        p,
        "copy the config files from this experiment or 'basedir' (default: the experiment rerun)",
        "allow uncommitted changes, as `mrl new --notclean` (saved as .mrl.diff)",
    )
    p.add_argument(
        "--description", metavar="TEXT", default=None, help="what the new experiment asks (default: 'rerun of EXP ...')"
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    res = rerun(
        project,
        args.expId,
        args.selection,
        failed=args.failed,
        copy_from=args.copyConfigFrom,
        notclean=args.notclean,
        description=args.description,
    )
    print_result(res.made)
    for w in res.warnings:
        print(f"mrl: warning: {w}", file=sys.stderr)
    print(summary(res, "rerun"))
    print(res.exp.dir)
    return 0


def rerun(
    project: Project,
    exp_ref: str | int | None,
    selection: str | None = None,
    *,
    failed: bool = False,
    copy_from: str | None = None,
    notclean: bool = False,
    description: str | None = None,
) -> Derived:
    """A new experiment at HEAD with the params of the selected sub-experiments of `exp_ref`."""
    if copy_from == "no" and project.cfg.template_files():
        raise MrlError(
            "-cp no: mrl rerun renders its sub-experiments from the copied templates "
            f"({', '.join(project.cfg.template_files())}); give -cp EXP or -cp basedir (default: the experiment rerun)"
        )
    source = project.load_exp(exp_ref)
    subs = selected(source, selection, failed=failed)
    what = "the failed ones" if failed else "all" if selection in (None, "all") else selection
    text = description or f"rerun of {source.name} ({what}): {source.record.description}".rstrip(": ")
    return derive(
        project,
        source,
        subs,
        description=text,
        copy_from=copy_from or str(source.id),
        notclean=notclean,
        provenance={"rerun_of": origin(source, subs)},
    )


def summary(res: Derived, verb: str) -> str:
    """`mrl: 0007 reruns 2 sub-experiment(s) of 0003 (002, 005) at commit X (0003 pinned Y); ...`"""
    commit = (res.exp.record.git_hash or "")[:10]
    was = (res.source.record.git_hash or "")[:10]
    at = f"at {res.source.name}'s commit {commit}" + (" + its .mrl.diff" if res.exp.record.dirty else "")
    if verb == "rerun":
        at = f"at commit {commit} (HEAD; {res.source.name} pinned {was})"
    return (
        f"mrl: {res.exp.name} {verb}s {len(res.subs)} sub-experiment(s) of {res.source.name} "
        f"({span(res.names)}) {at}; run them with `mrl run {res.exp.id}`"
    )
