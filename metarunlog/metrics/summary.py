"""One pass over a sub-experiment's rows: the last value and the best value (with its step)
of every metric, in bounded memory; plus which way each metric is better.

    acc = Accumulator(step_keys, goals)
    acc.add(rows)                 # any iterable of dicts, consumed in batches
    s = acc.result(summary)       # Summary: .last {metric: value}, .best {metric: Best}

A metric's goal is `min` for loss/err/perplexity-like names and `max` for acc/f1/bleu-like
names (`goal_of`); `metric_goals` in `.mrl.cfg` names others (exact names or globs). Step keys
(`step`, `epoch`, ...) say where a row lies on the x axis and are never metrics. When a
summary (`metrics.json`, the user's `metrics()` dict) and rows both exist, they are merged:
the summary wins per key for `last`; `best` is taken over the rows, and from the summary only
for a metric without rows.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from metarunlog.metrics.base import ColumnarRows, Columns

BATCH = 4096
MIN, MAX = "min", "max"
# Which way a metric is better, by a part of its name (the report highlights with the same).
LOWER_BETTER = re.compile(r"loss|err|mse|mae|rmse|nll|perplex|ppl|wer|cer|latency|regret|dist|cost|time|bpb|bpc")
HIGHER_BETTER = re.compile(
    r"acc|f1|auc|auroc|auprc|score|reward|bleu|rouge|precision|recall|map|iou|dice|r2|return|top\d|ndcg"
    r"|psnr|ssim|mrr|success"
)
# Short names that are also parts of other words (`fid` of `fidelity`, `kl` of `weekly`): whole
# words only, with a count after them (`fid50k`).
LOWER_WORDS = re.compile(r"(?:fid|fvd|kid|kl|kld|lpips|bpd|mape|ece)\d*k?")
HIGHER_WORDS = re.compile(r"(?:elbo|em|exact|chrf|meteor|cider|mcc)\d*")
NEGATED = frozenset({"neg", "negative"})  # `neg_elbo`, `negative_loss`: the other way round


# The words of a name: `val_acc`, `Loss/train`, `trainLoss`, `top5-err` -> val acc / loss
# train / train loss / top5 err.
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")


def goal_of(name: str, goals: Mapping[str, str] | None = None) -> str | None:
    """`"min"`, `"max"` or None (unknown) for a metric name.

    `goals` (`metric_goals`: a name or a glob -> goal) decides first: the name itself, else
    the first glob that matches it. Then the name's words:
    a word that is loss/err/mse/perplexity/time/fid/kl/... (minimised) or acc/f1/bleu/elbo/...
    (maximised), then a word that starts so (`error`, `accuracy`), then any part of the
    name (`logloss`); at each of these the lower-is-better words win a tie (`top1_err`).
    The short ones (`LOWER_WORDS`, `HIGHER_WORDS`: `fid`, `kl`, `em`) count only as whole
    words, and a `neg`/`negative` word before the deciding one turns the goal round
    (`neg_elbo` is minimised, `loss_neg` not).
    So `distill_acc` is an accuracy (its `dist` is inside a word) and `timestep_reward` a
    reward, while `time_to_acc` stays a time.
    """
    goals = goals or {}
    if name in goals:  # the name itself beats any glob that also matches it ("*_loss" and "val_loss")
        return goals[name]
    for pattern, goal in goals.items():
        if fnmatch.fnmatchcase(name, pattern):
            return goal
    base = name.removeprefix("metric.")
    words = [w.lower() for w in _WORDS.findall(base)]
    guess, at = _goal_by_words(base.lower(), words)
    # `neg_elbo`, `val_neg_elbo`: negated; `loss_neg`, `acc_neg`: the loss, the accuracy on
    # negatives, as they say.
    if guess is not None and any(w in NEGATED for w in words[:at]):
        return MAX if guess == MIN else MIN
    return guess


def _goal_by_words(base: str, words: list[str]) -> tuple[str | None, int]:
    """The goal the name's words give, and the index of the word that gave it."""

    def first(test: Any) -> int | None:
        return next((i for i, w in enumerate(words) if test(w)), None)

    for found in (
        lambda rx, whole: first(lambda w: rx.fullmatch(w) or whole.fullmatch(w)),
        lambda rx, whole: first(rx.match),
        # any part of the name: the word it is in (past the last word when it spans two)
        lambda rx, whole: None if rx.search(base) is None else _or(first(rx.search), len(words)),
    ):
        for rx, whole, goal in ((LOWER_BETTER, LOWER_WORDS, MIN), (HIGHER_BETTER, HIGHER_WORDS, MAX)):
            at = found(rx, whole)
            if at is not None:
                return goal, at
    return None, 0


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


@dataclass(frozen=True)
class Best:
    """A metric's best value, the step (x value) where it was first reached, and the goal."""

    value: float
    step: float | int | None
    goal: str


@dataclass
class Summary:
    """What `mrl table` shows of one sub-experiment: last values and best values."""

    last: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Best] = field(default_factory=dict)
    has_rows: bool = False
    summary_keys: frozenset[str] = frozenset()  # the keys whose last value a summary gave


def is_number(v: Any) -> bool:
    return type(v) in (int, float)  # not bool, which is an int to Python


class Accumulator:
    """Folds rows into last and best values per metric; see the module docstring."""

    def __init__(self, step_keys: Iterable[str], goals: Mapping[str, str] | None = None, best: bool = True) -> None:
        self.step_keys = tuple(step_keys)
        self._steps = frozenset(self.step_keys)
        self.goals = dict(goals or {})
        self.want_best = best
        self.last: dict[str, Any] = {}
        self._best: dict[str, tuple[float, Any]] = {}
        self._goal: dict[str, str | None] = {}
        self.rows = 0

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        if isinstance(rows, ColumnarRows):  # a CSV: columns as read, no dict per row
            for batch in rows.batches():
                if isinstance(batch, Columns):
                    self._add_columns(batch)
                else:
                    self._add_rows(batch)
            return
        self._add_rows(rows)

    def _add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        if not self.want_best:  # last values only: one dict.update per row, nothing else
            update, before = self.last.update, self.rows
            for self.rows, d in enumerate(rows, before + 1):  # noqa: B020 (counts the rows as it goes)
                update(d)
            return
        it = iter(rows)
        while batch := list(itertools.islice(it, BATCH)):
            self._add_batch(batch)

    def _add_batch(self, batch: list[dict[str, Any]]) -> None:
        start = self.rows
        self.rows += len(batch)
        last = self.last
        for d in batch:
            last.update(d)
        steps = self._batch_steps(batch, start)
        for k in self._keys(batch):
            goal = self._goal_for(k)
            if goal is not None:
                self._fold(k, goal, batch, steps)

    def _add_columns(self, batch: Columns) -> None:
        """`_add_batch` of rows that each hold every name: the same last and best values."""
        names, columns = batch.names, batch.columns
        n = len(columns[0]) if columns else 0
        if n == 0:
            return
        last = self.last
        for name, column in zip(names, columns, strict=True):
            last[name] = column[-1]
        start = self.rows
        self.rows += n
        if not self.want_best:
            return
        steps = self._column_steps(names, columns, start)
        for name, column in zip(names, columns, strict=True):
            if name not in self._steps and (goal := self._goal_for(name)) is not None:
                self._fold_values(name, goal, column, steps)

    def _column_steps(self, names: list[str], columns: list[list[Any]], start: int) -> list[Any]:
        """Each row's step as `_batch_steps` gives it: the first step key's column when it
        holds numbers only, else per row its first step key holding a number, else its index."""
        held = [(key, columns[names.index(key)]) for key in self.step_keys if key in names]
        if held and all(map(is_number, held[0][1])):
            return held[0][1]
        return [next((col[i] for _, col in held if is_number(col[i])), start + i) for i in range(len(columns[0]))]

    def _keys(self, batch: list[dict[str, Any]]) -> list[str]:
        first = batch[0]
        rest = set().union(*batch).difference(first, self._steps)
        return [k for k in first if k not in self._steps] + sorted(rest)

    def _goal_for(self, key: str) -> str | None:
        try:
            return self._goal[key]
        except KeyError:
            g = self._goal[key] = goal_of(key, self.goals)
            return g

    def _batch_steps(self, batch: list[dict[str, Any]], start: int) -> list[Any]:
        """Each row's step: its first step key holding a number, else its row index."""
        for key in self.step_keys:
            if key in batch[0]:
                try:
                    xs = list(map(itemgetter(key), batch))
                except KeyError:
                    break
                if all(map(is_number, xs)) and not self._earlier_key_in(batch, key):
                    return xs
                break
        return [self._step_of(d, start + i) for i, d in enumerate(batch)]

    def _earlier_key_in(self, batch: list[dict[str, Any]], key: str) -> bool:
        earlier = self.step_keys[: self.step_keys.index(key)]
        return bool(earlier) and any(k in d for d in batch for k in earlier)

    def _step_of(self, d: dict[str, Any], index: int) -> Any:
        for key in self.step_keys:
            v = d.get(key)
            if is_number(v):
                return v
        return index

    def _fold(self, key: str, goal: str, batch: list[dict[str, Any]], steps: list[Any]) -> None:
        try:
            vals = list(map(itemgetter(key), batch))
        except KeyError:
            vals = [d.get(key) for d in batch]
        self._fold_values(key, goal, vals, steps)

    def _fold_values(self, key: str, goal: str, vals: list[Any], steps: list[Any]) -> None:
        if not (set(map(type, vals)) <= {int, float}):
            pairs = [(v, s) for v, s in zip(vals, steps, strict=True) if is_number(v)]
            vals, steps = [v for v, _ in pairs], [s for _, s in pairs]
        if _has_nan(vals):
            pairs = [(v, s) for v, s in zip(vals, steps, strict=True) if v == v]  # NaN is the one value != itself
            vals, steps = [v for v, _ in pairs], [s for _, s in pairs]
        if not vals:
            return
        m = min(vals) if goal == MIN else max(vals)
        old = self._best.get(key)
        if old is None or (m < old[0] if goal == MIN else m > old[0]):  # ties keep the earlier step
            self._best[key] = (m, steps[vals.index(m)])

    def result(self, summary: Mapping[str, Any] | None = None) -> Summary:
        """Last values (the summary wins per key) and best values, step keys left out."""
        last = {k: v for k, v in self.last.items() if k not in self._steps}
        best = {k: Best(v, s, self._goal[k]) for k, (v, s) in self._best.items()}  # type: ignore[arg-type]
        for k, v in (summary or {}).items():
            if k in self._steps:
                continue
            last[k] = v
            if self.want_best and k not in best and is_number(v) and v == v:  # not NaN (isnan overflows on huge ints)
                goal = self._goal_for(k)
                if goal is not None:
                    best[k] = Best(v, None, goal)
        return Summary(last, best, self.rows > 0, frozenset(k for k in summary or {} if k not in self._steps))


def _has_nan(values: list[int | float]) -> bool:
    try:
        return any(map(math.isnan, values))
    except OverflowError:  # an int too large for a float (a 400-digit cell) is no NaN
        return any(isinstance(v, float) and math.isnan(v) for v in values)
