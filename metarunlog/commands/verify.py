"""Re-hash an experiment's code/ snapshot against its commit: `mrl info --verify`.

Lists every file changed, missing or added since `mrl new` (a --notclean experiment is
compared with its commit plus .mrl.diff), one `changed|missing|added  PATH` line each on
stdout and a count on stderr, exit 1; else one line `EXP: code/ matches commit ...`,
exit 0. It writes nothing (a --notclean experiment's patched tree is built in a
temporary index) and needs the project's git repository, which holds the commit.
"""

from __future__ import annotations

import argparse

from metarunlog.commands.info import verify_cli, verify_target
from metarunlog.project import Project

HELP = "check an experiment's code/ against its commit (same as mrl info --verify)"
RESOLVES_EXP = False  # verify_target resolves EXP: it may be a copy outside the outdir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "expId",
        nargs="?",
        metavar="EXP",
        help="experiment (default: the one you are in, else the newest); also the path of a copy of one elsewhere",
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    return verify_cli(project, verify_target(project, args.expId))
