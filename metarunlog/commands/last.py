"""Show the newest experiment's record: the same as `mrl info last`, as in the original
metarunlog (so `mrl last | grep gitHash` works). `mrl last --path` prints only its folder
(handy as `cd $(mrl last --path)`). Writes nothing."""

from __future__ import annotations

import argparse

from metarunlog.commands import info
from metarunlog.project import Project

HELP = "show the newest experiment's record (mrl info last)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    info.add_options(p)
    p.set_defaults(expId="last", sub_selection=None)  # info.cli reads it (main resolves EXP/SUB for info)


def cli(args: argparse.Namespace, project: Project) -> int:
    return info.cli(args, project)
