"""Print the folder of the newest experiment (handy as `cd $(mrl last)`)."""

from __future__ import annotations

import argparse

from metarunlog.project import Project

HELP = "print the newest experiment's folder"
RESOLVES_EXP = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def cli(args: argparse.Namespace, project: Project) -> int:
    print(project.load_exp("last").dir)
    return 0
