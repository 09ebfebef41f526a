"""The `#summary` section: the primary metric and its goal, the best runs, counts by state,
and every failed or stale sub-experiment with its reason (exit code, last log lines)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from metarunlog import results
from metarunlog.report import decide
from metarunlog.report.model import Report, SubSection
from metarunlog.states import FAILED_LIKE, JobState

STATE_ORDER = ("done", "running", "queued", "pending", "failed", "stale", "cancelled", "timeout", "oom", "node_fail")
LOG_LINES = 10  # of each failed run's run.log, shown in the summary
GOAL_TEXT = {"min": "lower is better", "max": "higher is better"}
REASONS = {
    JobState.TIMEOUT: "it ran past its time limit",
    JobState.OOM: "it ran out of memory",
    JobState.NODE_FAIL: "its node failed",
    JobState.CANCELLED: "it was cancelled",
}


@dataclass
class Winner:
    """A best run as the summary names it."""

    name: str  # the sub-experiment (its anchor)
    value: float
    step: Any  # where the best value was reached (None: a final value)
    params: str  # `lr=0.1, wd=1`
    state: str
    xkey: str | None = None  # what its own primary curve is plotted against (`epoch`, `step`)


@dataclass
class Combination:
    """The best combination of the factors by its mean best value over the repeats."""

    params: str
    mean: float
    std: float | None
    n: int


@dataclass
class Failure:
    name: str
    state: str
    reason: str
    log: list[str]


def state_counts(subs: list[SubSection]) -> list[tuple[str, int]]:
    """(state, how many) in a fixed order: done first, then the active ones, then failures."""
    states = Counter(s.res.state.value for s in subs)
    return [(s, states[s]) for s in STATE_ORDER if states[s]] + [
        (s, n) for s, n in states.items() if s not in STATE_ORDER
    ]


def context(rep: Report) -> dict[str, Any]:
    """The variables of `_summary.html`."""
    by_name = {s.res.name: s.res for s in rep.subs}
    by_best = by_final = None
    if rep.primary is not None:
        best, final = decide.best_runs(rep.table, rep.primary)
        by_best = _winner(best, by_name, rep.varying, rep.primary.name)
        by_final = _winner(final, by_name, rep.varying, rep.primary.name)
    return {
        "summary_primary": rep.primary,
        "summary_goal": GOAL_TEXT.get(rep.primary.goal or "", "") if rep.primary else "",
        "summary_basis": rep.basis,
        "summary_by_best": by_best,
        "summary_by_final": by_final if by_final and (not by_best or by_final.name != by_best.name) else None,
        "summary_final_same": bool(by_best and by_final and by_final.name == by_best.name),
        "summary_xkey": _xkey(rep),
        "summary_best_combination": best_combination(rep),
        "summary_counts": state_counts(rep.subs),
        "summary_failures": [failure(s) for s in rep.subs if s.res.state in FAILED_LIKE],
        "summary_warnings": rep.warnings,
        "n_subs": len(rep.subs),
    }


def _winner(pick: decide.Pick | None, by_name: dict[str, Any], varying: list[str], metric: str) -> Winner | None:
    if pick is None:
        return None
    res = by_name[pick.row["id"]]
    curve = (res.curves or {}).get(metric)  # runs may log different steps: this one's own key
    xkey = str(curve[0]) if curve is not None else None
    return Winner(res.name, pick.value, pick.step, decide.label(res.params, varying), res.state.value, xkey)


def best_combination(rep: Report) -> Combination | None:
    """With repeats and factors: the combination whose mean best value is best (the
    aggregated table's rows, `mrl table --summary both --aggregate`)."""
    if rep.primary is None or not rep.axes.has_repeats or not rep.axes.factors:
        return None
    agg = results.aggregate(rep.table, by=[rep.table.column_of(f) for f in rep.axes.factors])
    col = rep.primary.column + results.BEST_SUFFIX
    pick = decide.best_pick(agg.rows, col if col in agg.metrics else rep.primary.column, rep.primary.goal)
    if pick is None:
        return None
    row = pick.row
    std = row.get((col if col in agg.metrics else rep.primary.column) + "_std")
    params = {f: row.get(agg.column_of(f)) for f in rep.axes.factors}
    return Combination(decide.label(params, rep.axes.factors), pick.value, std, int(row.get("n") or 0))


def _xkey(rep: Report) -> str:
    """What the primary metric's curves are plotted against (`step`, `epoch`...)."""
    if rep.primary is None:
        return "step"
    for s in rep.subs:
        curve = (s.res.curves or {}).get(rep.primary.name)
        if curve is not None:
            return str(curve[0])
    return "step"


def failure(s: SubSection) -> Failure:
    """Why a sub-experiment did not finish, as far as its record and run.log say."""
    res, st = s.res, s.res.status
    why = st.reason_shown(res.state) if st else ""  # mrl ended it (a requeue limit): its record says why
    if res.state is JobState.STALE:
        pid = f"pid {st.pid}" if st and st.pid else "its process"
        host = f" on {st.host}" if st and st.host else ""
        reason = f"its record says {st.state.value if st else 'running'}, but {pid}{host} is gone"
    elif res.state is JobState.FAILED:
        code = st.exit_code if st else None
        reason = f"exit code {code}" if code is not None else "failed (no exit code recorded)"
        if code is None and why:
            reason = why
        elif st and st.steps and st.steps > 1:
            reason += f" in step {min(st.steps_done + 1, st.steps)} of {st.steps}"
    else:
        reason = REASONS.get(res.state, res.state.value)
        if st and st.exit_code is not None:
            reason += f" (exit code {st.exit_code})"
    if why and why not in reason:
        reason += f": {why}"  # a USR1 past the requeue limit, with the exit code it caused
    return Failure(res.name, res.state.value, reason, s.log_tail[-LOG_LINES:])
