"""One row per sub-experiment: its id, the params that vary, state, duration and metrics.

Metrics come from every sub-experiment folder: metrics.json / metrics.jsonl, CSV logs
(metrics.csv, Lightning's lightning_logs/version_*/metrics.csv), TensorBoard event files,
run.log lines matched by `metrics.patterns` in .mrl.cfg, and `metrics(subExpDir)` in
mrl_analyze.py (see docs/table.md). Per metric: its last value (a summary file wins), or
with --summary best its best value (min for loss-like names, max for acc-like ones) and the
step it was reached at. Step keys (step, epoch, ...) are the x axis, never columns. The
state is the one `mrl status` shows (Slurm's word merged in); the duration of a running one
is the time so far. Writes nothing, except what `mrl status` writes too: Slurm's final word
on a task that ended without its record saying so, when the folder is writable.

  mrl table                         aligned text
  mrl table 3 --csv > results.csv   also --tsv, --json, --markdown
  mrl table --summary best          best value and its step per metric (both: last and best)
  mrl table --aggregate             mean, std and n over seeds/repeats (--by lr, --over fold)
  mrl table 2 3 5-9                 several experiments, with an exp column; --all, --tag NAME
  mrl table 2/3,4 5/1-2             only those sub-experiments (EXP/SELECTION, as mrl status)
  mrl table --where "val_loss < 0.3 and state == 'done'"
  mrl table --where "param.id == 3"  a param named like a column mrl makes (id, state, ...)
                                    is param.NAME, in every format, --where, --sort, --by
  mrl table --sort val_loss         ascending; --reverse (or --sort -val_loss) for descending

The same table is a pandas DataFrame in Python: `metarunlog.api.load_table(exp)`.
If a user metrics() fails or a record cannot be read, the table is still printed, the
problems go to stderr, and the exit code is 1. Of several experiments asked for, one whose
record cannot be read (or an EXP that names none) is left out with one `mrl: warning:` line
naming it, the others are shown, and the exit code is 1; when none can be read, it is an
error.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from typing import Any

from metarunlog import results, selection
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.fmt import cell_width, pad
from metarunlog.project import Project
from metarunlog.results import Table

HELP = "params + state + metrics, one row per sub-experiment (--summary best, --aggregate, --where ...)"
FORMATS = ("text", "csv", "tsv", "json", "markdown")
FORMAT_HELP = {
    "csv": "comma-separated values, full precision",
    "tsv": "tab-separated values, full precision",
    "json": "a JSON list of objects, one per row",
    "markdown": "a markdown table (for notes and issues)",
}
MAX_ERRORS_SHOWN = 10


def fix_argv(argv: list[str]) -> list[str]:
    """`--sort -val_acc` is `--sort=-val_acc`, not an unknown option."""
    from metarunlog.commands._args import join_dash_values

    return join_dash_values(argv, ("--sort",))


# Inside a sub-experiment folder, no EXP is still the whole experiment you are in (main):
# a table is for comparing (docs/table.md), where `mrl info` and `mrl status` show that one.
SUB_HERE = False


def RESOLVES_EXP(args: argparse.Namespace) -> bool:  # noqa: N802 (main's per-command flag)
    """main resolves one plain EXP, or the default experiment when none is named (hooks read
    args.expId); not for EXP..., a range, --all, --tag: a newest folder still without its record (an `mrl new`
    under way or killed) is skipped by those, not an error."""
    return args.expId is not None or not (args.exps or args.all or args.tag)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "exps",
        nargs="*",
        action=ExpRefs,
        metavar="EXP",
        help="experiment(s): ids, ranges like 5-9, 'last', paths (default: the one you are in, else the newest); "
        "EXP/SELECTION (2/3, 2/1-4,7) or a sub-experiment folder's path: only those sub-experiments",
    )
    p.set_defaults(expId=None, sub_selection=None)  # main resolves one EXP/SELECTION into both
    p.add_argument("--all", action="store_true", help="every experiment of the project (with an exp column)")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        type=selection.tag_name,
        metavar="NAME",
        help="also the experiments tagged NAME (mrl tag), besides any EXP named; repeatable",
    )
    fmt = p.add_mutually_exclusive_group()
    for name, what in FORMAT_HELP.items():
        fmt.add_argument(f"--{name}", dest="format", action="store_const", const=name, help=what)
    p.set_defaults(format="text")
    p.add_argument("--all-params", action="store_true", help="show every param, not only those that vary")
    p.add_argument(
        "--summary",
        choices=results.SUMMARIES,
        default="last",
        help="per metric: its last value (default), its best (min or max by its goal) and <metric>_step, or both",
    )
    p.add_argument(
        "--aggregate",
        action="store_true",
        help="one row per combination of the varying params except seed/repeat (and .mrl.cfg repeat_axes): "
        "each metric's mean and _std, "
        "n (the runs with a value) and n_missing (those without, when there are)",
    )
    p.add_argument(
        "--by",
        nargs="+",
        metavar="PARAM",
        help="with --aggregate: group by these params (or exp, the experiment; a param shown as param.NAME: "
        "NAME or param.NAME)",
    )
    p.add_argument("--over", nargs="+", metavar="PARAM", help="with --aggregate: also average over these params")
    p.add_argument(
        "--where",
        metavar="EXPR",
        help='keep rows where EXPR holds: "val_loss < 0.3 and lr == 0.1"; columns as the header shows them '
        '("param.id == 3": a param named like a column mrl makes; col["train/loss"] for other names)',
    )
    p.add_argument("--sort", metavar="KEY", help="sort by this column (-KEY: descending); empty ones last")
    p.add_argument("--reverse", action="store_true", help="sort descending")


class ExpRefs(argparse.Action):
    """EXP...: kept in `args.exps`; one plain EXP is also `args.expId` (main resolves it; hooks read it)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        ns.exps = list(values or [])
        single = len(ns.exps) == 1 and not selection.looks_like_selection(ns.exps[0])
        ns.expId = ns.exps[0] if single else None


def cli(args: argparse.Namespace, project: Project) -> int:
    if (args.by or args.over) and not args.aggregate:
        raise MrlError("--by and --over go with --aggregate: add --aggregate")
    ranges = any(selection.looks_like_selection(r) for r in args.exps)
    single = len(args.exps) == 1 and not ranges
    refs = [args.expId] if single else args.exps  # main resolved a plain EXP (or EXP/SELECTION)
    left_out: list[str] = []
    subs: dict[int, str] = {}
    exps = selection.experiments(project, refs, everything=args.all, tags=args.tag, skipped=left_out, subs=subs)
    if single and args.sub_selection not in (None, selection.ALL) and not (args.all or args.tag):
        subs[args.expId] = args.sub_selection
    several = len(exps) > 1 or args.all or bool(args.tag) or ranges or bool(left_out)
    tab = results.build(
        exps,
        all_params=args.all_params,
        sort=args.sort,
        reverse=args.reverse,
        basedir=project.basedir,
        summary=args.summary,
        group=args.aggregate,
        by=args.by,
        over=args.over,
        where_expr=args.where,
        exp_column=several,
        subs=subs,
    )
    sys.stdout.write(render(tab, args.format, exps[0] if len(exps) == 1 and not args.where else None))
    if args.where and not tab.rows:
        print(f"mrl: no row matches --where {args.where!r}", file=sys.stderr)
    report(tab)
    warn_left_out(left_out)
    _warn_gone(exps, subs)
    return 1 if tab.errors or left_out else 0


def _warn_gone(exps: list[Experiment], subs: dict[int, str]) -> None:
    """A line for each selected sub-experiment whose folder a run saw removed as it ran it:
    it has no row (nothing of it is left to read), and the table must not look whole."""
    from metarunlog import gone

    for exp in exps:
        found = gone.entries(exp)
        named = set(selection.selected(subs.get(exp.id), [g.id for g in found]))
        prefix = f"{exp.name}/" if len(exps) > 1 else ""
        for line in gone.lines([g for g in found if g.id in named], "no row for it"):
            print(f"mrl: warning: {prefix}{line}", file=sys.stderr)


def warn_left_out(left_out: list[str]) -> None:
    """One line per experiment asked for that could not be read (the others were shown):
    a warning, as the output is whole for the rest, with exit code 1 so that a script
    sees that something it asked for is missing (as `cat a b` does)."""
    for line in left_out:
        print(f"mrl: warning: {line}", file=sys.stderr)


def report(tab: Table) -> None:
    """The no-metrics note and the errors, on stderr (the table is on stdout). `tab.warnings`
    were logged where they arose, and `main` printed them then."""
    for note in (tab.note, tab.goal_note):
        if note:
            print(f"mrl: {note}", file=sys.stderr)
    for err in tab.errors[:MAX_ERRORS_SHOWN]:
        print(f"mrl: error: {err}", file=sys.stderr)
    if len(tab.errors) > MAX_ERRORS_SHOWN:
        print(f"mrl: error: ... and {len(tab.errors) - MAX_ERRORS_SHOWN} more", file=sys.stderr)


def make(
    exp: Experiment, *, all_params: bool = False, sort: str | None = None, reverse: bool = False, basedir: Any = None
) -> Table:
    """The table of one experiment, sorted when asked (an unknown KEY is a MrlError)."""
    return results.build([exp], all_params=all_params, sort=sort, reverse=reverse, basedir=basedir, exp_column=False)


def render(tab: Table, fmt: str, exp: Experiment | None = None) -> str:
    if fmt == "json":
        rows = [{k: _json_value(v) for k, v in r.items()} for r in tab.rows]
        return json.dumps(rows, indent=1, default=str) + "\n"  # str: an array a user's metrics() returned
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


# What markdown would read as markup in a table cell (code spans, emphasis, links, inline
# HTML: a param `<b>x</b>` or `` `cmd` `` would show as something else, or run as HTML
# where the table is rendered): HTML characters become entities, the rest is escaped with a
# backslash. `_` only at a word's edge (`val_loss` is never emphasis and stays readable).
_MD_SPECIAL = re.compile(r"[\\`*\[\]|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _markdown(tab: Table) -> str:
    def esc(s: str) -> str:
        s = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), s)
        return re.sub("[&<>]", lambda m: _MD_ENTITIES[m.group()], s).replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in tab.columns) + " |"]
    lines.append("|" + "|".join("---:" if _numeric(tab, c) else "---" for c in tab.columns) + "|")
    for r in tab.rows:
        lines.append("| " + " | ".join(esc(cell(r.get(c), c)) for c in tab.columns) + " |")
    return "\n".join(lines) + "\n"


def _text(tab: Table) -> str:
    cols = tab.columns
    body = [[cell(r.get(c), c) for c in cols] for r in tab.rows]
    widths = [max([cell_width(c)] + [cell_width(row[i]) for row in body]) for i, c in enumerate(cols)]
    right = [_numeric(tab, c) for c in cols]

    def line(cells: list[str]) -> str:
        out = (pad(s, w, r) for s, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(out).rstrip()

    return "\n".join([line(cols), *map(line, body)]) + "\n"


def _numeric(tab: Table, column: str) -> bool:
    values = [r.get(column) for r in tab.rows if r.get(column) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
