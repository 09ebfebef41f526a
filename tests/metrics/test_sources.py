"""Globs of readers and of `metrics.sources`, matched on a folder's relative paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from metarunlog import metrics
from metarunlog.metrics.sources import glob_regex, list_files


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("metrics.csv", "metrics.csv", True),
        ("metrics.csv", "a/metrics.csv", False),
        ("lightning_logs/version_*/metrics.csv", "lightning_logs/version_3/metrics.csv", True),
        ("lightning_logs/version_*/metrics.csv", "lightning_logs/version_3/x/metrics.csv", False),
        ("**/events.out.tfevents.*", "events.out.tfevents.1.host", True),
        ("**/events.out.tfevents.*", "runs/a/b/events.out.tfevents.1.host", True),
        ("eval_?.json", "eval_1.json", True),
        ("eval_[0-9].json", "eval_x.json", False),
        ("eval_[!0-9].json", "eval_x.json", True),
        ("a+b.(1).json", "a+b.(1).json", True),
    ],
)
def test_globs_match_relative_paths_like_the_shell(pattern: str, path: str, matches: bool) -> None:
    assert bool(re.match(glob_regex(pattern) + r"\Z", path)) is matches


def test_the_code_snapshot_and_the_trash_are_never_searched(tmp_path: Path) -> None:
    for rel in ("code/runs/events.out.tfevents.1", ".trash/x/metrics.jsonl", "runs/events.out.tfevents.2"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert list_files(tmp_path, 8) == ["runs/events.out.tfevents.2"]


@pytest.mark.parametrize("depth", [1, 8])
def test_only_regular_files_are_metrics_files_so_a_fifo_never_blocks_a_reader(tmp_path: Path, depth: int) -> None:
    (tmp_path / "runs").mkdir()
    os.mkfifo(tmp_path / "metrics.jsonl")  # nobody writes it: opening it to read would block for good
    os.mkfifo(tmp_path / "runs" / "events.out.tfevents.1")
    (tmp_path / "metrics.json").write_text('{"acc": 0.5}')
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (tmp_path / "linked.csv").symlink_to(tmp_path / "metrics.json")  # a link to a regular file still counts
    assert sorted(list_files(tmp_path, depth)) == ["linked.csv", "metrics.json"]
    assert metrics.Finder().read(tmp_path).summary == {"acc": 0.5}


def test_a_source_glob_goes_to_the_reader_of_its_file_type(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "final.json").write_text('{"bleu": 30}')
    finder = metrics.Finder(metrics.Settings(sources=(metrics.Source("eval/*.json"),)))
    assert finder.read(tmp_path).summary == {"bleu": 30}
    assert "eval/*.json" in finder.looked_for()


def test_files_are_read_in_natural_order_so_a_resumed_run_s_last_version_wins(tmp_path: Path) -> None:
    for v, acc in ((2, 0.5), (10, 0.9)):
        d = tmp_path / "lightning_logs" / f"version_{v}"
        d.mkdir(parents=True)
        (d / "metrics.csv").write_text(f"epoch,val_acc\n{v},{acc}\n")
    [(reader, files)] = metrics.Finder().files(tmp_path)
    assert [f.parent.name for f in files] == ["version_2", "version_10"]
    acc = metrics.Accumulator(metrics.DEFAULT_STEP_KEYS)
    acc.add(metrics.Finder().read(tmp_path).rows)
    assert acc.result().last == {"val_acc": 0.9}
