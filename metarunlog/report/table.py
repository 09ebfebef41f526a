"""The params + metrics table: which way each metric is better, the best values, cell classes."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape as _escape
from typing import Any

from markupsafe import Markup

from metarunlog import metrics, results
from metarunlog.report import decide
from metarunlog.results import BEST_SUFFIX, Table


def escape(value: Any) -> str:
    """HTML-escaped text, for markup built in Python: the stdlib's escape, a plain str
    (markupsafe's makes a Markup object per call, a third of the time of a 16,000-cell table)."""
    return _escape(str(value))


def metric_goal(name: str, overrides: dict[str, str]) -> str | None:
    """'min' or 'max' when the name says which is better (loss: min, acc: max), else None:
    the table's `metrics.goal_of` (overrides: `metric_goals`); a step key has none."""
    if name in results.X_KEYS:
        return None
    return metrics.goal_of(name, overrides)


def column_goals(tab: Table, overrides: dict[str, str]) -> dict[str, str]:
    """The goal of each metric column with one; a `<metric>_best` column has its metric's,
    a step column none."""
    out = {}
    for m in decide.metric_names(tab):
        goal = metric_goal(m, overrides)
        if goal:
            out[m] = goal
            if m + BEST_SUFFIX in tab.metrics:
                out[m + BEST_SUFFIX] = goal
    return out


def best_values(tab: Table, goals: dict[str, str]) -> dict[str, float]:
    """The best value of each metric column that has a goal and at least two numbers."""
    best = {}
    for col in tab.metrics:
        goal = goals.get(col)
        values = [r[col] for r in tab.rows if results.is_number(r.get(col)) and r[col] == r[col]]
        if goal and len(set(values)) >= 2:  # all equal: nothing stands out
            best[col] = min(values) if goal == "min" else max(values)
    return best


def goal_lists(tab: Table, goals: dict[str, str]) -> dict[str, list[str]]:
    """The table hint's lists: the columns where lower is better, higher is better, and the
    metrics with no goal (never highlighted)."""
    return {
        "lower_better": [m for m, g in goals.items() if g == "min"],
        "higher_better": [m for m, g in goals.items() if g == "max"],
        "no_goal": [m for m in decide.metric_names(tab) if m not in goals],
    }


def column_classes(tab: Table, varying: list[str]) -> dict[str, str]:
    """CSS classes of each column's header: param (const when it does not vary), metric."""
    out = {c: "" for c in tab.columns}
    shown = {tab.column_of(p) for p in varying}  # `varying` are names, `tab.params` columns
    for p in tab.params:
        out[p] = "param" if p in shown else "param const"
    for m in tab.metrics:
        out[m] = "metric"
    return out


def table_cells(tab: Table, varying: list[str], best: dict[str, float]) -> list[list[tuple[str, str, Any]]]:
    """Each row as (text, css class, number to sort by or None) per column; the first is the id."""
    const = set(tab.params) - {tab.column_of(p) for p in varying}
    rows = []
    for r in tab.rows:
        cells = []
        for c in tab.columns:
            v = r.get(c)
            cls = "state" if c == "state" else "const" if c in const else "best" if c in best and v == best[c] else ""
            num = _num(v)
            cells.append((results.format_value(v, c), cls, num))
        rows.append(cells)
    return rows


def body_html(rows: list[list[tuple[str, str, Any]]]) -> Markup:
    """The `<tr>`s of `table_cells` (what `_table.html` used to loop over in Jinja: 16,000
    cells of a 1,000-run table took 0.15 s there). Every text is escaped; the first cell
    links to its sub-experiment's section."""
    out = []
    for row in rows:
        cells = []
        for i, (text, cls, v) in enumerate(row):
            t = escape(text)
            if i == 0:
                cells.append(f'<td><a href="#{t}">{t}</a></td>')
            elif cls == "state":
                cells.append(f'<td><span class="state state-{t}">{t}</span></td>')
            else:
                css = f' class="{escape(cls)}"' if cls else ""
                num = f' data-v="{escape(str(v))}"' if v is not None else ""
                cells.append(f"<td{css}{num}>{t}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return Markup("\n".join(out))


@dataclass
class Aggregated:
    """The table with repeats folded: one row per combination, each metric's mean ± std."""

    columns: list[str]
    classes: list[str]
    rows: list[list[tuple[str, str, Any]]]  # (text, css class, number to sort by or None)
    over: list[str]  # the repeat axes averaged over


def aggregated_view(rep: Any) -> Aggregated:
    """`mrl table --summary both --aggregate` of the report's table (results.aggregate):
    its `n` (runs with a value) and `n_missing`; a mean over fewer values than `n` says
    how many (`<metric>_n`)."""
    agg = results.aggregate(rep.table, by=[rep.table.column_of(f) for f in rep.axes.factors] or None)
    names = [m for m in agg.metrics if m + "_std" in agg.metrics]
    best = best_values(agg, {m: g for m, g in rep.goals.items() if m in names})
    rows = []
    for r in agg.rows:
        cells: list[tuple[str, str, Any]] = [(results.format_value(r.get(p)), "", _num(r.get(p))) for p in agg.params]
        cells += [(str(r[c]), "", r[c]) for c in agg.counts]
        for m in names:
            mean, std, n = r.get(m), r.get(m + "_std"), r.get(m + "_n", r["n"])
            text = "" if mean is None else f"{results.format_value(mean)} ± {results.format_value(std)}"
            text += f" (n={n})" if mean is not None and n != r["n"] else ""
            cells.append((text, "best" if m in best and mean == best[m] else "", mean))
        rows.append(cells)
    classes = ["param"] * len(agg.params) + [""] * len(agg.counts) + ["metric"] * len(names)
    return Aggregated([*agg.params, *agg.counts, *names], classes, rows, rep.axes.repeats)


def _num(v: Any) -> Any:
    return v if results.is_number(v) and v == v else None
