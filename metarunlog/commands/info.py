"""Show an experiment's record (.mrl), its folder and its sub-experiment count."""

from __future__ import annotations

import argparse
import json

from metarunlog.project import Project

HELP = "show an experiment's record"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: last)")
    add_options(p)


def add_options(p: argparse.ArgumentParser) -> None:
    """Options shared with `mrl last` (= `mrl info last`)."""
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--path", action="store_true", help="print only the experiment's folder")


def cli(args: argparse.Namespace, project: Project) -> int:
    exp = project.load_exp(args.expId)
    if args.path:
        print(exp.dir)
        return 0
    info = {"path": str(exp.dir), **exp.record, "subExperiments": len(exp.sub_experiments()),
            "done": exp.is_done}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    width = max(len(k) for k in info)
    for k, v in info.items():
        if isinstance(v, (list, dict)):
            v = json.dumps(v, default=str)
        print(f"{k:<{width}} : {'' if v is None else v}")
    return 0
