"""The params + metrics table: which way each metric is better, the best values, cell classes."""

from __future__ import annotations

import re
from typing import Any

from metarunlog import results
from metarunlog.results import Table

_LOWER_BETTER = re.compile(r"loss|err|mse|mae|rmse|nll|perplex|ppl|wer|cer|latency|regret|dist|cost|time")
_HIGHER_BETTER = re.compile(r"acc|f1|auc|score|reward|bleu|rouge|precision|recall|map|iou|dice|r2|return|top\d|ndcg")


def metric_goal(name: str, overrides: dict[str, str]) -> str | None:
    """'min' or 'max' when the name says which is better (loss: min, acc: max), else None."""
    if name in overrides:
        return overrides[name]
    base = name.removeprefix(results.METRIC_PREFIX).lower()
    if base in results.X_KEYS or base in results.NOT_CURVES:
        return None
    if _LOWER_BETTER.search(base):
        return "min"
    if _HIGHER_BETTER.search(base):
        return "max"
    return None


def best_values(tab: Table, goals: dict[str, str]) -> dict[str, float]:
    """The best value of each metric column that has a goal and at least two numbers."""
    best = {}
    for col in tab.metrics:
        goal = goals.get(col)
        values = [r[col] for r in tab.rows if results.is_number(r.get(col)) and r[col] == r[col]]
        if goal and len(set(values)) >= 2:  # all equal: nothing stands out
            best[col] = min(values) if goal == "min" else max(values)
    return best


def column_classes(tab: Table, varying: list[str]) -> dict[str, str]:
    """CSS classes of each column's header: param (const when it does not vary), metric."""
    out = {c: "" for c in tab.columns}
    for p in tab.params:
        out[p] = "param" if p in varying else "param const"
    for m in tab.metrics:
        out[m] = "metric"
    return out


def table_cells(tab: Table, varying: list[str], best: dict[str, float]) -> list[list[tuple[str, str, Any]]]:
    """Each row as (text, css class, number to sort by or None) per column; the first is the id."""
    const = set(tab.params) - set(varying)
    rows = []
    for r in tab.rows:
        cells = []
        for c in tab.columns:
            v = r.get(c)
            cls = "state" if c == "state" else "const" if c in const else "best" if c in best and v == best[c] else ""
            num = v if results.is_number(v) and v == v else None
            cells.append((results.format_value(v, c), cls, num))
        rows.append(cells)
    return rows
