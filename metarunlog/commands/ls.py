"""List experiments, newest first.

`**` marks an experiment that is not done (some sub-experiment has not finished, or it
was never run). `!!` marks an incomplete folder: no record, and no live `mrl new` making it
(one killed before it finished; `--json`: `"incomplete": WHY`; `mrl info` of it says how to
remove it). Tags (`mrl tag`) end the line as `#name`; `--tag NAME` lists only those
tagged NAME (none: a note on stderr, exit 0, as an empty listing). A corrupt, unreadable or
oversized (over 16 MiB: left unread) record is reported by its path and the others are
still listed. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from metarunlog import jsonio
from metarunlog.errors import CorruptRecord
from metarunlog.experiment import DONE_MARK, RECORD
from metarunlog.fmt import printable
from metarunlog.project import Project
from metarunlog.selection import tag_name

HELP = "list experiments, newest first (** = not done, !! = incomplete)"
RESOLVES_EXP = False

FIELDS = [("tm", "timestamp"), ("ghash", "gitHash"), ("gdesc", "gitDescription"), ("desc", "description")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-tm", "--tm", action="store_true", help="show the timestamp")
    p.add_argument("-ghash", "--ghash", action="store_true", help="show the git hash")
    p.add_argument("-gdesc", "--gdesc", action="store_true", help="show the git description (commit subject)")
    p.add_argument("-desc", "--desc", action="store_true", help="show the experiment description")
    p.add_argument("--json", action="store_true", help="one JSON list of the records (with name, path, done)")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        type=tag_name,
        metavar="NAME",
        help="only experiments tagged NAME (mrl tag)",
    )


@dataclass
class Row:
    name: str
    done: bool
    record: dict[str, Any] | None  # the `.mrl` JSON object as stored
    error: str | None = None
    incomplete: str | None = None  # no record, and no live `mrl new` making it: why (making.unmade)

    @property
    def tags(self) -> list[str]:
        tags = (self.record or {}).get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def cli(args: argparse.Namespace, project: Project) -> int:
    # Each line is written as its record is read, and the record dropped: memory stays that
    # of one record whatever the number of experiments, and `mrl ls | head` stops early.
    errors: list[str] = []
    rows = _readable(iter_rows(project, tags=args.tag), errors)
    if args.json:
        listed = _write(_json_items(rows, project), "[\n", ",\n", "\n]\n", empty="[]\n")
    else:
        wanted = [key for flag, key in FIELDS if getattr(args, flag)]
        listed = _write((_line(r, wanted) for r in rows), "", "\n", "\n", empty="")
    for e in errors:
        print(f"mrl: warning: {e}", file=sys.stderr)
    if args.tag and not listed and not errors:
        # an empty listing is a normal answer (as with no experiments at all: exit 0), but an
        # empty --tag listing is more often a typo than a fact: say so, as `mrl table --tag` does
        tags = ", ".join(args.tag)
        print(f"mrl: note: no experiment is tagged {tags} (tag one with `mrl tag EXP +NAME`)", file=sys.stderr)
    return 1 if errors else 0


def _readable(rows: Iterator[Row], errors: list[str]) -> Iterator[Row]:
    for r in rows:
        if r.error:
            errors.append(r.error)
        if r.record is not None or r.incomplete:
            yield r


def _line(r: Row, wanted: list[str]) -> str:
    if r.record is None:
        return f"!! {r.name}\t(incomplete: no {RECORD} record; `mrl info {r.name}` says why)"
    cols = [("  " if r.done else "**") + " " + r.name]
    cols += [_cell(r.record.get(key)) for key in wanted]
    if r.tags:
        cols.append(" ".join(f"#{printable(t)}" for t in r.tags))
    return "\t".join(cols)


def _json_items(rows: Iterator[Row], project: Project) -> Iterator[str]:
    """Each record as an item of `json.dumps(list, indent=2)` would print it."""
    for r in rows:
        item = {"name": r.name, "path": str(project.outdir / r.name), "done": r.done, **(r.record or {})}
        if r.incomplete:
            item["incomplete"] = r.incomplete
        yield "  " + json.dumps(item, indent=2, default=str).replace("\n", "\n  ")


def _write(items: Iterator[str], head: str, sep: str, tail: str, *, empty: str) -> bool:
    """`head + sep.join(items) + tail` (or `empty`), an item at a time (stdout buffers);
    whether there was any item."""
    write, before, wrote = sys.stdout.write, head, False
    for item in items:
        write(before + item)
        before, wrote = sep, True
    write(tail if wrote else empty)
    return wrote


def _cell(v: Any) -> str:
    if v is None:
        return ""
    # a commit id: SHA-1 (40 hex digits) or SHA-256 (64)
    return str(v)[:7] if isinstance(v, str) and len(v) in (40, 64) and v.isalnum() else printable(str(v))


def ls(project: Project, tags: list[str] | None = None) -> list[Row]:
    """Every experiment, newest first; with `tags`, those tagged with any of them."""
    return list(iter_rows(project, tags))


def iter_rows(project: Project, tags: list[str] | None = None) -> Iterator[Row]:
    """`ls`, one row at a time (a corrupt record is a row with `error` and no record)."""
    # Plain os.path strings and the records as JSON objects here: with thousands of
    # experiments, pathlib's and the typed record's per-object costs were most of `mrl ls`'s
    # own time (bench/bench_core.py: within 1.5x of a plain script reading the same files).
    outdir = str(project.outdir)
    for exp_id in reversed(project.experiment_ids()):
        name = project.exp_name(exp_id)
        expdir = f"{outdir}{os.sep}{name}"
        path = f"{expdir}{os.sep}{RECORD}"
        try:
            record = jsonio.read_json(path)
        except FileNotFoundError:
            if tags:
                continue
            from pathlib import Path

            from metarunlog.making import unmade

            found = unmade(Path(expdir))
            if not found.live:  # an `mrl new` that died, say: shown, never hidden
                yield Row(name, False, None, incomplete=found.why)
            continue  # else being made by a concurrent `mrl new`: listed once its record is written
        except CorruptRecord as e:
            yield Row(name, False, None, str(e))
            continue
        except OSError as e:  # unreadable (another user's, a folder named .mrl): the others are still listed
            yield Row(name, False, None, f"cannot read {path}: {e.strerror}")
            continue
        if not isinstance(record, dict):
            yield Row(name, False, None, f"corrupt record {path}: not a JSON object")
            continue
        row = Row(name, os.path.exists(f"{expdir}{os.sep}{DONE_MARK}"), record)
        if tags and not set(tags) & set(row.tags):
            continue
        yield row
