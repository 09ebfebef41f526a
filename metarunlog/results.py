"""Statuses + metrics -> one row per sub-experiment (list of dicts, or a pandas DataFrame).

A row holds: `id` (the sub-experiment's folder name), the params that vary across the
experiment (every param with `all_params`), `state` (as `mrl status` shows it: a running
record whose process is gone is `stale`), `duration` (seconds; elapsed so far while it
runs), then the metrics: `metrics.json` when it exists, else the last value of each key of
`metrics.jsonl`, plus whatever the user's `metrics(subExpDir) -> dict` in `mrl_analyze.py`
returns. `mrl table`, `mrl analyze` and the Python API (`metarunlog.api`) all read this.

Reading is plain Python (no pandas) so that `mrl table` stays fast on 10,000
sub-experiments; pandas is imported only by `Table.to_dataframe()`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from metarunlog import metrics
from metarunlog.errors import CorruptRecord, HookError, MrlError
from metarunlog.experiment import Experiment, SubExperiment
from metarunlog.fmt import format_value  # noqa: F401  (results.format_value: the report and table use it)
from metarunlog.records import Status
from metarunlog.states import JobState, observed_state

USER_METRICS_FN = "metrics"
# Keys of a metrics.jsonl line that say where on the x axis it lies (first one present wins).
X_KEYS = ("step", "global_step", "iteration", "iter", "epoch")
# Keys that are neither an x axis nor worth a curve.
NOT_CURVES = frozenset({"time", "timestamp", "wall_time", "walltime", "date"})
BUILTIN_COLUMNS = ("id", "state", "duration")
METRIC_PREFIX = "metric."  # for a metric whose name is already a param or built-in column


@dataclass
class SubResult:
    """What one sub-experiment has produced so far."""

    id: int
    name: str  # folder name ("003"); the experiment's name for a one-job experiment
    dir: Path
    params: dict[str, Any]
    state: JobState
    status: Status | None
    metrics: dict[str, Any] = field(default_factory=dict)
    lines: list[dict[str, Any]] | None = None  # parsed metrics.jsonl, when asked for
    # per metric of metrics.jsonl: (x key, xs, ys); filled by the report from `lines`
    curves: dict[str, tuple[str, Any, Any]] | None = None

    @property
    def duration(self) -> float | None:
        return duration_of(self.status, self.state)


@dataclass
class Table:
    """The rows of `mrl table`, with the column groups that made them."""

    params: list[str]  # param columns shown (varying first... see make_table)
    metrics: list[str]  # metric columns, in order of first appearance
    rows: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)  # user metrics() failures, bad records
    all_params: list[str] = field(default_factory=list)  # every param seen, varying or not

    @property
    def columns(self) -> list[str]:
        return ["id", *self.params, "state", "duration", *self.metrics]

    def to_dataframe(self) -> Any:
        """The table as a pandas DataFrame indexed by sub-experiment id (folder name)."""
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=self.columns)
        df["duration"] = pd.to_numeric(df["duration"], errors="coerce")
        return df.set_index("id")

    def sort(self, key: str, reverse: bool = False) -> None:
        """Sort rows by column `key` in place; missing values always go last."""
        present = [r for r in self.rows if not _missing(r.get(key))]
        absent = [r for r in self.rows if _missing(r.get(key))]
        present.sort(key=lambda r: _sort_key(r[key]), reverse=reverse)
        self.rows = present + absent


# -- reading one sub-experiment ------------------------------------------------------------


def duration_of(status: Status | None, state: JobState) -> float | None:
    """Seconds it ran: the recorded duration, or the time since start while it runs."""
    if status is None:
        return None
    if status.duration is not None:
        return status.duration
    start = status.start
    if state is JobState.RUNNING and start is not None:
        try:
            began = _dt.datetime.fromisoformat(start)
        except ValueError:
            return None
        now = _dt.datetime.now(began.tzinfo) if began.tzinfo else _dt.datetime.now()
        return max(0.0, (now - began).total_seconds())
    return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics.jsonl, one a line. A missing file gives [].

    Lines that are not JSON objects are skipped: the last one may be half-written while
    the run goes on.
    """
    from metarunlog.metrics.jsonfiles import read_jsonl as read

    return read(path)


def last_values(lines: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The last value of each key, keys in order of first appearance."""
    out: dict[str, Any] = {}
    for d in lines:
        out.update(d)
    return out


def finder_for(exp: Experiment) -> metrics.Finder:
    """The metrics readers this experiment's config leaves on (one per experiment: globs compiled once)."""
    return metrics.Finder(metrics.settings(exp.cfg))


def read_metrics(
    sub_dir: Path, *, keep_lines: bool = False, finder: metrics.Finder | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]] | None, list[str]]:
    """(final metrics, the rows when `keep_lines`, read errors) of one folder, from every reader.

    The final metrics are the readers' summaries (`metrics.json`, ...) when there are
    any, else the last value of each key of their rows (which are then only read when needed).
    """
    found = (finder or metrics.Finder()).read(sub_dir)
    errors = list(found.errors)
    lines = None
    if keep_lines or found.summary is None:
        lines, err = _drain(found.rows)
        errors += [err] if err else []
    values = found.summary if found.summary is not None else last_values(lines or [])
    return values, (lines if keep_lines else None), errors


def _drain(rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    out: list[dict[str, Any]] = []
    try:
        out.extend(rows)
    except MrlError as e:  # a reader met a corrupt file: keep what came before it
        return out, str(e)
    return out, None


def _read_record(sub: SubExperiment) -> tuple[dict[str, Any], str | None]:
    try:
        return sub.params, None
    except CorruptRecord as e:
        return {}, str(e)


def _read_status(sub: SubExperiment) -> tuple[Status | None, str | None]:
    try:
        return sub.read_status(), None
    except CorruptRecord as e:
        return None, str(e)


def sub_name(sub: SubExperiment) -> str:
    return sub.name if sub.name != "." else sub.exp.name


def read_sub(
    sub: SubExperiment, *, keep_lines: bool = False, finder: metrics.Finder | None = None
) -> tuple[SubResult, list[str]]:
    """One sub-experiment's params, observed state and metrics, plus what could not be read."""
    errors = []
    params, err = _read_record(sub)
    errors += [err] if err else []
    status, err = _read_status(sub)
    errors += [err] if err else []
    state = observed_state(status) if err is None else JobState.FAILED
    values, lines, errs = read_metrics(sub.dir, keep_lines=keep_lines, finder=finder or finder_for(sub.exp))
    res = SubResult(sub.id, sub_name(sub), sub.dir, params, state, status, values, lines)
    return res, errors + errs


# -- the user's metrics(subExpDir) ---------------------------------------------------------------


def user_metrics_function(basedir: Path) -> Callable[..., Any] | None:
    """`metrics` from `basedir/mrl_analyze.py`, or None when there is no such file or function."""
    from metarunlog import hooks

    if not (basedir / hooks.ANALYZE_FILE).is_file():
        return None
    module = hooks.load_user_module(basedir, hooks.ANALYZE_FILE)
    fn = getattr(module, USER_METRICS_FN, None)
    return fn if callable(fn) else None


def add_user_metrics(res: SubResult, fn: Callable[..., Any]) -> str | None:
    """Merge what `fn(subExpDir)` returns into `res.metrics`; the error message if it fails."""
    from metarunlog import hooks

    try:
        extra = hooks.call_user(fn, f"metrics() in {hooks.ANALYZE_FILE} for {res.name}", str(res.dir))
    except HookError as e:
        return str(e)
    if extra is None:
        return None
    if not isinstance(extra, dict):
        return (
            f"metrics() in {hooks.ANALYZE_FILE} returned {type(extra).__name__} for {res.name}: "
            "it must return a dict {name: value}"
        )
    res.metrics.update(extra)
    return None


# -- the experiment ---------------------------------------------------------------------------


def collect(
    exp: Experiment, *, keep_lines: bool = False, user_metrics: bool = True, basedir: Path | None = None
) -> tuple[list[SubResult], list[str]]:
    """Every sub-experiment's result, sorted by id, and the errors met on the way.

    A record that cannot be read, or a user `metrics()` that fails, is reported in the
    errors and the rest is still read. `basedir` locates `mrl_analyze.py` (default: the
    project holding the experiment).
    """
    results, errors = [], []
    finder = finder_for(exp)
    for sub in exp.sub_experiments():
        res, errs = read_sub(sub, keep_lines=keep_lines, finder=finder)
        results.append(res)
        errors += errs
    if user_metrics:
        errors += add_all_user_metrics(results, basedir or project_basedir(exp))
    return results, errors


def add_all_user_metrics(results: list[SubResult], basedir: Path) -> list[str]:
    """Merge the user's `metrics(subExpDir)` into every result; the errors it met."""
    fn = user_metrics_function(basedir) if results else None
    if fn is None:
        return []
    return [err for res in results if (err := add_user_metrics(res, fn))]


def project_basedir(exp: Experiment) -> Path:
    from metarunlog.project import find_basedir

    return find_basedir(exp.dir) or exp.dir.parent.parent


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def param_order(results: list[SubResult]) -> list[str]:
    """Every param name, in the order the first sub-experiments declare them."""
    seen: dict[str, None] = {}
    for r in results:
        for k in r.params:
            seen.setdefault(k, None)
    return list(seen)


def varying_params(results: list[SubResult]) -> list[str]:
    """Params whose value differs between sub-experiments (missing counts as a value).

    With a single sub-experiment every param is returned: nothing else would say what it ran.
    """
    names = param_order(results)
    if len(results) <= 1:
        return names
    out = []
    for k in names:
        first = _freeze(results[0].params.get(k, _Missing))
        if any(_freeze(r.params.get(k, _Missing)) != first for r in results[1:]):
            out.append(k)
    return out


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


def metric_order(results: list[SubResult]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for k in r.metrics:
            seen.setdefault(k, None)
    return list(seen)


def make_table(results: list[SubResult], *, all_params: bool = False, errors: list[str] | None = None) -> Table:
    """Rows from results: varying params (or all, varying first), state, duration, metrics.

    A metric named like a param or a built-in column is shown as `metric.<name>`.
    """
    everything = param_order(results)
    varying = varying_params(results)
    params = varying + [p for p in everything if p not in varying] if all_params else varying
    taken = set(everything) | set(BUILTIN_COLUMNS)
    metric_names = metric_order(results)
    shown = {m: (METRIC_PREFIX + m if m in taken else m) for m in metric_names}
    rows = []
    for r in results:
        row: dict[str, Any] = {"id": r.name}
        for p in params:
            row[p] = r.params.get(p)
        row["state"] = r.state.value
        row["duration"] = r.duration
        for m, v in r.metrics.items():
            row[shown[m]] = v
        rows.append(row)
    return Table(params, [shown[m] for m in metric_names], rows, list(errors or []), everything)


def table(exp: Experiment, *, all_params: bool = False, basedir: Path | None = None) -> Table:
    """The table of `mrl table` for one experiment."""
    results, errors = collect(exp, basedir=basedir)
    return make_table(results, all_params=all_params, errors=errors)


def params_frame(subs: list[SubResult]) -> Any:
    """Every param as a DataFrame indexed by folder name (`'001'`, ...): analysis functions' `Dparams`."""
    import pandas as pd

    names = param_order(subs)
    df = pd.DataFrame([[s.params.get(k) for k in names] for s in subs], columns=names, index=[s.name for s in subs])
    df.index.name = "id"
    return df


def is_number(v: Any) -> bool:
    return _is_number(v)


# -- metric curves (for plots) --------------------------------------------------------------------


def x_of(line: dict[str, Any], index: int) -> tuple[str, float]:
    """The x axis a metrics.jsonl line sits at: (key, value), else ("line", its index)."""
    for k in X_KEYS:
        v = line.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, float(v)
    return "line", float(index)


def curves(lines: list[dict[str, Any]]) -> dict[str, tuple[str, list[float], list[float]]]:
    """Per metric key: (x key, xs, ys) over the lines that carry a number (int or float) for it."""
    if not lines:
        return {}
    xkey, xs = _shared_x(lines)
    if xkey is None:
        return _curves_per_line(lines)
    out = {}
    for k in _keys(lines):
        if k in X_KEYS or k in NOT_CURVES:
            continue
        try:
            vals = list(map(itemgetter(k), lines))
        except KeyError:
            vals = [d.get(k) for d in lines]
        if set(map(type, vals)) <= _NUMBER_TYPE_SET:  # the usual case: a number on every line
            out[k] = (xkey, xs, vals)
            continue
        # `type(v) in` (not isinstance) leaves out bools, which are ints to Python.
        pairs = [(x, v) for x, v in zip(xs, vals, strict=True) if type(v) in _NUMBER_TYPES]
        if pairs:
            out[k] = (xkey, [x for x, _ in pairs], [float(v) for _, v in pairs])
    return out


def _keys(lines: list[dict[str, Any]]) -> list[str]:
    """Every key of the lines: the first line's in order, then the others sorted."""
    first = list(lines[0])
    rest = set().union(*lines).difference(first)
    return first + sorted(rest)


_NUMBER_TYPES = (int, float)
_NUMBER_TYPE_SET = frozenset(_NUMBER_TYPES)


def _shared_x(lines: list[dict[str, Any]]) -> tuple[str | None, list[Any]]:
    """The x key when every line has the same first x key (the usual case), and the xs."""
    key, _ = x_of(lines[0], 0)
    if key == "line":
        if any(k in d for d in lines for k in X_KEYS):
            return None, []
        return "line", [float(i) for i in range(len(lines))]
    try:
        xs = list(map(itemgetter(key), lines))
    except KeyError:
        return None, []
    earlier = X_KEYS[: X_KEYS.index(key)]  # a line holding one of these would use it instead
    if set(map(type, xs)) <= _NUMBER_TYPE_SET and not (earlier and any(k in d for d in lines for k in earlier)):
        return key, xs
    return None, []


def _curves_per_line(lines: list[dict[str, Any]]) -> dict[str, tuple[str, list[float], list[float]]]:
    out: dict[str, tuple[str, list[float], list[float]]] = {}
    for i, line in enumerate(lines):
        xkey, x = x_of(line, i)
        for k, v in line.items():
            if k in X_KEYS or k in NOT_CURVES or not _is_number(v):
                continue
            entry = out.get(k)
            if entry is None:
                entry = out[k] = (xkey, [], [])
            entry[1].append(x)
            entry[2].append(float(v))
    return out


# -- helpers ----------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, (int, float)):
        return (0, v)
    if isinstance(v, str):
        return (2, v)
    return (3, _freeze(v))
