"""Statuses + metrics -> one row per sub-experiment (list of dicts, or a pandas DataFrame).

A row holds: `id` (the sub-experiment's folder name), the params that vary across the
experiment (every param with `all_params`), `state` (as `mrl status` shows it: a running
record whose process is gone is `stale`), `duration` (seconds; elapsed so far while it
runs), then the metrics from every reader of `metarunlog.metrics` (metrics.json/.jsonl, CSV
logs, TensorBoard events, run.log patterns) and the user's `metrics(subExpDir)` in
`mrl_analyze.py`: per metric its last value (a summary wins over the rows' last value) or
its best value and step (`summary="best"`/`"both"`). `mrl table`, `mrl analyze` and the
Python API (`metarunlog.api`) all read this. Several experiments make one table with an
`exp` column (`collect_many`, `table_many`); `aggregate` folds seeds into mean/std/n.

Reading is plain Python (no pandas) so that `mrl table` stays fast on 10,000
sub-experiments; pandas is imported only by `Table.to_dataframe()`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeGuard

from metarunlog import gone, metrics
from metarunlog.backends.base import stale_after
from metarunlog.batch import TABLE_COLUMNS  # a table's own columns, never a param's
from metarunlog.errors import CorruptRecord, HookError, MrlError
from metarunlog.experiment import Experiment, SubExperiment
from metarunlog.fmt import format_value  # noqa: F401  (results.format_value: the report and table use it)
from metarunlog.metrics.summary import MAX, MIN, Best
from metarunlog.ownership import Unrecorded
from metarunlog.records import Status
from metarunlog.selection import pick, spec_of
from metarunlog.states import JobState, ended_by_itself, observed_state

log = logging.getLogger("metarunlog.results")  # `mrl` prints it as `mrl: warning: ...`

USER_METRICS_FN = "metrics"
# Keys of a row that say where on the x axis it lies (first one present wins); never metrics.
# `.mrl.cfg` `metrics.step_keys` replaces them for the table.
X_KEYS = metrics.DEFAULT_STEP_KEYS
NOT_CURVES: frozenset[str] = frozenset()  # kept for callers: every non-step numeric key is a curve
BUILTIN_COLUMNS = (*TABLE_COLUMNS, "n")
# A param named like a column the table makes itself (`id`, `state`, ... of a batch made
# before makebatch refused those names; `n`, `loss_std` in an aggregate) is `param.<name>`:
# the table's column had taken its place (`id` replaced the sub-experiment ids, `state` read
# done, `--aggregate --json` had only the count `n`).
PARAM_PREFIX = "param."
COUNT_COLUMNS = ("n", "n_missing")


def param_columns(names: Iterable[str], taken: Iterable[str]) -> dict[str, str]:
    """Each param name -> its column: `param.<name>` when `taken` (the columns the table
    makes itself) has the name, again until it is free (a param literally named `param.id`)."""
    busy, out = set(taken), {}
    for name in names:
        col = name
        while col in busy:
            col = PARAM_PREFIX + col
        busy.add(col)
        out[name] = col
    return out


METRIC_PREFIX = "metric."  # for a metric whose name is already a param or built-in column
SUMMARIES = ("last", "best", "both")
BEST_SUFFIX, STEP_SUFFIX = "_best", "_step"


@dataclass
class SubResult:
    """What one sub-experiment has produced so far."""

    id: int
    name: str  # folder name ("003"); the experiment's name for a one-job experiment
    dir: Path
    params: dict[str, Any]
    state: JobState
    status: Status | None
    metrics: dict[str, Any] = field(default_factory=dict)  # last values (a summary wins per key)
    lines: list[dict[str, Any]] | None = None  # every reader's rows, when asked for
    # per metric of the rows: (x key, xs, ys); filled by the report from `lines`
    curves: dict[str, tuple[str, Any, Any]] | None = None
    log_tail: list[str] | None = None  # run.log's last lines; filled by the report's reader
    best: dict[str, Best] = field(default_factory=dict)  # per metric with a goal
    exp: str = ""  # the experiment's folder name
    has_rows: bool = False  # some reader (or metrics()) gave per-step rows
    summary_keys: frozenset[str] = frozenset()  # last values a summary gave: rows never replace them
    # the kill -9 gap: its live step, which no record names (`unrecorded_states`); `status` is then
    # an earlier attempt's record (or None), never this run's
    unrecorded: Unrecorded | None = None
    note: str = ""  # why its state is not its record's (the kill -9 gap), as `mrl status` says
    # what mrl_analyze.py's metrics() returned (or its error), hashed: "" when none was called
    hook_digest: str = ""

    @property
    def duration(self) -> float | None:
        """Seconds it ran (so far, while it runs); of a step no record names, its age as the
        kernel stamped it (an earlier attempt's duration is not this one's)."""
        if self.unrecorded is not None:
            from metarunlog.procs import age_s

            return age_s(self.unrecorded.start)
        return duration_of(self.status, self.state)


@dataclass
class Table:
    """The rows of `mrl table`, with the column groups that made them."""

    params: list[str]  # param columns shown (varying first... see make_table)
    metrics: list[str]  # metric columns, in order of first appearance
    rows: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)  # user metrics() failures, bad records
    all_params: list[str] = field(default_factory=list)  # every param seen, varying or not
    warnings: list[str] = field(default_factory=list)  # config warnings, a missing optional reader
    exp_column: bool = False  # rows of several experiments: an `exp` column first
    note: str | None = None  # set when no sub-experiment has metrics: where mrl looked
    goal_note: str | None = None  # --summary best/both: the metrics whose best cells are empty (no goal)
    aggregated: bool = False  # rows are groups (`aggregate`): by-params, n, mean and _std columns
    repeat_params: list[str] = field(default_factory=lambda: ["seed"])  # what `aggregate` averages over
    step_columns: set[str] = field(default_factory=set)  # the `<metric>_step` columns of --summary best/both
    # aggregated: `n` (runs with a value), and `n_missing` when some group has runs without any
    counts: list[str] = field(default_factory=lambda: ["n"])
    # every param name -> its column (`params` are columns): `param.id` for a param `id`
    param_columns: dict[str, str] = field(default_factory=dict)

    def column_of(self, param: str) -> str:
        """The column of param `param` (its name, or `param.<name>` when the table's own took it)."""
        return self.param_columns.get(param, param)

    @property
    def columns(self) -> list[str]:
        if self.aggregated:
            return [*(["exp"] if self.exp_column else []), *self.params, *self.counts, *self.metrics]
        return [*(["exp"] if self.exp_column else []), "id", *self.params, "state", "duration", *self.metrics]

    def to_dataframe(self) -> Any:
        """The table as a pandas DataFrame indexed by sub-experiment id; rows of several
        experiments have an `exp` column first (a column, as in `mrl table`, so that
        `df["exp"]`, `groupby("exp")` and `reset_index()` all work; `set_index(["exp", "id"])`
        gives the two-level index); an aggregated table has a plain index."""
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=self.columns)
        if self.aggregated:
            return df
        df["duration"] = pd.to_numeric(df["duration"], errors="coerce")
        return df.set_index("id")

    def sort(self, key: str, reverse: bool = False) -> None:
        """Sort rows by column `key` in place: numbers, then booleans, then text, then other
        values, each kind ascending or (`reverse`) descending; missing values always last."""
        kinds: dict[int, list[dict[str, Any]]] = {}
        absent = []
        for r in self.rows:
            v = r.get(key)
            if _missing(v):
                absent.append(r)
            else:
                kinds.setdefault(_sort_key(v)[0], []).append(r)
        self.rows = []
        for kind in sorted(kinds):
            self.rows += sorted(kinds[kind], key=lambda r: _sort_key(r[key]), reverse=reverse)
        self.rows += absent


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
        if status.start_epoch is not None and 0 <= status.start_epoch - began.timestamp() < 1.5:
            # `start` is whole seconds: up to 1 s early; `startEpoch` is the same moment, exact
            # (trusted only while it agrees with `start`: a writer that set one alone)
            return max(0.0, now.timestamp() - status.start_epoch)
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


def finder_for(exp: Experiment, basedir: Path | None = None) -> metrics.Finder:
    """The metrics readers this experiment's config leaves on (one per experiment: globs compiled once).

    With `basedir`, `metric_goals` of its `mrl_analyze.py` count too (`.mrl.cfg`'s win)."""
    cache = exp.__dict__.setdefault("_mrl_finders", {})  # read_sub per sub (the report) reuses it
    key = str(basedir)
    if key not in cache:
        settings = metrics.settings(exp.cfg)
        if basedir is not None:  # .mrl.cfg's first: the first glob that matches decides (`metrics.goal_of`)
            theirs = {k: v for k, v in user_goals(basedir).items() if k not in settings.goals}
            settings = dataclasses.replace(settings, goals={**settings.goals, **theirs})
        cache[key] = metrics.Finder(settings)
    return cache[key]  # type: ignore[no-any-return]


def user_goals(basedir: Path) -> dict[str, str]:
    """`metric_goals = {"bleu": "max", ...}` from `basedir/mrl_analyze.py`, when it defines one."""
    from metarunlog import hooks

    if not (basedir / hooks.ANALYZE_FILE).is_file():
        return {}
    try:
        goals = getattr(hooks.load_user_module(basedir, hooks.ANALYZE_FILE), "metric_goals", None)
    except HookError:
        return {}  # reported where its metrics() is looked up
    if not isinstance(goals, dict):
        return {}
    return {str(k): str(v) for k, v in goals.items() if v in (MIN, MAX)}


def read_metrics(
    sub_dir: Path,
    *,
    keep_lines: bool = False,
    finder: metrics.Finder | None = None,
    best: bool = True,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
    ended: bool = False,
    writing: bool = False,
    undone: str = "",
) -> tuple[metrics.Summary, list[dict[str, Any]] | None, list[str], list[str]]:
    """(summary, the rows when `keep_lines`, read errors, warnings) of one folder, from every reader.

    The rows are streamed through one `metrics.Accumulator` (bounded memory) unless kept;
    `on_rows` also gets them, batch by batch (a `CurveBuilder`'s `add`).
    `best=False` skips the best values (what `mrl table --summary last` needs is cheaper).
    `ended`: the folder's writer ended by itself (a last line without its line end counts);
    `writing`: it may be writing now (a summary file that does not parse is not written yet);
    `undone`: the state it ended in, when not `done` (a summary cut short is a warning).
    """
    finder = finder or metrics.Finder()
    found = finder.read(sub_dir, ended=ended, writing=writing, undone=undone)
    acc = metrics.Accumulator(finder.settings.step_keys, finder.settings.goals, best=best)
    lines = list(found.rows) if keep_lines else None
    if lines is not None:
        acc.add(lines)
    elif on_rows is not None:
        metrics.sources.consume(found, lambda rows: _fan_out(rows, (acc.add, on_rows)))
    else:
        metrics.sources.consume(found, acc.add)
    return acc.result(found.summary), lines, found.errors, found.warnings


def _fan_out(rows: Iterable[dict[str, Any]], sinks: tuple[Callable[[list[dict[str, Any]]], None], ...]) -> None:
    it = iter(rows)
    while batch := list(itertools.islice(it, CurveBuilder.BATCH)):
        for sink in sinks:
            sink(batch)


def _read_record(sub: SubExperiment) -> tuple[dict[str, Any], str | None]:
    try:
        return sub.own_params, None  # an original batch's subExpId is the id column, not a param
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
    sub: SubExperiment,
    *,
    keep_lines: bool = False,
    finder: metrics.Finder | None = None,
    best: bool = True,
    warnings: list[str] | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> tuple[SubResult, list[str]]:
    """One sub-experiment's params, observed state and metrics, plus what could not be read.

    Readers' warnings (a missing optional extra) are added to `warnings` once each."""
    errors = []
    params, err = _read_record(sub)
    errors += [err] if err else []
    status, err = _read_status(sub)
    errors += [err] if err else []
    state = observed_state(status, sub.status_path, stale_after(sub.exp)) if err is None else JobState.FAILED
    finder = finder or finder_for(sub.exp)
    # the state is read before the files: a run that ends meanwhile is read as running (a
    # line held back until the next read), never a running one as ended
    ended = ended_by_itself(state, status)
    writing = state.active  # its step may be writing them now (pending ones' files came from elsewhere)
    # a summary cut short is a warning of a step that failed or was stopped (it may have been
    # stopped mid-write), an error of one that says it succeeded (its results are wrong) and of
    # a pending one (no step of mrl's wrote it)
    undone = str(state) if state is not JobState.DONE and (state.finished or state is JobState.STALE) else ""
    summary, lines, errs, warns = read_metrics(
        sub.dir,
        keep_lines=keep_lines,
        finder=finder,
        best=best,
        on_rows=on_rows,
        ended=ended,
        writing=writing,
        undone=undone,
    )
    res = SubResult(sub.id, sub_name(sub), sub.dir, params, state, status, summary.last, lines)
    res.best, res.exp, res.has_rows = summary.best, sub.exp.name, summary.has_rows
    res.summary_keys = summary.summary_keys
    if warnings is not None:
        warnings.extend(w for w in warns if w not in warnings)
    return res, errors + errs


# -- the user's metrics(subExpDir) ---------------------------------------------------------------


def scheduled_states(
    exp: Experiment, subs: list[SubExperiment], results: list[SubResult], warnings: list[str] | None = None
) -> None:
    """The state `mrl status` shows, for the records only their backend can judge (Slurm:
    queued or running ones, an array cancelled while queued): asked of it once for all of
    them (`observe_any`). Local records keep what `read_sub` saw (liveness checked there).
    A backend that cannot answer (the controller down, or silent past
    run.slurm.query_timeout) leaves the recorded states, and one warning says so."""
    from metarunlog.backends.base import Job, asks_backend, observe_any, unread_note

    by_id = {sub.id: sub for sub in subs}
    asked = [(r, Job(by_id[r.id], status=r.status)) for r in results if r.status is not None and asks_backend(r.status)]
    if asked:
        observe_any(exp, [job for _, job in asked], read=False)
    unread: dict[tuple[str, str], list[int]] = {}
    for res, job in asked:
        res.state = job.state
        if job.unread is not None:
            unread.setdefault(job.unread, []).append(job.id)
    for (who, why), ids in unread.items():
        _warn(unread_note(who, why, f"{exp.name}/{spec_of(ids)}"), warnings)
    unrecorded_states(exp, by_id, results, warnings)


def unrecorded_states(
    exp: Experiment, by_id: Mapping[int, SubExperiment], results: list[SubResult], warnings: list[str] | None = None
) -> None:
    """The kill -9 gap, as `mrl status` shows it: a live step that a runner killed with -9
    started and never recorded (`ownership.unrecorded`) is `running`, with `note` naming its
    pid and one warning each; its duration is the step's age (`SubResult.duration`). Only
    what /proc proves is shown: its record (an earlier attempt's, or none) is left as it is,
    never read as this attempt's, and nothing is written."""
    from metarunlog.backends.base import Job
    from metarunlog.ownership import unrecorded, unrecorded_steps

    found = unrecorded_steps(exp)  # a listing of EXPDIR/.mrl.owners: /proc only after a killed runner
    picked = [(r, Job(by_id[r.id], state=r.state, status=r.status)) for r in results if r.id in found]
    if not picked:
        return
    gap = unrecorded(exp, [job for _, job in picked], found)
    for res, job in picked:
        if job in gap:
            res.state, res.unrecorded, res.note = JobState.RUNNING, gap[job], job.message
            then = "mrl cancel stops it" if gap[job].proven else "if it is that run's step, stop it yourself"
            _warn(f"{exp.name}/{res.name} is running: {job.message} ({then})", warnings)


def _warn(warning: str, warnings: list[str] | None) -> None:
    """`warning` logged (`mrl: warning: ...`, an API `MrlWarning`) and kept in `warnings` (the report shows them)."""
    if warnings is not None:
        warnings.append(warning)
    log.warning(warning)


def user_metrics_function(basedir: Path) -> Callable[..., Any] | None:
    """`metrics` from `basedir/mrl_analyze.py`, or None when there is no such file or function."""
    from metarunlog import hooks

    if not (basedir / hooks.ANALYZE_FILE).is_file():
        return None
    module = hooks.load_user_module(basedir, hooks.ANALYZE_FILE)
    fn = getattr(module, USER_METRICS_FN, None)
    return fn if callable(fn) else None


def add_user_metrics(res: SubResult, fn: Callable[..., Any], settings: metrics.Settings | None = None) -> str | None:
    """Merge what `fn(subExpDir)` returns into `res`; the error message if it fails.

    A dict is a summary (merged over the files' last values); a list of dicts is a curve
    (rows: its last values merged the same way, best values compared with the files' ones,
    and the rows added to `res.lines` when those are kept).
    """
    from metarunlog import hooks

    try:
        with hooks.prints_to_stderr():
            extra = hooks.call_user(fn, f"metrics() in {hooks.ANALYZE_FILE} for {res.name}", str(res.dir))
    except HookError as e:
        res.hook_digest = _digest(("error", _ADDRESS.sub(" at 0x?", str(e))))  # an object named in it
        return str(e)
    extra = plain_values(extra)
    res.hook_digest = _digest(extra)
    if extra is None:
        return None
    bad = _key_not_a_name(extra)
    if bad is not None:
        return f"metrics() in {hooks.ANALYZE_FILE} returned the key {bad} for {res.name}: a metric's name must be a str"
    settings = settings or metrics.Settings()
    acc = metrics.Accumulator(settings.step_keys, settings.goals)
    if isinstance(extra, dict):
        # a summary, as metrics.json: the last values, and a best only where no row gave one
        # (a lower final test loss is no best over training; step None = a summary's value)
        summary = acc.result(extra)
        summary.best = {k: b for k, b in summary.best.items() if (k not in res.best or res.best[k].step is None)}
        for k in summary.best:
            res.best.pop(k, None)
        merge_summary(res, summary)
        res.summary_keys |= summary.summary_keys
        return None
    if isinstance(extra, (list, tuple)) and all(isinstance(d, dict) for d in extra):
        acc.add(extra)
        rows = acc.result()
        # rows, as the files' rows: a summary's last value (metrics.json) still wins
        rows.last = {k: v for k, v in rows.last.items() if k not in res.summary_keys}
        merge_summary(res, rows)
        if res.lines is not None:
            res.lines.extend(extra)
        elif res.curves is not None:  # the report has turned the rows into curves already
            _add_curves(res.curves, list(extra))
        return None
    return (
        f"metrics() in {hooks.ANALYZE_FILE} returned {type(extra).__name__} for {res.name}: "
        "it must return a dict {name: value} (final values) or a list of them (one per step)"
    )


def _digest(value: Any) -> str:
    """A hash of `value`'s canonical form (`canonical`): equal for equal values, whatever
    process made them."""
    import hashlib

    try:
        text = canonical(value)
    except Exception as e:  # noqa: BLE001  (a user object's __repr__: the report still goes on)
        text = f"unrepresentable {type(value).__name__}: {_ADDRESS.sub(' at 0x?', str(e))}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # `<Model object at 0x7f3a...>`: where it lives, no value


def canonical(value: Any, depth: int = 0) -> str:
    """`value` as text that changes only when a value in it does: numbers, strings, None and
    bools by their repr (with their type: 1, 1.0 and True differ), a dict's items in order,
    a set's sorted, an array (numpy, torch, pandas: `tolist`) whole rather than its
    abbreviated repr (`[0, 1, ..., 999]`, which hides a change in the middle), any other
    object by its repr less its memory address (`<Model object at 0x7f3a...>` differs on
    every call, no value in it does). Its own repr is all mrl knows of such an object: one
    that shows a time or a random number reads as changed (never as unchanged when a value
    it shows changed)."""
    if depth > 50:  # a structure nested deeper than any metrics: its repr, bounded
        return _ADDRESS.sub(" at 0x?", repr(value))
    if value is None or type(value) in (bool, int, float, str, bytes):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, dict):
        items = ", ".join(f"{canonical(k, depth + 1)}: {canonical(v, depth + 1)}" for k, v in value.items())
        return f"{type(value).__name__}{{{items}}}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{', '.join(canonical(v, depth + 1) for v in value)}]"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}{{{', '.join(sorted(canonical(v, depth + 1) for v in value))}}}"
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if type(value).__module__.partition(".")[0] in (*_ARRAY_LIBRARIES, "pandas"):
        if callable(getattr(value, "to_dict", None)) and hasattr(value, "columns"):  # a DataFrame
            return f"{kind}:{canonical(value.to_dict(orient='split'), depth + 1)}"
        if callable(getattr(value, "tolist", None)):
            return f"{kind}:{canonical(value.tolist(), depth + 1)}"
    return f"{kind}:{_ADDRESS.sub(' at 0x?', repr(value))}"


def metrics_hook_digest(results: Iterable[SubResult]) -> str:
    """One hash of what metrics() returned for every sub-experiment ("" when it was not
    called): a file only it reads may change with no mtime mrl watches, its values cannot."""
    parts = sorted(f"{r.name}\0{r.hook_digest}" for r in results if r.hook_digest)
    return _digest(parts) if parts else ""


def _key_not_a_name(extra: Any) -> str | None:
    """The first key no str in what metrics() returned (a dict, or a list of dicts)."""
    from metarunlog.metrics.base import not_a_name

    dicts = [extra] if isinstance(extra, dict) else extra if isinstance(extra, (list, tuple)) else []
    return next((bad for d in dicts if isinstance(d, dict) and (bad := not_a_name(d)) is not None), None)


def _add_curves(into: dict[str, tuple[str, Any, Any]], rows: list[dict[str, Any]]) -> None:
    from array import array

    for m, (xkey, xs, ys) in curves(rows).items():
        into.setdefault(m, (xkey, array("d", xs), array("d", ys)))


# Libraries whose scalars users return (np.float32(0.5), torch.tensor(0.5), a jax array): as the
# Python numbers they hold, for best values, means and JSON alike.
_ARRAY_LIBRARIES = frozenset({"numpy", "torch", "jax", "jaxlib", "tensorflow"})


def plain_values(extra: Any) -> Any:
    """What metrics() returned, its numpy/torch scalars made Python numbers (a dict, or a list of dicts)."""
    if isinstance(extra, dict):
        return {k: _plain(v) for k, v in extra.items()}
    if isinstance(extra, (list, tuple)):
        return [plain_values(d) if isinstance(d, dict) else d for d in extra]
    return extra


def _plain(v: Any) -> Any:
    if type(v) in (int, float, str, bool) or v is None:
        return v
    item = getattr(v, "item", None)
    if callable(item) and type(v).__module__.partition(".")[0] in _ARRAY_LIBRARIES:
        try:
            return item()
        except (ValueError, RuntimeError, TypeError):  # an array of several values: left as it is
            return v
    return v


def merge_summary(res: SubResult, extra: metrics.Summary) -> None:
    """`extra`'s last values over `res`'s; per metric the better best (the earlier on a tie)."""
    res.metrics.update(extra.last)
    for k, b in extra.best.items():
        old = res.best.get(k)
        if old is None or (b.value < old.value if b.goal == MIN else b.value > old.value):
            res.best[k] = b
    res.has_rows = res.has_rows or extra.has_rows


# -- the experiment ---------------------------------------------------------------------------


def collect(
    exp: Experiment,
    *,
    keep_lines: bool = False,
    user_metrics: bool = True,
    basedir: Path | None = None,
    best: bool = True,
    warnings: list[str] | None = None,
    only: list[SubExperiment] | None = None,
) -> tuple[list[SubResult], list[str]]:
    """Every sub-experiment's result (or those of `only`), sorted by id, and the errors met on the way.

    A record that cannot be read, or a user `metrics()` that fails, is reported in the
    errors and the rest is still read. `basedir` locates `mrl_analyze.py` (default: the
    project holding the experiment). Warnings (config, a missing optional reader) are
    added to `warnings`.
    """
    results, errors = [], []
    basedir = basedir or project_basedir(exp)
    finder = finder_for(exp, basedir)
    if warnings is not None:
        warnings.extend(w for w in exp.cfg.warnings if w not in warnings)
    subs = exp.sub_experiments() if only is None else only
    for sub in subs:
        res, errs = read_sub(sub, keep_lines=keep_lines, finder=finder, best=best, warnings=warnings)
        results.append(res)
        errors += errs
    scheduled_states(exp, subs, results, warnings)
    if user_metrics:
        errors += add_all_user_metrics(results, basedir, finder.settings)
    return results, errors


def add_all_user_metrics(
    results: list[SubResult], basedir: Path, settings: metrics.Settings | None = None
) -> list[str]:
    """Merge the user's `metrics(subExpDir)` into every result; the errors it met."""
    fn = user_metrics_function(basedir) if results else None
    if fn is None:
        return []
    return [err for res in results if (err := add_user_metrics(res, fn, settings))]


def no_metrics_note(exp: Experiment, basedir: Path | None = None) -> str:
    """The one line saying where mrl looked for metrics (for a table that has none)."""
    from metarunlog import hooks

    finder = finder_for(exp)
    looked = ", ".join(finder.looked_for())
    hook = f"{USER_METRICS_FN}(subExpDir) in {hooks.ANALYZE_FILE}"
    where = basedir or project_basedir(exp)
    has = "is there but returned nothing" if user_metrics_function(where) else "does not exist"
    # The log reader is off until a pattern is set: a script that only prints its results
    # (the commonest kind) must learn that its run.log is one setting away.
    settings = finder.settings
    printed = (
        f"; the lines your script prints ({', '.join(settings.log_files)}) count once .mrl.cfg"
        " metrics.patterns has a regex for them"
        if not settings.patterns and "log" not in settings.off
        else ""
    )
    # A rerun sets the earlier attempts' files aside: they are not this attempt's, but say where
    from metarunlog.experiment import ATTEMPTS

    kept = [sub.name for sub in exp.sub_experiments() if (sub.dir / ATTEMPTS).is_dir()]
    earlier = (
        f"; earlier attempts' metrics files are kept in SUBDIR/{ATTEMPTS}/N/ ({_few(kept)}), not shown as these"
        if kept
        else ""
    )
    return (
        f"no metrics in {exp.name}: looked for {looked} in each sub-experiment folder, and {hook} {has}"
        f"{printed}{earlier} (see docs/table.md, 'Where mrl finds metrics')"
    )


def _few(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


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


def make_table(
    results: list[SubResult],
    *,
    all_params: bool = False,
    errors: list[str] | None = None,
    summary: str = "last",
    exp_column: bool = False,
) -> Table:
    """Rows from results: varying params (or all, varying first), state, duration, metrics.

    `summary`: `last` shows each metric's last value; `best` its best value (min or max by
    its goal, see `metrics.goal_of`) and `<metric>_step`, the step where it was reached;
    `both` the last value, `<metric>_best` and `<metric>_best_step`. A metric without a goal
    has no best value (its best cells are empty). A metric named like a param or a built-in
    column is shown as `metric.<name>`; a param named like a column the table makes (`id`,
    `state`, a metric's `<metric>_best`) as `param.<name>`. `exp_column` adds the experiment's
    name first.
    """
    if summary not in SUMMARIES:
        raise MrlError(f"--summary {summary}: use one of {', '.join(SUMMARIES)}")
    everything = param_order(results)
    varying = varying_params(results)
    params = varying + [p for p in everything if p not in varying] if all_params else varying
    taken = set(everything) | set(BUILTIN_COLUMNS)
    metric_names = metric_order(results)
    shown = {m: (METRIC_PREFIX + m if m in taken else m) for m in metric_names}
    shown = _clear_of_derived(shown, lambda name: _metric_columns(name, summary)[1:])
    columns = [c for m in metric_names for c in _metric_columns(shown[m], summary)]
    pcols = param_columns(everything, [*TABLE_COLUMNS, *columns])
    rows = [_row(r, params, pcols, shown, summary, exp_column) for r in results]
    tab = Table([pcols[p] for p in params], columns, rows, list(errors or []), everything, exp_column=exp_column)
    tab.param_columns = pcols
    tab.step_columns = {c for c in columns if summary != "last" and c.endswith(STEP_SUFFIX) and c not in shown.values()}
    return tab


def _clear_of_derived(shown: dict[str, str], derived: Callable[[str], Iterable[str]]) -> dict[str, str]:
    """`shown` (metric -> column) with `metric.` before a column that another metric's derived
    columns (`reward_std` of `reward` in an aggregate, `val_acc_best` of `val_acc`) would
    overwrite: a logged `reward_std` must not replace the std mrl computes, nor the other way."""
    made = {d for col in shown.values() for d in derived(col)}
    return {m: (METRIC_PREFIX + col if col in made else col) for m, col in shown.items()}


def _metric_columns(name: str, summary: str) -> list[str]:
    if summary == "best":
        return [name, name + STEP_SUFFIX]
    if summary == "both":
        return [name, name + BEST_SUFFIX, name + BEST_SUFFIX + STEP_SUFFIX]
    return [name]


def _row(
    r: SubResult, params: list[str], pcols: dict[str, str], shown: dict[str, str], summary: str, exp_column: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {"exp": r.exp} if exp_column else {}
    row["id"] = r.name
    for p in params:
        row[pcols[p]] = r.params.get(p)
    row["state"] = r.state.value
    row["duration"] = r.duration
    for m, v in r.metrics.items():
        col, b = shown[m], r.best.get(m)
        if summary == "last":
            row[col] = v
        elif summary == "best":
            row[col], row[col + STEP_SUFFIX] = (b.value, b.step) if b else (None, None)
        else:
            row[col] = v
            row[col + BEST_SUFFIX], row[col + BEST_SUFFIX + STEP_SUFFIX] = (b.value, b.step) if b else (None, None)
    return row


def table(exp: Experiment, *, all_params: bool = False, basedir: Path | None = None, summary: str = "last") -> Table:
    """The table of `mrl table` for one experiment."""
    return table_many([exp], all_params=all_params, basedir=basedir, summary=summary, exp_column=False)


def table_many(
    exps: list[Experiment],
    *,
    all_params: bool = False,
    basedir: Path | None = None,
    summary: str = "last",
    exp_column: bool = True,
    subs: Mapping[int, str] | None = None,
) -> Table:
    """One table over several experiments: an `exp` column, the params that vary over all rows.

    `tab.note` is set (where mrl looked) when no sub-experiment has any metric; the
    experiments' batch records decide the repeat axis `aggregate` folds. `subs`: only
    these sub-experiments of an experiment (`selection.pick`; an id it lacks is an error).
    """
    results: list[SubResult] = []
    errors: list[str] = []
    warnings: list[str] = []
    for exp in exps:
        try:
            only = None
            if subs and exp.id in subs:  # one whose folder a run saw removed: no row, `mrl table` says why
                only = pick(exp.sub_experiments(), subs[exp.id], [g.id for g in gone.entries(exp)])
            res, errs = collect(exp, basedir=basedir, best=summary != "last", warnings=warnings, only=only)
        except MrlError as e:
            if len(exps) == 1:
                raise  # the one experiment asked for: its error is the answer
            errors.append(str(e))  # one unreadable record among many: the others are still shown
            continue
        results += res
        errors += errs
    tab = make_table(results, all_params=all_params, errors=errors, summary=summary, exp_column=exp_column)
    tab.warnings = warnings
    tab.repeat_params = repeat_params(exps)
    # a metrics file that could not be read is its own error line: not also "no metrics, looked for it"
    if results and not tab.metrics and exps and not errors and not metrics.missing_extra(warnings):
        tab.note = no_metrics_note(exps[-1], basedir)
    if summary != "last":
        tab.goal_note = no_goal_note(results, [finder_for(e, basedir).settings.goals for e in exps])
    return tab


def no_goal_note(results: list[SubResult], goals: list[dict[str, str]]) -> str | None:
    """Names the numeric metrics no goal is known for (by name or `metric_goals`): their best
    cells are empty, and the person reading the table should learn why and what to set."""
    names = [
        m
        for m in metric_order(results)
        if not any(m in r.best for r in results)
        and any(is_number(r.metrics.get(m)) for r in results)
        and all(metrics.goal_of(m, g) is None for g in goals or [{}])
    ]
    if not names:
        return None
    example = json.dumps({names[0]: MIN}, ensure_ascii=False)
    return (
        f"note: no goal known for {', '.join(names)}: their best values are left empty;"
        f' say which way is better in .mrl.cfg, e.g. "metric_goals": {example}'
    )


def repeat_params(exps: list[Experiment]) -> list[str]:
    """The repeat axes `aggregate` folds (and the report's means and bands average over):
    `repeat` when some batch used MRL:repeat (its variable), params named `seed`, and the
    params `.mrl.cfg` `repeat_axes` declares (`["random_seed", "fold"]`) for any of `exps`."""
    from metarunlog.batch import REPEAT_KEY

    repeats, declared = False, []
    for exp in exps:
        try:
            batch = exp.record.batch
            declared += [str(p) for p in exp.cfg.get("repeat_axes") or []]
        except MrlError:
            continue
        repeats = repeats or (batch is not None and batch.repeat is not None)
    return list(dict.fromkeys([*([REPEAT_KEY] if repeats else []), "seed", *declared]))


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


def x_of(line: dict[str, Any], index: int, step_keys: tuple[str, ...] = X_KEYS) -> tuple[str, float]:
    """The x axis a row sits at: (its first step key, value), else ("line", its index)."""
    for k in step_keys:
        v = line.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, float(v)
    return "line", float(index)


def curves(
    lines: list[dict[str, Any]], step_keys: tuple[str, ...] = X_KEYS, start: int = 0
) -> dict[str, tuple[str, list[float], list[float]]]:
    """Per metric key: (x key, xs, ys) over the lines that carry a number (int or float) for it.

    `step_keys` (`metrics.step_keys`) are the x axis, never curves of their own. `start`:
    the index of the first line (the x of a line without a step key), for lines in batches."""
    if not lines:
        return {}
    xkey, xs = _shared_x(lines, step_keys, start)
    if xkey is None:
        return _curves_per_line(lines, step_keys, start)
    out = {}
    for k in _keys(lines):
        if k in step_keys or k in NOT_CURVES:
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
            out[k] = (xkey, [x for x, _ in pairs], [as_float(v) for _, v in pairs])
    return out


def _keys(lines: list[dict[str, Any]]) -> list[str]:
    """Every key of the lines: the first line's in order, then the others sorted."""
    first = list(lines[0])
    rest = set().union(*lines).difference(first)
    return first + sorted(rest)


_NUMBER_TYPES = (int, float)
_NUMBER_TYPE_SET = frozenset(_NUMBER_TYPES)


def _shared_x(lines: list[dict[str, Any]], step_keys: tuple[str, ...], start: int = 0) -> tuple[str | None, list[Any]]:
    """The x key when every line has the same first x key (the usual case), and the xs."""
    key, _ = x_of(lines[0], 0, step_keys)
    if key == "line":
        if any(k in d for d in lines for k in step_keys):
            return None, []
        return "line", [float(i) for i in range(start, start + len(lines))]
    try:
        xs = list(map(itemgetter(key), lines))
    except KeyError:
        return None, []
    earlier = step_keys[: step_keys.index(key)]  # a line holding one of these would use it instead
    if set(map(type, xs)) <= _NUMBER_TYPE_SET and not (earlier and any(k in d for d in lines for k in earlier)):
        return key, xs
    return None, []


def _curves_per_line(
    lines: list[dict[str, Any]], step_keys: tuple[str, ...], start: int = 0
) -> dict[str, tuple[str, list[float], list[float]]]:
    out: dict[str, tuple[str, list[float], list[float]]] = {}
    for i, line in enumerate(lines, start):
        xkey, x = x_of(line, i, step_keys)
        for k, v in line.items():
            if k in step_keys or k in NOT_CURVES or not _is_number(v):
                continue
            entry = out.get(k)
            if entry is None:
                entry = out[k] = (xkey, [], [])
            entry[1].append(x)
            entry[2].append(as_float(v))
    return out


class CurveBuilder:
    """`curves()` of rows that stream by in batches, into `array("d")`s: the report's curves
    of a 200 MB metrics.jsonl without holding its rows as dicts (885 MB peak before, for
    4 metrics x 2M lines). Metrics logged on the same lines share one xs array, as long as
    every batch gives them the same xs.

    A curve is kept to at most 2 x MAX_POINTS points: one that reaches that is halved, each
    run of 4 points down to its lowest and highest (in step order), so that its spikes stay
    (the plots decimate to ~2,000 points a line the same way) and memory stays bounded
    however long the run (a 1e8-step log). Its earlier part is then sparser than its
    latest; the table's last and best values come from every row, never from a curve."""

    BATCH = 8192
    MAX_POINTS = 100_000

    def __init__(self, step_keys: tuple[str, ...]) -> None:
        self.step_keys = step_keys
        self.n = 0
        self.out: dict[str, tuple[str, Any, Any]] = {}

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        from array import array

        batch = list(rows)
        got = curves(batch, self.step_keys, self.n)
        # a metric's xs: (the array it had, the list this batch gave); equal keys share again
        keys = {m: (id(self.out[m][1]) if m in self.out else 0, id(xs)) for m, (_, xs, _) in got.items()}
        owners: dict[int, list[str]] = {}
        for m, (_, arr, _) in self.out.items():
            owners.setdefault(id(arr), []).append(m)
        made: dict[tuple[int, int], Any] = {}
        for m, (xkey, xs, ys) in got.items():
            old = self.out.get(m)
            arr = made.get(keys[m])
            if arr is None:
                if old is None:
                    arr = array("d")
                elif all(keys.get(o) == keys[m] for o in owners[id(old[1])]):
                    arr = old[1]  # nobody else holds it, or all who do get the same xs: extend it
                else:  # its sharers part ways here: a copy of its own
                    arr = array("d", old[1])
                _extend(arr, xs)
                made[keys[m]] = arr
            ys_arr = old[2] if old else array("d")
            _extend(ys_arr, ys)
            self.out[m] = (old[0] if old else xkey, arr, ys_arr)
        self.n += len(batch)
        for m, (xkey, xs_arr, ys_arr) in self.out.items():
            if len(ys_arr) >= 2 * self.MAX_POINTS:
                self.out[m] = (xkey, *_halved(xs_arr, ys_arr))  # arrays of its own from here on

    def result(self) -> dict[str, tuple[str, Any, Any]]:
        return self.out


def _halved(xs: Any, ys: Any) -> tuple[Any, Any]:
    """A curve with each run of 4 points down to its lowest and highest, in step order (a
    flat run: its first and last; a run's first NaN stands for its NaNs), the last 1-4
    points kept whole (the last value stays the curve's end)."""
    from array import array

    import numpy as np

    x, y = np.frombuffer(xs, dtype=float)[: len(ys)], np.frombuffer(ys, dtype=float)
    n = (len(y) - 1) // 4 * 4
    runs = y[:n].reshape(-1, 4)
    lo, hi = runs.argmin(axis=1), runs.argmax(axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    flat = first == second
    first, second = np.where(flat & (first == 3), 0, first), np.where(flat & (first != 3), 3, second)
    base = np.arange(0, n, 4)
    picks = np.stack([base + first, base + second], axis=1).ravel()
    keep = np.concatenate([picks, np.arange(n, len(y))])
    return array("d", x[keep].tobytes()), array("d", y[keep].tobytes())


def _extend(arr: Any, values: list[Any]) -> None:
    """`arr.extend(values)`; an int past a float's range (a diverged `10**400`) as +-inf,
    as the table takes it, where it was an OverflowError traceback of `mrl analyze`."""
    n = len(arr)
    try:
        arr.extend(values)
    except OverflowError:
        del arr[n:]
        arr.extend(map(as_float, values))


def as_float(v: int | float) -> float:
    """float(v), with an int too large for a float as +-inf."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


# -- helpers ----------------------------------------------------------------------------------


def _is_number(v: Any) -> TypeGuard[int | float]:
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


def build(
    exps: list[Experiment],
    *,
    all_params: bool = False,
    sort: str | None = None,
    reverse: bool = False,
    basedir: Path | None = None,
    summary: str = "last",
    group: bool = False,
    by: str | list[str] | None = None,
    over: str | list[str] | None = None,
    where_expr: str | None = None,
    exp_column: bool = True,
    subs: Mapping[int, str] | None = None,
) -> Table:
    """The table of `mrl table` (and `api.load_table`): read, filtered (`where_expr`), aggregated (`group`),
    sorted (`sort`: a column, `-KEY` descending; missing values last). MrlError for bad options.
    `subs`: experiment id -> the selection (`3,5-6`) of its sub-experiments to show."""
    # one name is one param (`by="lr"` of the API was the params l and r)
    by, over = ([by] if isinstance(by, str) else by), ([over] if isinstance(over, str) else over)
    if (by or over) and not group:  # the API ignored them silently
        raise MrlError("--by and --over go with --aggregate: add --aggregate (aggregate=True in metarunlog.api)")
    # `--by exp` groups by the experiment: its rows must carry it, of one experiment too
    exp_column = exp_column or (group and "exp" in (by or []))
    # `--by` a param that does not vary: the rows must carry it too (they had None)
    all_params = all_params or bool(group and by)
    tab = table_many(exps, all_params=all_params, basedir=basedir, summary=summary, exp_column=exp_column, subs=subs)
    if where_expr:
        where(tab, where_expr)
    if group:
        tab = aggregate(tab, by=by, over=over)
    if sort:
        if sort.startswith("-") and sort not in tab.columns:
            sort, reverse = sort[1:], not reverse
        tab.sort(_column(tab, sort), reverse=reverse)
    return tab


def _column(tab: Table, key: str) -> str:
    if key in tab.columns:
        return key
    if METRIC_PREFIX + key in tab.columns:
        return METRIC_PREFIX + key
    if key in tab.all_params:
        raise MrlError(f"--sort {key}: that param is the same everywhere; add --all-params to show it")
    raise MrlError(f"--sort {key}: no such column; the columns are: {', '.join(tab.columns)}")


# -- filtering and aggregating a table ---------------------------------------------------------------


def where(tab: Table, text: str) -> Table:
    """Keep the rows for which the `--where` expression holds (see `metarunlog.where`)."""
    from metarunlog.where import filter_rows

    tab.rows = filter_rows(tab.rows, text, tab.columns)
    return tab


def aggregate(tab: Table, by: list[str] | None = None, over: list[str] | None = None) -> Table:
    """One row per group of sub-experiments: each metric's mean, `<metric>_std`, and `n`.

    Groups: the combinations of `by` (params, or `exp`: the experiment; a param is also named
    by its column, `param.exp`), by default of the varying params except the repeat axes:
    `tab.repeat_params` (MRL:repeat's `repeat`, params named `seed`) and `over`. A metric's
    mean and standard deviation (population, as `numpy.std`) are over its numeric, non-NaN
    values (None when it has none). `n` counts the group's runs that have a value of some
    metric (all of its runs when the table has no metric);
    `n_missing`, a column only when some group has them, the runs that have none (a run
    that failed before it logged anything); `<metric>_n`, a column only for a metric that
    some run with values lacks, how many values its mean is over. Groups keep the order of
    their first row. Best-step columns are left out.
    """
    # keys are the table's columns: `exp` (the experiment) is never the param `exp` (`param.exp`)
    keys = [_group_column(tab, p) for p in by] if by else None
    axes = {tab.column_of(p) for p in tab.repeat_params} | {_group_column(tab, p) for p in over or []}
    keys = keys or [c for c in tab.params if c not in axes]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in tab.rows:
        groups.setdefault(_freeze([row.get(k) for k in keys]), []).append(row)
    source = [m for m in tab.metrics if m not in tab.step_columns]
    named = _clear_of_derived({m: m for m in source}, lambda col: (col + "_std", col + "_n"))
    named = {m: (METRIC_PREFIX + col if col == "n_missing" else col) for m, col in named.items()}
    made = [*TABLE_COLUMNS, *COUNT_COLUMNS, *(c for m in named.values() for c in (m, m + "_std", m + "_n"))]
    pcols = param_columns(tab.all_params, made)  # a param `n` or `loss_std`: `param.n`, `param.loss_std`
    name_of = {col: p for p, col in tab.param_columns.items()}
    cols = {k: k if k == "exp" else pcols[name_of.get(k, k)] for k in keys}
    rows = [_group_row(members, cols, named) for members in groups.values()]
    shown = list(named.values())
    exp_column = "exp" in keys
    params = [cols[k] for k in keys if k != "exp"]
    counted = {m for m in shown if any(r[m + "_n"] != r["n"] for r in rows)}
    for r in rows:
        for m in shown:
            if m not in counted:
                del r[m + "_n"]
    columns = [c for m in shown for c in (m, m + "_std", *([m + "_n"] if m in counted else []))]
    agg = Table(
        params, columns, rows, tab.errors, tab.all_params, tab.warnings, exp_column, tab.note, tab.goal_note, True
    )
    agg.param_columns = pcols
    if any(r["n_missing"] for r in rows):
        agg.counts = ["n", "n_missing"]
        agg.note = tab.note or _missing_note([r for ms in groups.values() for r in ms], source)
    else:
        for r in rows:
            del r["n_missing"]
    return agg


def _group_column(tab: Table, name: str) -> str:
    """The table's column a `--by`/`--over` item names: `exp` (the experiment), a param's
    name or its column (`param.id`)."""
    if name == "exp":
        return name
    if name in tab.all_params:
        return tab.column_of(name)
    if name in tab.param_columns.values():
        return name
    bare = name.removeprefix(PARAM_PREFIX)  # `param.loss_std`: how the aggregate shows the param
    if bare != name and bare in tab.all_params:
        return tab.column_of(bare)
    raise MrlError(f"--by/--over {name}: no such param; the params are: {', '.join(tab.all_params) or 'none'}")


def _group_row(members: list[dict[str, Any]], keys: dict[str, str], named: dict[str, str]) -> dict[str, Any]:
    """One group's row: `keys` maps each grouping column of the table to its column here,
    `named` each metric column."""
    first = members[0]
    row: dict[str, Any] = {col: first.get(k) for k, col in keys.items()}
    with_value = [r for r in members if any(not _missing(r.get(m)) for m in named)]
    row["n"] = len(with_value) if named else len(members)
    row["n_missing"] = len(members) - row["n"]
    for src, m in named.items():
        row[m], row[m + "_std"], row[m + "_n"] = _stats(r.get(src) for r in members)
    return row


def _missing_note(rows: list[dict[str, Any]], metric_names: list[str]) -> str:
    """Which runs `n` leaves out (no value of any metric), for the person reading the table."""
    missing = [r for r in rows if all(_missing(r.get(m)) for m in metric_names)]
    names = [f"{r['exp']}/{r['id']}" if r.get("exp") else str(r.get("id")) for r in missing]
    shown = ", ".join(f"{name} ({r.get('state')})" for name, r in zip(names[:10], missing, strict=False))
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    runs = "1 run has" if len(missing) == 1 else f"{len(missing)} runs have"
    return f"note: n counts the runs with a value; {runs} none (counted in n_missing): {shown}{more}"


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None]:
    """(mean, population standard deviation) of the numeric non-NaN values; (None, None) for none."""
    mean, std, _n = _stats(values)
    return mean, std


def _stats(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """`mean_std` and how many values it is over."""
    xs = [as_float(v) for v in values if _is_number(v) and v == v]  # not NaN (isnan overflows on huge ints)
    if not xs:
        return None, None, 0
    mean = fsum(xs) / len(xs)
    return mean, math.sqrt(fsum([(x - mean) * (x - mean) for x in xs]) / len(xs)), len(xs)


def fsum(xs: list[float]) -> float:
    """`math.fsum`, but inf or nan where it raises: values near 1e308 overflow inside it,
    and inf + -inf is an error to it (a diverged run must not stop a table or a report)."""
    try:
        return math.fsum(xs)
    except (OverflowError, ValueError):
        return sum(xs)
