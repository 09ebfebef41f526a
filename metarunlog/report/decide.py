"""What the report decides by: the primary metric and its goal, the best runs (from the rows
of the table, so the report never disagrees with `mrl table --summary both`), the repeat
axes and the factors (the varying params that are not repeats), and which factor colours
the curves. Plain Python: no bokeh, no pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from metarunlog import results
from metarunlog.results import BEST_SUFFIX, STEP_SUFFIX, SubResult, Table

MAX_COLORS = 10  # a factor with more values than this does not colour the curves


@dataclass(frozen=True)
class Primary:
    """The metric the report ranks runs by."""

    name: str  # as the runs report it (SubResult.metrics key)
    column: str  # its table column (`metric.<name>` when a param has its name)
    goal: str | None  # "min" | "max" | None (unknown: nothing is ranked)


@dataclass(frozen=True)
class Pick:
    """The best run by one criterion: the row of the table and the value that won."""

    row: dict[str, Any]
    value: float
    step: Any = None  # where a best-over-training value was reached


def metric_names(tab: Table) -> list[str]:
    """The table's metric columns without the `_best` / `_best_step` ones of `--summary both`."""
    cols = set(tab.metrics)
    return [m for m in tab.metrics if not _derived(m, cols)]


def _derived(col: str, cols: set[str]) -> bool:
    for suffix in (BEST_SUFFIX + STEP_SUFFIX, BEST_SUFFIX, STEP_SUFFIX):
        if col.endswith(suffix) and col[: -len(suffix)] in cols:
            return True
    return False


def primary_metric(tab: Table, wanted: str | None, goals: dict[str, str]) -> tuple[Primary | None, str | None]:
    """(the primary metric, a warning): `wanted` (`report.primary_metric`) when some run has
    it, else the first metric found that has a goal (a logged `lr` or `grad_norm` before the
    loss ranks nothing), else the first one. The goal is the table's (`metrics.goal_of`)."""
    names = metric_names(tab)
    warning = None
    if wanted:
        for col in (wanted, results.METRIC_PREFIX + wanted):
            if col in names:
                return Primary(wanted, col, goals.get(col)), None
        shown = ", ".join(names) or "none yet"
        warning = f"report.primary_metric is {wanted!r}, which no sub-experiment has (the metrics are: {shown})"
    if not names:
        return None, warning
    col = next((c for c in names if goals.get(c) in ("min", "max")), names[0])
    return Primary(col.removeprefix(results.METRIC_PREFIX), col, goals.get(col)), warning


def basis(primary: Primary, wanted: str | None, cfg_goals: dict[str, str], own: dict[str, Any],
          user_goals: dict[str, str], exp_name: str) -> str:  # fmt: skip
    """Where the primary metric and its goal came from, in words (`chosen by
    report.primary_metric in .mrl.cfg; its goal by metric_goals in mrl_analyze.py`). Both are
    read when the report is made, never pinned (docs/analyze.md): a changed `.mrl.cfg`
    re-ranks an experiment's next report, and the page says by what. `own`: the
    experiment's own `EXPDIR/.mrl.cfg`, which overrides the project's."""
    own_goals = {**dict(own.get("metric_goals") or {}), **dict((own.get("metrics") or {}).get("metric_goals") or {})}
    where = {True: f"{exp_name}/.mrl.cfg", False: ".mrl.cfg"}
    if wanted and primary.name == wanted:
        chosen = f"report.primary_metric in {where['primary_metric' in (own.get('report') or {})]}"
    else:
        unset = f"report.primary_metric {wanted!r} is in no run" if wanted else "report.primary_metric is not set"
        first = "the first metric with a goal" if primary.goal else "the first metric (none has a known goal)"
        chosen = f"{first} ({unset})"
    if primary.goal is None:
        return f"chosen by {chosen}"
    if _matches(primary.name, cfg_goals):
        goal = f"metric_goals in {where[_matches(primary.name, own_goals)]}"
    elif _matches(primary.name, user_goals):
        goal = "metric_goals in mrl_analyze.py"
    else:
        goal = "its name"
    return f"chosen by {chosen}; its goal by {goal}"


def _matches(name: str, goals: dict[str, str]) -> bool:
    import fnmatch

    return name in goals or any(fnmatch.fnmatchcase(name, p) for p in goals)


def _value(row: dict[str, Any], col: str) -> float | None:
    v = row.get(col)
    return results.as_float(v) if v is not None and results.is_number(v) and v == v else None  # v == v: not NaN


def best_pick(rows: Iterable[dict[str, Any]], col: str, goal: str | None, step_col: str | None = None) -> Pick | None:
    """The row with the best value of `col` (the first one on a tie); None without a goal."""
    if goal not in ("min", "max"):
        return None
    best: Pick | None = None
    for row in rows:
        v = _value(row, col)
        if v is None:
            continue
        if best is None or (v < best.value if goal == "min" else v > best.value):
            best = Pick(row, v, row.get(step_col) if step_col else None)
    return best


def best_runs(tab: Table, primary: Primary) -> tuple[Pick | None, Pick | None]:
    """(best by best value over training, best by final value), as the table's columns say."""
    col = primary.column
    best_col = col + BEST_SUFFIX
    by_best = best_pick(tab.rows, best_col, primary.goal, best_col + STEP_SUFFIX)
    if by_best is None:  # an older table: only the last values
        by_best = best_pick(tab.rows, col, primary.goal)
    return by_best, best_pick(tab.rows, col, primary.goal)


# -- factors, repeats, colours -----------------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """How the runs are laid out: the factors (varying params) and the repeat axes."""

    factors: list[str]  # varying params that are not repeats, in table order
    repeats: list[str]  # varying params that are repeat axes (repeat, seed, ...)
    groups: list[list[int]]  # indices of the runs of each combination of the factors

    @property
    def has_repeats(self) -> bool:
        return any(len(g) > 1 for g in self.groups)


def axes(subs: list[SubResult], varying: list[str], repeat_params: Iterable[str]) -> Axes:
    """Split the varying params into factors and repeat axes; group the runs by combination."""
    repeat = set(repeat_params)
    factors = [p for p in varying if p not in repeat]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(subs):
        groups.setdefault(combination(s, factors), []).append(i)
    return Axes(factors, [p for p in varying if p in repeat], list(groups.values()))


def value_key(value: Any) -> str:
    """What tells two param values apart: their JSON, as `mrl table --aggregate` groups them
    (1 and "1", None and "", True and "True" are different values)."""
    if value is None or isinstance(value, (str, int, float)):  # bool is an int: `bool:True`
        return f"{type(value).__name__}:{value!r}"  # the same partition as JSON, 10x faster
    return json_text(value)


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def combination(res: SubResult, factors: list[str]) -> tuple[str, ...]:
    return tuple(value_key(res.params.get(p)) for p in factors)


def value_text(value: Any) -> str:
    """A param value as a legend, an axis category or a heading shows it: as the table
    prints it, except that values it would print alike read apart: None is `None`, and a
    string that reads as another type (`1`, `True`, `None`, ``, `[1]`) is quoted (its
    non-ASCII letters kept, not `\\u00e9`)."""
    if value is None:
        return "None"
    if isinstance(value, str):
        text = results.format_value(value)
        return json.dumps(value, ensure_ascii=False) if _reads_as_other_type(text) else text
    return results.format_value(value)


def _reads_as_other_type(text: str) -> bool:
    if text.strip() != text or text in ("", "None", "True", "False", "null", "true", "false") or text[0] in '[{"':
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def label(params: dict[str, Any], names: list[str]) -> str:
    """`lr=0.1, wd=1`: how a legend entry or a heading names a combination. A param the run
    does not have (one of another experiment in a comparison, one `--extend` added) is left
    out: `wd=None` would claim a value the run never had."""
    return ", ".join(f"{k}={value_text(params[k])}" for k in names if k in params)


def color_param(
    subs: list[SubResult], factors: list[str], values: list[float | None], wanted: str | None = None
) -> str | None:
    """The factor whose values colour the curves: `wanted` (`report.color_by`) when it varies,
    else the one that explains most of the spread of `values` (the primary metric per run:
    the largest share of variance between its groups), else the one with the fewest values.
    Only factors with 2 to MAX_COLORS values qualify; never a repeat axis (not a factor)."""
    if wanted and wanted in factors:
        return wanted
    counts = {p: len({value_key(s.params.get(p)) for s in subs}) for p in factors}
    candidates = [p for p in factors if 2 <= counts[p] <= MAX_COLORS]
    if not candidates:
        return None
    scored = [(explained(subs, p, values), -counts[p], -i, p) for i, p in enumerate(candidates)]
    best = max(scored)
    return best[3] if best[0] > 0 else min(candidates, key=lambda p: (counts[p], candidates.index(p)))


def explained(subs: list[SubResult], param: str, values: list[float | None]) -> float:
    """The share of the variance of `values` between the groups of `param`'s values (eta²)."""
    groups: dict[str, list[float]] = {}
    for s, v in zip(subs, values, strict=True):
        if v is not None and math.isfinite(v):
            groups.setdefault(value_key(s.params.get(param)), []).append(v)
    xs = [v for g in groups.values() for v in g]
    if len(groups) < 2 or len(xs) < 3:
        return 0.0
    mean = results.fsum(xs) / len(xs)
    total = results.fsum([(v - mean) * (v - mean) for v in xs])  # `**` raises past 1e154; `*` gives inf
    if not 0 < total < math.inf:
        return 0.0
    means = [(len(g), results.fsum(g) / len(g) - mean) for g in groups.values()]
    between = results.fsum([n * d * d for n, d in means])
    return between / total if math.isfinite(between) else 0.0


def run_values(subs: list[SubResult], primary: Primary | None, best: bool) -> list[float | None]:
    """Each run's primary metric: its best value over training (`best`), else its final one
    (None: no number, or NaN)."""
    out: list[float | None] = []
    for s in subs:
        v = run_value(s, primary, best)
        out.append(results.as_float(v) if results.is_number(v) and v == v else None)
    return out


def run_value(s: SubResult, primary: Primary | None, best: bool) -> Any:
    """One run's primary metric as it reported it (best over training, or final)."""
    if primary is None:
        return None
    b = s.best.get(primary.name) if best else None
    return b.value if b is not None else (s.metrics.get(primary.name) if not best else None)
