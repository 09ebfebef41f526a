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
from metarunlog.records import ExperimentRecord

HELP = "list experiments, newest first (** = not done)"
RESOLVES_EXP = False

FIELDS = [("tm", "timestamp"), ("ghash", "gitHash"), ("gdesc", "gitDescription"), ("desc", "description")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-tm", action="store_true", help="show the timestamp")
    p.add_argument("-ghash", action="store_true", help="show the git hash")
    p.add_argument("-gdesc", action="store_true", help="show the git description (commit subject)")
    p.add_argument("-desc", action="store_true", help="show the experiment description")
    p.add_argument("--json", action="store_true", help="one JSON list of the records (with name, path, done)")
    p.add_argument("--tag", action="append", default=[], metavar="NAME", help="only experiments tagged NAME (mrl tag)")


@dataclass
class Row:
    name: str
    done: bool
    record: ExperimentRecord | None
    error: str | None = None


def cli(args: argparse.Namespace, project: Project) -> int:
    rows = ls(project, tags=args.tag)
    bad = [r for r in rows if r.error]
    for r in bad:
        print(f"mrl: warning: {r.error}", file=sys.stderr)
    if args.json:
        out = [{"name": r.name, "path": str(project.outdir / r.name), "done": r.done, **r.record.to_json()}
               for r in rows if r.record is not None]
        print(json.dumps(out, indent=2, default=str))
        return 1 if bad else 0
    wanted = [key for flag, key in FIELDS if getattr(args, flag)]
    lines = []
    for r in rows:
        if r.record is None:
            continue
        cols = [("  " if r.done else "**") + " " + r.name]
        record = r.record.to_json()
        cols += [_cell(record.get(key)) for key in wanted]
        if r.record.tags:
            cols.append(" ".join(f"#{t}" for t in r.record.tags))
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
    # Plain os.path strings here: with thousands of experiments, pathlib's per-object cost
    # is most of `mrl ls`'s own time.
    outdir = str(project.outdir)
    rows = []
    for exp_id in reversed(project.experiment_ids()):
        name = project.exp_name(exp_id)
        expdir = os.path.join(outdir, name)
        try:
            record = jsonio.read_json(os.path.join(expdir, RECORD))
        except FileNotFoundError:
            continue  # being created by a concurrent `mrl new`: no record yet
        except CorruptRecord as e:
            rows.append(Row(name, False, None, str(e)))
            continue
        if not isinstance(record, dict):
            rows.append(Row(name, False, None, f"corrupt record {os.path.join(expdir, RECORD)}: not a JSON object"))
            continue
        rec = ExperimentRecord.from_json(record)
        if tags and not set(tags) & set(rec.tags):
            continue
        rows.append(Row(name, os.path.exists(os.path.join(expdir, DONE_MARK)), rec))
    return rows
