"""The reader seam: a reader defined and registered in this test module alone feeds
`mrl table`, and `makebatch -replace` trashes the files it owns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metarunlog import metrics
from metarunlog.main import main
from tests.helpers.records import done, make_exp
from tests.helpers.repo import old_one_job_exp


class ScoresReader(metrics.Reader):
    """`scores.txt`: `name value` lines; the last line per name is its final value."""

    name = "scores"
    globs = ("scores.txt",)

    def summary(self, files: list[Path]) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for row in self.rows(files):
            out.update(row)
        return out or None

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        for path in files:
            for line in path.read_text().splitlines():
                key, value = line.split()
                yield {key: float(value)}


@pytest.fixture
def scores_reader() -> Iterator[None]:
    metrics.register(ScoresReader)
    yield
    metrics.unregister(ScoresReader.name)


def test_a_reader_registered_from_a_test_module_feeds_mrl_table(
    project: Path, scores_reader: None, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    (exp.subexp_dir(1) / "scores.txt").write_text("bleu 20.5\nbleu 31.25\n")
    capsys.readouterr()
    assert main(["table", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"bleu": 31.25' in out


def test_without_its_registration_the_reader_s_files_are_not_metrics(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}])
    (exp.subexp_dir(1) / "scores.txt").write_text("bleu 31.25\n")
    capsys.readouterr()
    assert main(["table", "--json"]) == 0
    assert "bleu" not in capsys.readouterr().out


def test_makebatch_replace_trashes_the_files_a_registered_reader_owns(project: Path, scores_reader: None) -> None:
    exp = old_one_job_exp(project, "lr = {{ lr | default(1) }}\n", "lr = 1\n")
    (exp / "scores.txt").write_text("bleu 1\n")
    (exp / "metrics.jsonl").write_text('{"loss": 1}\n')
    saved = exp / ".mrl.template" / "conf.lua"
    saved.write_text(saved.read_text() + "# MRL:grid['lr'] = [2, 3]\n")
    assert main(["makebatch", "-replace"]) == 0
    [trash] = (exp / ".trash").iterdir()
    assert (trash / "scores.txt").read_text() == "bleu 1\n"
    assert (trash / "metrics.jsonl").exists()
    assert not (exp / "scores.txt").exists() and (exp / "code").is_dir()


def test_a_reader_without_a_name_cannot_be_registered() -> None:
    class Nameless(metrics.Reader):
        pass

    with pytest.raises(ValueError, match="name"):
        metrics.register(Nameless)


def test_a_reader_whose_globs_are_one_str_cannot_be_registered() -> None:
    # a str's globs were its letters: the reader matched no file, and nothing said why
    class OneStr(metrics.Reader):
        name = "onestr"
        globs = "result.xyz"  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"OneStr.globs must be a tuple of glob strings \(\("):
        metrics.register(OneStr)
    assert "onestr" not in metrics.registry.names()


def test_what_is_no_reader_class_cannot_be_registered() -> None:
    with pytest.raises(TypeError, match="register takes a metarunlog.metrics.Reader subclass, not int"):
        metrics.register(5)  # type: ignore[arg-type]


def test_turning_a_reader_off_leaves_its_files_unread(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"acc": 1}')
    on = metrics.Finder(metrics.Settings())
    off = metrics.Finder(metrics.Settings(off=frozenset({"json"})))
    assert on.read(tmp_path).summary == {"acc": 1}
    assert off.read(tmp_path).summary is None and off.files(tmp_path) == []


class Everything(metrics.Reader):
    """A careless reader: it claims every file of the folder."""

    name = "everything"
    globs = ("*", "**/*")

    def summary(self, files: list[Path]) -> dict[str, Any] | None:
        return {"n_files": len(files)}


def test_no_reader_reads_or_owns_mrl_s_own_records_whatever_its_globs(project: Path) -> None:
    metrics.register(Everything)
    try:
        exp = old_one_job_exp(project, "lr = {{ lr | default(1) }}\n", "lr = 1\n")
        (exp / ".mrl.status").write_text('{"state": "done"}')
        (exp / "scores.txt").write_text("bleu 1\n")
        finder = metrics.Finder(metrics.Settings())
        owned = {p.name for p in finder.owned(exp)}
        assert "scores.txt" in owned and not {n for n in owned if n.startswith(".mrl")}
        saved = exp / ".mrl.template" / "conf.lua"
        saved.write_text(saved.read_text() + "# MRL:grid['lr'] = [2, 3]\n")
        assert main(["makebatch", "-replace"]) == 0
        [trash] = (exp / ".trash").iterdir()
        assert (trash / "scores.txt").exists() and not (trash / ".mrl").exists()
        assert '"batch"' in (exp / ".mrl").read_text() and (exp / ".mrl.note").exists()
    finally:
        metrics.unregister(Everything.name)
