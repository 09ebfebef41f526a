"""metarunlog/metrics/base.py: the reader interface, what a subclass inherits."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarunlog import metrics
from metarunlog.errors import MrlError
from metarunlog.metrics import sources


class Minimal(metrics.Reader):
    name = "minimal"
    globs = ("a.txt", "logs/*.txt")


def test_a_reader_that_only_names_its_files_reads_nothing_and_accepts_no_other_file(tmp_path: Path) -> None:
    reader = Minimal(metrics.Settings())
    assert reader.active() and reader.looks_for() == ["a.txt", "logs/*.txt"]
    assert not reader.accepts("a.txt") and not reader.accepts("other.csv")
    (tmp_path / "a.txt").write_text("x")
    assert reader.summary([tmp_path / "a.txt"]) is None and list(reader.rows([tmp_path / "a.txt"])) == []


def test_the_default_settings_are_the_documented_step_keys_and_run_log() -> None:
    settings = metrics.Settings()
    assert settings.step_keys == metrics.DEFAULT_STEP_KEYS and settings.step_keys[0] == "step"
    assert settings.log_files == ("run.log",) and settings.sources == () and settings.off == frozenset()


class NeedsExtra(metrics.Reader):
    name = "needs-extra"
    globs = ("*.bin",)

    def summary(self, files: list[Path]) -> dict[str, float] | None:
        raise metrics.MissingExtra("pip install 'metarunlog[bin]'")


def test_a_missing_extra_is_a_warning_once_and_the_other_readers_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert issubclass(metrics.MissingExtra, MrlError)
    sources._warned.discard("pip install 'metarunlog[bin]'")
    (tmp_path / "x.bin").write_bytes(b"\0")
    (tmp_path / "metrics.json").write_text('{"acc": 0.5}')
    finder = metrics.Finder(readers=[*metrics.readers(metrics.Settings()), NeedsExtra(metrics.Settings())])
    with caplog.at_level("WARNING", logger="metarunlog"):
        first, second = finder.read(tmp_path), finder.read(tmp_path)
    assert first.summary == {"acc": 0.5} and first.errors == []
    assert first.warnings == second.warnings == ["pip install 'metarunlog[bin]'"]
    assert [r.getMessage() for r in caplog.records].count("pip install 'metarunlog[bin]'") == 1
