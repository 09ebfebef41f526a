"""Provenance (issue 12): what `mrl new` copied and from where, the pinned run block, and
what `mrl run` says when the project or HEAD moved on since the experiment was made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.repo import commit_all, git, set_cfg, sha256_project

EXP1 = Path("output") / "0001"


def record(project: Path, name: str = "0001") -> dict:
    return json.loads((project / "output" / name / ".mrl").read_text())


def new(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["new", *args]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].endswith(str(Path("output") / f"{len(list(Path('output').glob('0*'))):04d}"))
    return out + err


# -- copied files -----------------------------------------------------------------------------


def test_the_copied_line_shortens_a_sha256_commit_too(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """A SHA-256 repository's 64-digit id was cut to its first 10 and last 24 digits."""
    monkeypatch.chdir(tmp_path)
    repo = sha256_project(tmp_path / "proj256")
    set_cfg(repo, copyFiles=["train.py"])
    commit_all(repo, "copy train.py")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert len(head) == 64
    assert f"copied train.py from basedir@{head[:10]}\n" in new(capsys)


def test_new_prints_what_it_copied_from_where(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = git(project, "rev-parse", "HEAD").strip()
    err = new(capsys)
    assert f"copied conf.lua from basedir@{head[:10]}" in err
    assert record(project)["copied"] == {"conf.lua": f"basedir@{head}"}
    err = new(capsys)
    assert "copied conf.lua from 0001" in err
    assert record(project, "0002")["copied"] == {"conf.lua": "0001"}
    assert record(project, "0002")["copiedFrom"] == "0001"  # kept for the original's hooks


def test_cp_basedir_copies_the_committed_template_instead_of_the_last_experiments(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new(capsys)
    (project / EXP1 / "conf.lua").write_text("-- the old grid, edited in 0001\n")
    (project / "conf.lua").write_text("x = {{x}}\n-- MRL:grid['x'] = [1, 2]\n")
    head = commit_all(project, "a new grid")
    for i, ref in enumerate(("basedir", "repo"), 2):
        err = new(capsys, "-cp", ref)
        assert (project / "output" / f"000{i}" / "conf.lua").read_text() == "x = {{x}}\n-- MRL:grid['x'] = [1, 2]\n"
        assert record(project, f"000{i}")["copied"] == {"conf.lua": f"basedir@{head}"}
        assert record(project, f"000{i}")["copiedFrom"] == "basedir"
        assert "warning" not in err


def test_a_cp_source_that_is_no_experiment_says_what_cp_takes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new(capsys)
    capsys.readouterr()
    assert main(["new", "-cp", "base", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: -cp base: ") and err.count("\n") == 1, err
    assert "'basedir'" in err and "'repo'" in err and "'no'" in err
    assert not (project / "output" / "0002").exists()


def test_cp_basedir_copies_the_commit_not_the_uncommitted_working_tree(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = (project / "conf.lua").read_text()
    (project / "conf.lua").write_text("-- uncommitted\n")
    err = new(capsys, "-nc", "-cp", "basedir")
    assert (project / EXP1 / "conf.lua").read_text() == committed
    assert (project / EXP1 / "code" / "conf.lua").read_text() == "-- uncommitted\n"  # the code is as pinned
    assert "copied the version committed at" in err and err.count("\n") == 3


def test_a_copy_that_differs_from_the_committed_one_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new(capsys)
    (project / EXP1 / "conf.lua").write_text("-- edited in 0001\n")
    (project / "conf.lua").write_text("-- edited and committed in the repository\n")
    commit_all(project, "template edit")
    err = new(capsys)
    assert (project / "output" / "0002" / "conf.lua").read_text() == "-- edited in 0001\n"
    lines = [line for line in err.splitlines() if line.startswith("mrl:") and "differs" in line]
    assert len(lines) == 1 and "conf.lua (copied from 0001) differs from the committed basedir version" in lines[0]
    assert "`-cp basedir` copies that one" in lines[0]


def test_a_file_missing_in_the_source_experiment_is_recorded_as_from_the_basedir(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new(capsys)
    (project / "extra.txt").write_text("extra\n")
    set_cfg(project, copyFiles=["conf.lua", "extra.txt"])
    head = commit_all(project, "another copyFile")
    err = new(capsys)
    rec = record(project, "0002")
    assert rec["copied"] == {"conf.lua": "0001", "extra.txt": f"basedir@{head}"}
    assert rec["copiedFrom"] == "0001"
    assert f"copied conf.lua from 0001; extra.txt from basedir@{head[:10]}" in err
    copied = project / "output" / "0002" / "extra.txt"
    copied.write_text("mine to edit\n")  # a copy out of the read-only code/ is writable


def test_new_warns_once_about_untracked_files_left_out_of_code(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + "*.log\n")
    commit_all(project, "ignore logs")
    (project / "ignored.log").write_text("")
    for i in range(7):
        (project / f"train{i}.py").write_text("")
    err = new(capsys)
    lines = [line for line in err.splitlines() if line.startswith("mrl:") and "untracked" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("mrl: warning: 7 untracked file(s) not in code/")
    assert "train0.py" in lines[0] and "and 2 more" in lines[0] and "ignored.log" not in lines[0]
    assert not (project / EXP1 / "code" / "train0.py").exists()
    assert "warning" not in new(capsys, "-nc", "-gfut", "yes")  # there they are part of the diff


def test_the_untracked_files_warning_stays_one_line_whatever_the_file_names_hold(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a name with a newline split the warning into a second line reading `mrl: error: fake`;
    # an ESC in a name drove the terminal
    (project / "evil\nmrl: error: fake").write_text("")
    (project / "\x1b[31mred.py").write_text("")
    err = new(capsys)
    assert not any(line.startswith("mrl: error") for line in err.splitlines()) and "\x1b" not in err, err
    lines = [line for line in err.splitlines() if "untracked file" in line]
    assert len(lines) == 1, err
    line = lines[0]
    assert "evil\\nmrl: error: fake" in line and "\\x1b[31mred.py" in line


# -- the pinned run block ---------------------------------------------------------------------------


def flag_project(project: Path, command: str) -> None:
    set_cfg(project, run={"command": command})
    commit_all(project, "run command")


def test_the_run_block_is_pinned_at_new_and_shown_by_info(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flag_project(project, "echo {{lr}} > out.txt")
    new(capsys)
    assert record(project)["run"]["command"] == "echo {{lr}} > out.txt"
    assert record(project)["run"]["jobs"] == 1
    assert main(["info", "1"]) == 0
    assert "echo {{lr}} > out.txt" in capsys.readouterr().out


def test_runs_use_the_pinned_block_and_say_when_the_project_changed_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag_project(project, "echo pinned {{lr}} > out.txt")
    new(capsys)
    assert main(["makebatch"]) == 0
    set_cfg(project, run={"command": "echo live > out.txt", "jobs": 2})  # not even committed
    capsys.readouterr()
    assert main(["run", "1"]) == 0
    assert (project / EXP1 / "001" / "out.txt").read_text() == "pinned 0.01\n"
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mrl:") and "run block" in line]
    assert len(notes) == 1 and "run.command, run.jobs" in notes[0] and "mrl rerun 1" in notes[0]


def test_an_experiment_cfg_still_overrides_the_pinned_block(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flag_project(project, "echo pinned > out.txt")
    new(capsys)
    assert main(["makebatch"]) == 0
    (project / EXP1 / ".mrl.cfg").write_text(json.dumps({"run": {"command": "echo override > out.txt"}}))
    capsys.readouterr()
    assert main(["run", "1", "1"]) == 0
    assert (project / EXP1 / "001" / "out.txt").read_text() == "override\n"
    assert "run block" not in capsys.readouterr().err  # the project's block did not change


def test_an_experiment_made_before_pinning_keeps_the_projects_block(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag_project(project, "echo old > out.txt")
    new(capsys)
    rec = record(project)
    del rec["run"]
    (project / EXP1 / ".mrl").write_text(json.dumps(rec))
    assert main(["makebatch"]) == 0
    set_cfg(project, run={"command": "echo live > out.txt"})
    capsys.readouterr()
    assert main(["run", "1", "1"]) == 0
    assert (project / EXP1 / "001" / "out.txt").read_text() == "live\n"
    assert "run block" not in capsys.readouterr().err


# -- HEAD moved on -----------------------------------------------------------------------------------


def test_run_says_once_which_commit_it_runs_when_head_moved_on(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag_project(project, "python3 {{codeDir}}/train.py > out.txt; test {{lr}} != 0.04")
    new(capsys)
    pinned = record(project)["gitHash"]
    assert main(["makebatch"]) == 0
    assert main(["run"]) == 1
    assert "HEAD" not in capsys.readouterr().err  # nothing moved yet
    for i in range(2):
        (project / "train.py").write_text(f"print('fixed {i}')\n")
        commit_all(project, f"fix {i}")
    assert main(["run", "--failed"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mrl:") and "HEAD" in line]
    assert len(lines) == 1, err
    assert f"commit {pinned[:10]}" in lines[0] and "HEAD is 2 commits ahead" in lines[0]
    assert "`mrl rerun 1 --failed`" in lines[0]
    assert (project / EXP1 / "004" / "out.txt").read_text() == "training\n"  # still the pinned code
    # A selection with --failed: the suggested rerun takes the same param sets, both of them.
    assert main(["run", "1/4-5", "--failed"]) == 1
    err = capsys.readouterr().err
    assert "`mrl rerun 1 4-5 --failed` runs these param sets" in err, err


def test_a_submodule_left_empty_in_code_is_said_at_new(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "layers.py").write_text("WIDTH = 1\n")
    commit_all(lib, "lib")
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    commit_all(project, "vendor lib")
    err = new(capsys)
    lines = [line for line in err.splitlines() if line.startswith("mrl:") and "submodule" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("mrl: warning: 1 submodule(s) are empty folders in code/") and "vendor/lib" in lines[0]
    assert not any((project / EXP1 / "code" / "vendor" / "lib").iterdir())
    record = json.loads((project / EXP1 / ".mrl").read_text())
    assert record["snapshot"]["submodules"] == ["vendor/lib"]

    (project / "vendor" / "lib" / "layers.py").write_text("WIDTH = 2\n")  # changed, not committed
    err = new(capsys, "-nc")
    assert "the uncommitted changes in vendor/lib are not in .mrl.diff either" in err, err
