"""One row per sub-experiment: its id, the params that vary, state, duration and metrics.

Metrics come from each sub-experiment's metrics.json, else the last value of each key of
its metrics.jsonl, plus whatever `metrics(subExpDir) -> dict` in mrl_analyze.py returns.
The state is the one `mrl status` shows (a run whose process is gone is `stale`); the
duration of a running one is the time so far. Writes nothing.

  mrl table                         aligned text
  mrl table 3 --csv > results.csv   also --tsv, --json, --markdown
  mrl table --all-params            every param, not only those that vary
  mrl table --sort val_loss         ascending; --reverse (or --sort=-val_loss) for descending

The same table is a pandas DataFrame in Python: `metarunlog.api.load_table(exp)`.
If a user metrics() fails or a record cannot be read, the table is still printed, the
problems go to stderr, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from typing import Any

from metarunlog import results
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.project import Project
from metarunlog.results import Table

HELP = "params + state + metrics, one row per sub-experiment (--csv, --json, --markdown ...)"
FORMATS = ("text", "csv", "tsv", "json", "markdown")
FORMAT_HELP = {
    "csv": "comma-separated values, full precision",
    "tsv": "tab-separated values, full precision",
    "json": "a JSON list of objects, one per row",
    "markdown": "a markdown table (for notes and issues)",
}
MAX_ERRORS_SHOWN = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: the one you are in, else the newest)")
    fmt = p.add_mutually_exclusive_group()
    for name, what in FORMAT_HELP.items():
        fmt.add_argument(f"--{name}", dest="format", action="store_const", const=name, help=what)
    p.set_defaults(format="text")
    p.add_argument("--all-params", action="store_true", help="show every param, not only those that vary")
    p.add_argument("--sort", metavar="KEY", help="sort by this column (--sort=-KEY: descending); empty ones last")
    p.add_argument("--reverse", action="store_true", help="sort descending")


def cli(args: argparse.Namespace, project: Project) -> int:
    exp = project.load_exp(args.expId)
    tab = make(exp, all_params=args.all_params, sort=args.sort, reverse=args.reverse, basedir=project.basedir)
    sys.stdout.write(render(tab, args.format, exp))
    for err in tab.errors[:MAX_ERRORS_SHOWN]:
        print(f"mrl: error: {err}", file=sys.stderr)
    if len(tab.errors) > MAX_ERRORS_SHOWN:
        print(f"mrl: error: ... and {len(tab.errors) - MAX_ERRORS_SHOWN} more", file=sys.stderr)
    return 1 if tab.errors else 0


def make(
    exp: Experiment, *, all_params: bool = False, sort: str | None = None, reverse: bool = False, basedir: Any = None
) -> Table:
    """The table of one experiment, sorted when asked (an unknown KEY is a MrlError)."""
    tab = results.table(exp, all_params=all_params, basedir=basedir)
    if sort:
        if sort.startswith("-") and sort not in tab.columns:
            sort, reverse = sort[1:], not reverse
        tab.sort(_column(tab, sort), reverse=reverse)
    return tab


def _column(tab: Table, key: str) -> str:
    if key in tab.columns:
        return key
    if results.METRIC_PREFIX + key in tab.columns:
        return results.METRIC_PREFIX + key
    if key in tab.all_params:
        raise MrlError(f"--sort {key}: that param is the same everywhere; add --all-params to show it")
    raise MrlError(f"--sort {key}: no such column; the columns are: {', '.join(tab.columns)}")


def render(tab: Table, fmt: str, exp: Experiment | None = None) -> str:
    if fmt == "json":
        return json.dumps([{k: _json_value(v) for k, v in r.items()} for r in tab.rows], indent=1) + "\n"
    if fmt in ("csv", "tsv"):
        return _delimited(tab, "," if fmt == "csv" else "\t")
    if fmt == "markdown":
        return _markdown(tab)
    if not tab.rows and exp is not None:
        return f"{exp.name}: no sub-experiments yet (run `mrl makebatch`)\n"
    return _text(tab)


# -- formats -------------------------------------------------------------------------------


cell = results.format_value


def _raw(value: Any) -> str:
    """A value for CSV/TSV: full precision, structures as JSON."""
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=str)
    return str(value) if not isinstance(value, float) else repr(value)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _delimited(tab: Table, sep: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator="\n")
    w.writerow(tab.columns)
    for r in tab.rows:
        w.writerow([_raw(r.get(c)) for c in tab.columns])
    return buf.getvalue()


def _markdown(tab: Table) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in tab.columns) + " |"]
    lines.append("|" + "|".join("---:" if _numeric(tab, c) else "---" for c in tab.columns) + "|")
    for r in tab.rows:
        lines.append("| " + " | ".join(esc(cell(r.get(c), c)) for c in tab.columns) + " |")
    return "\n".join(lines) + "\n"


def _text(tab: Table) -> str:
    cols = tab.columns
    body = [[cell(r.get(c), c) for c in cols] for r in tab.rows]
    widths = [max([len(c)] + [len(row[i]) for row in body]) for i, c in enumerate(cols)]
    right = [_numeric(tab, c) for c in cols]

    def line(cells: list[str]) -> str:
        out = (s.rjust(w) if r else s.ljust(w) for s, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(out).rstrip()

    return "\n".join([line(cols), *map(line, body)]) + "\n"


def _numeric(tab: Table, column: str) -> bool:
    values = [r.get(column) for r in tab.rows if r.get(column) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
