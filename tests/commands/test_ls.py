from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.repo import git, run_mrl, sha256_project


def make(n: int) -> None:
    for i in range(n):
        assert main(["new", f"experiment {i + 1}"]) == 0


def test_ls_lists_newest_first_and_marks_not_done(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(3)
    (project / "output" / "0002" / ".mrl.done").touch()
    capsys.readouterr()
    assert main(["ls"]) == 0
    assert capsys.readouterr().out.splitlines() == ["** 0003", "   0002", "** 0001"]


def test_ls_flags_add_columns(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(1)
    capsys.readouterr()
    assert main(["ls", "-tm", "-ghash", "-gdesc", "-desc"]) == 0
    cols = capsys.readouterr().out.strip().split("\t")
    assert cols[0] == "** 0001"
    assert len(cols[2]) == 7 and cols[3] == "mrl init" and cols[4] == "experiment 1"


def test_ls_ghash_is_short_in_a_sha256_repository_too(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """-ghash printed the whole 64-digit id of a SHA-256 repository's commit (40 only was shortened)."""
    monkeypatch.chdir(tmp_path)
    sha256_project(tmp_path / "proj256")
    make(1)
    capsys.readouterr()
    assert main(["ls", "-ghash"]) == 0
    cols = capsys.readouterr().out.strip().split("\t")
    assert cols == ["** 0001", git(Path.cwd(), "rev-parse", "HEAD").strip()[:7]]


def test_ls_column_flags_also_take_the_double_dash_form(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(1)
    capsys.readouterr()
    assert main(["ls", "-tm", "-ghash", "-gdesc", "-desc"]) == 0
    single = capsys.readouterr().out
    assert main(["ls", "--tm", "--ghash", "--gdesc", "--desc"]) == 0
    assert capsys.readouterr().out == single


def test_ls_shows_a_record_with_odd_field_types_as_stored(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(1)
    rec_path = project / "output" / "0001" / ".mrl"
    rec = json.loads(rec_path.read_text())
    rec.update(description=42, tags=["best", 3])
    rec_path.write_text(json.dumps(rec))
    capsys.readouterr()
    assert main(["ls", "-desc"]) == 0
    assert capsys.readouterr().out.strip().split("\t") == ["** 0001", "42", "#best"]
    assert main(["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["tags"] == ["best", 3]


def test_ls_json_gives_the_records(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(2)
    capsys.readouterr()
    assert main(["ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["expId"] for r in rows] == [2, 1]
    assert rows[0]["path"].endswith("0002") and rows[0]["done"] is False


def test_a_corrupt_record_is_reported_by_path_and_the_others_still_listed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(3)
    bad = project / "output" / "0002" / ".mrl"
    bad.write_text('{"expId": 2, ')
    capsys.readouterr()
    assert main(["ls"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["** 0003", "** 0001"]
    assert str(bad) in err and "Traceback" not in err


def test_a_record_that_cannot_be_read_is_reported_by_path_and_the_others_still_listed(project: Path) -> None:
    make(3)
    bad = project / "output" / "0002" / ".mrl"
    bad.unlink()
    bad.mkdir()  # a folder where the record should be: read(2) fails with EISDIR
    for args in (["ls"], ["ls", "--json"]):
        r = run_mrl(*args, cwd=project)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr == f"mrl: warning: cannot read {bad}: Is a directory\n"
    assert run_mrl("ls", cwd=project).stdout.splitlines() == ["** 0003", "** 0001"]


def test_ls_ignores_folders_that_are_not_experiments(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(1)
    (project / "output" / "notes").mkdir()
    (project / "output" / "12").mkdir()  # does not match {expId:04d}
    capsys.readouterr()
    assert main(["ls"]) == 0
    assert capsys.readouterr().out.splitlines() == ["** 0001"]


def test_info_and_last_resolve_ids_last_and_paths(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(2)
    capsys.readouterr()
    assert main(["info", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["description"] == "experiment 1"
    assert main(["info", "0001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expId"] == 1
    assert main(["info", "output/0001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expId"] == 1
    assert main(["info"]) == 0
    assert "experiment 2" in capsys.readouterr().out
    assert main(["info", "last", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(project / "output" / "0002")
    assert main(["last", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(project / "output" / "0002")


def test_last_prints_the_newest_record_as_the_original_mrl_info_last(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(2)
    capsys.readouterr()
    assert main(["info", "last"]) == 0
    info_out = capsys.readouterr().out
    assert main(["last"]) == 0
    out = capsys.readouterr().out
    assert out == info_out and "experiment 2" in out
    head = git(project, "rev-parse", "HEAD").strip()
    [line] = [line for line in out.splitlines() if "gitHash" in line]
    assert line.split() == ["gitHash", ":", head]
    assert main(["last", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expId"] == 2


def test_info_defaults_to_the_experiment_the_cwd_is_in(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make(2)
    monkeypatch.chdir(project / "output" / "0001" / "code")
    capsys.readouterr()
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expId"] == 1


def test_unknown_experiment_is_one_clear_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(1)
    capsys.readouterr()
    assert main(["info", "7"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no experiment 7" in err
    assert main(["info", "/tmp"]) == 1
    assert "is not an experiment" in capsys.readouterr().err


def test_last_with_no_experiments_says_to_make_one(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["last"]) == 1
    assert "mrl new" in capsys.readouterr().err
    assert main(["last", "--path"]) == 1


def test_ls_holds_one_record_at_a_time_whatever_the_number_of_experiments(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import contextlib
    import os
    import tracemalloc

    assert main(["new", "seed"]) == 0
    record = json.loads((project / "output" / "0001" / ".mrl").read_text())
    for i in range(2, 2001):
        (project / "output" / f"{i:04d}").mkdir()
        record.update(expId=i, description=f"experiment {i} " + "x" * 200)
        (project / "output" / f"{i:04d}" / ".mrl").write_text(json.dumps(record))
    capsys.readouterr()
    for args in (["ls", "-desc"], ["ls", "--json"]):
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # the output is not ls's memory
            tracemalloc.start()
            try:
                assert main(args) == 0
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert peak < 1_000_000, (args, peak)  # all 2,000 records at once are several MB
        assert main(args) == 0
        out = capsys.readouterr().out
        if args[1] == "--json":
            assert [r["expId"] for r in json.loads(out)] == list(range(2000, 0, -1))
        else:
            assert len(out.splitlines()) == 2000 and out.startswith("** 2000\texperiment 2000 x")


def test_ls_tag_with_no_match_says_so_on_stderr_and_exits_0(project: Path) -> None:
    # it printed nothing at all, while `mrl table --tag` said no experiment was tagged so
    make(2)
    assert run_mrl("tag", "1", "+best", cwd=project).returncode == 0
    for args in (("ls", "--tag", "bestt"), ("ls", "--tag", "bestt", "--json")):
        got = run_mrl(*args, cwd=project)
        assert got.returncode == 0 and got.stdout in ("", "[]\n"), got
        assert got.stderr.splitlines() == [
            "mrl: note: no experiment is tagged bestt (tag one with `mrl tag EXP +NAME`)"
        ]
    tagged = run_mrl("ls", "--tag", "best", cwd=project)
    assert tagged.stdout.split() == ["**", "0001", "#best"] and tagged.stderr == ""


def test_ls_shows_a_records_tags_with_control_characters_escaped_one_line_per_experiment(project: Path) -> None:
    # before: a tag written by hand or by another mrl (a newline, a terminal escape) went to
    # the terminal raw: one experiment read as two lines, and ESC ] set the window title
    make(2)
    record = project / "output" / "0001" / ".mrl"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "tags": ["a\nb", "\x1b]0;title\x07t"]}))
    got = run_mrl("ls", "-desc", cwd=project)
    assert got.returncode == 0 and "\x1b" not in got.stdout, got
    assert got.stdout.splitlines()[1] == "** 0001\texperiment 1\t#a\\nb #\\x1b]0;title\\x07t"


def _address_space(limit: int):  # type: ignore[no-untyped-def]
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def test_ls_names_an_oversized_record_in_one_line_and_lists_the_rest_in_bounded_memory(project: Path) -> None:
    """A 300 MB `.mrl` was read whole (~900 MB at its peak): under a 256 MiB address space
    that was a MemoryError traceback. It is named, unread, and the others are listed."""
    import subprocess
    import sys

    from tests.helpers.repo import REPO_ROOT

    make(3)
    record = project / "output" / "0002" / ".mrl"
    with open(record, "r+b") as f:  # sparse: no disk spent on it
        f.truncate(300_000_000)
    proc = subprocess.run(
        [sys.executable, "-m", "metarunlog", "ls"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)},
        preexec_fn=_address_space(256 << 20),
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["** 0003", "** 0001"]
    assert proc.stderr == (
        f"mrl: warning: oversized record {record}: 300,000,000 bytes, over the 16 MiB mrl reads of a record "
        "(not a file mrl wrote); move or remove it\n"
    )
    for command in (["status", "2"], ["info", "2"]):
        other = run_mrl(*command, cwd=project)
        assert other.returncode == 1 and other.stderr.startswith(f"mrl: error: oversized record {record}: ")
        assert other.stderr.count("\n") == 1
