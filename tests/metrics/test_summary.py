"""Last and best values in one streamed pass; which way a metric is better."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarunlog import metrics
from metarunlog.metrics.summary import BATCH


@pytest.mark.parametrize(
    ("name", "goal"),
    [
        ("val_loss", "min"),
        ("Loss/train", "min"),
        ("top1_err", "min"),
        ("perplexity", "min"),
        ("val_acc", "max"),
        ("accuracy", "max"),
        ("f1", "max"),
        ("bleu", "max"),
        ("lr", None),
        ("metric.loss", "min"),
        ("error_rate", "min"),
        ("val_accuracy", "max"),
        ("logloss", "min"),  # a part of a word when no word says more
        ("runtime", "min"),
        ("trainLoss", "min"),
        ("mAP", "max"),
        ("bleu4", "max"),
        ("top5_acc", "max"),
        # a word beats a part of another word
        ("distill_acc", "max"),
        ("timestep_reward", "max"),
        ("distance", "min"),
        ("time_to_acc", "min"),  # two words: lower-is-better wins, as before
        # common names that had no goal (torchmetrics' AUROC, image metrics, retrieval, bits)
        ("val_auroc", "max"),
        ("AUPRC", "max"),
        ("psnr", "max"),
        ("val/ssim", "max"),
        ("mrr", "max"),
        ("success_rate", "max"),
        ("val_bpb", "min"),
        ("bpc", "min"),
    ],
)
def test_a_metric_s_goal_comes_from_its_name(name: str, goal: str | None) -> None:
    assert metrics.goal_of(name) == goal


def test_metric_goals_override_names_and_globs() -> None:
    assert metrics.goal_of("val_loss", {"val_loss": "max"}) == "max"
    assert metrics.goal_of("dev_bpb", {"*_bpb": "min"}) == "min"


def summarize(rows: list[dict[str, Any]], summary: dict[str, Any] | None = None) -> metrics.Summary:
    acc = metrics.Accumulator(metrics.DEFAULT_STEP_KEYS)
    acc.add(iter(rows))
    return acc.result(summary)


def test_best_is_the_first_step_reaching_the_min_or_max() -> None:
    rows = [{"step": 10, "loss": 3.0, "acc": 0.1}, {"step": 20, "loss": 1.0, "acc": 0.9}, {"step": 30, "loss": 1.0}]
    s = summarize(rows)
    assert s.best["loss"] == metrics.Best(1.0, 20, "min")
    assert s.best["acc"] == metrics.Best(0.9, 20, "max")
    assert s.last == {"loss": 1.0, "acc": 0.9}


def test_rows_without_a_step_key_use_their_index_and_nan_or_text_is_skipped() -> None:
    s = summarize([{"loss": 2.0}, {"loss": float("nan")}, {"loss": "diverged"}, {"loss": 1.5}])
    assert s.best["loss"] == metrics.Best(1.5, 3, "min")


def test_the_summary_wins_for_last_and_is_the_best_only_without_a_curve() -> None:
    s = summarize([{"epoch": 0, "val_loss": 0.5}, {"epoch": 1, "val_loss": 0.7}], {"val_loss": 0.9, "test_acc": 0.8})
    assert s.last == {"val_loss": 0.9, "test_acc": 0.8}
    assert s.best["val_loss"] == metrics.Best(0.5, 0, "min")
    assert s.best["test_acc"] == metrics.Best(0.8, None, "max")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"step": st.integers(0, 10**6)},
            optional={
                "loss": st.floats(allow_nan=True, allow_infinity=False)
                | st.integers()
                | st.none()
                | st.text(max_size=2),
                "acc": st.floats(-1, 1),
            },
        ),
        max_size=3 * BATCH // 100,
    ),
    st.integers(1, 50),
)
def test_batched_folding_equals_a_plain_loop(rows: list[dict[str, Any]], batch: int) -> None:
    import metarunlog.metrics.summary as summary_mod

    old, summary_mod.BATCH = summary_mod.BATCH, batch
    try:
        got = summarize(rows)
    finally:
        summary_mod.BATCH = old
    for key, goal in (("loss", "min"), ("acc", "max")):
        pts = [(r[key], r["step"]) for r in rows if type(r.get(key)) in (int, float) and not math.isnan(r[key])]
        if not pts:
            assert key not in got.best
            continue
        best = min(v for v, _ in pts) if goal == "min" else max(v for v, _ in pts)
        assert got.best[key] == metrics.Best(best, next(s for v, s in pts if v == best), goal)
    last: dict[str, Any] = {}
    for r in rows:
        last.update(r)
    last.pop("step", None)
    assert got.last == last
