"""List experiments, newest first.

`**` marks an experiment that is not done (some sub-experiment has not finished, or it
was never run). Tags (`mrl tag`) end the line as `#name`; `--tag NAME` lists only those
tagged NAME. A corrupt record is reported by its path and the others are still listed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from metarunlog import jsonio
from metarunlog.errors import CorruptRecord
from metarunlog.experiment import DONE_MARK, RECORD
from metarunlog.project import Project

HELP = "list experiments, newest first (** = not done)"
RESOLVES_EXP = False

FIELDS = [("tm", "timestamp"), ("ghash", "gitHash"), ("gdesc", "gitDescription"), ("desc", "description")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-tm", "--tm", action="store_true", help="show the timestamp")
    p.add_argument("-ghash", "--ghash", action="store_true", help="show the git hash")
    p.add_argument("-gdesc", "--gdesc", action="store_true", help="show the git description (commit subject)")
    p.add_argument("-desc", "--desc", action="store_true", help="show the experiment description")
    p.add_argument("--json", action="store_true", help="one JSON list of the records (with name, path, done)")
    p.add_argument("--tag", action="append", default=[], metavar="NAME", help="only experiments tagged NAME (mrl tag)")


@dataclass
class Row:
    name: str
    done: bool
    record: dict[str, Any] | None  # the `.mrl` JSON object as stored
    error: str | None = None

    @property
    def tags(self) -> list[str]:
        tags = (self.record or {}).get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def cli(args: argparse.Namespace, project: Project) -> int:
    rows = ls(project, tags=args.tag)
    bad = [r for r in rows if r.error]
    for r in bad:
        print(f"mrl: warning: {r.error}", file=sys.stderr)
    if args.json:
        out = [
            {"name": r.name, "path": str(project.outdir / r.name), "done": r.done, **r.record}
            for r in rows
            if r.record is not None
        ]
        print(json.dumps(out, indent=2, default=str))
        return 1 if bad else 0
    wanted = [key for flag, key in FIELDS if getattr(args, flag)]
    lines = []
    for r in rows:
        if r.record is None:
            continue
        cols = [("  " if r.done else "**") + " " + r.name]
        cols += [_cell(r.record.get(key)) for key in wanted]
        if r.tags:
            cols.append(" ".join(f"#{t}" for t in r.tags))
        lines.append("\t".join(cols))
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 1 if bad else 0


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return str(v)[:7] if isinstance(v, str) and len(v) == 40 and v.isalnum() else str(v)


def ls(project: Project, tags: list[str] | None = None) -> list[Row]:
    """Every experiment, newest first; with `tags`, those tagged with any of them."""
    # Plain os.path strings and the records as JSON objects here: with thousands of
    # experiments, pathlib's and the typed record's per-object costs were most of `mrl ls`'s
    # own time (bench/bench_core.py: within 1.5x of a plain script reading the same files).
    outdir = str(project.outdir)
    rows = []
    for exp_id in reversed(project.experiment_ids()):
        name = project.exp_name(exp_id)
        expdir = f"{outdir}{os.sep}{name}"
        path = f"{expdir}{os.sep}{RECORD}"
        try:
            record = jsonio.read_json(path)
        except FileNotFoundError:
            continue  # being created by a concurrent `mrl new`: no record yet
        except CorruptRecord as e:
            rows.append(Row(name, False, None, str(e)))
            continue
        if not isinstance(record, dict):
            rows.append(Row(name, False, None, f"corrupt record {path}: not a JSON object"))
            continue
        row = Row(name, os.path.exists(f"{expdir}{os.sep}{DONE_MARK}"), record)
        if tags and not set(tags) & set(row.tags):
            continue
        rows.append(row)
    return rows
