from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.repo import git


def test_init_writes_config_outdir_and_gitignore(git_repo: Path) -> None:
    assert main(["init", "results"]) == 0
    cfg = json.loads((git_repo / ".mrl.cfg").read_text())
    assert cfg["outdir"] == "results"
    assert cfg["name"] == "proj"
    for key in (
        "singleExpFormat",
        "subExpFormat",
        "gitFailUntrackedDefault",
        "copyFiles",
        "confTemplFile",
        "analysis_overview",
        "analysis_subexp",
        "analysis_outdir",
        "analysis_outfn",
        "analysis_webdir",
        "hooks",
        "note_fn",
        "run",
    ):
        assert key in cfg
    assert (git_repo / "results").is_dir()
    ignore = (git_repo / ".gitignore").read_text().splitlines()
    assert "/results/" in ignore and "/last" in ignore


def test_init_defaults_outdir_to_output(git_repo: Path) -> None:
    assert main(["init"]) == 0
    assert (git_repo / "output").is_dir()


def test_init_keeps_an_existing_gitignore(git_repo: Path) -> None:
    (git_repo / ".gitignore").write_text("*.pyc")
    assert main(["init"]) == 0
    assert (git_repo / ".gitignore").read_text().splitlines()[:2] == ["*.pyc", "# metarunlog"]


def test_init_twice_is_an_error_and_changes_nothing(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    before = (git_repo / ".mrl.cfg").read_text()
    capsys.readouterr()
    assert main(["init", "other"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error:") and "already initialised" in err
    assert (git_repo / ".mrl.cfg").read_text() == before
    assert not (git_repo / "other").exists()


def test_init_outside_git_is_an_error_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert main(["init"]) == 1
    err = capsys.readouterr().err
    assert "not in a git repository" in err and err.count("\n") == 1
    assert list(plain.iterdir()) == []


def test_init_in_a_subdirectory_of_the_repo_makes_a_project_there(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = git_repo / "projA"  # a monorepo: repo/projA/.mrl.cfg
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert main(["init"]) == 0
    assert (sub / ".mrl.cfg").is_file() and (sub / "output").is_dir()
    assert "/output/" in (sub / ".gitignore").read_text()
    assert not (git_repo / ".mrl.cfg").exists()
    assert Project.find(sub / "output").basedir == sub


def test_init_inside_an_experiment_is_refused(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new"]) == 0
    code = project / "output" / "0001" / "code"
    (code / ".mrl.cfg").unlink()
    monkeypatch.chdir(code)
    capsys.readouterr()
    assert main(["init"]) == 1
    assert "inside an experiment" in capsys.readouterr().err
    assert not (code / ".mrl.cfg").exists()


def test_commands_find_the_basedir_from_a_subdirectory(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert main(["new", "from below"]) == 0
    assert (project / "output" / "0001" / ".mrl").is_file()
    capsys.readouterr()
    assert main(["ls", "-desc"]) == 0
    assert "from below" in capsys.readouterr().out


def test_commands_outside_a_project_say_to_run_init(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error:") and "mrl init" in err


def test_init_result_is_committable_and_ignores_outdir(git_repo: Path) -> None:
    assert main(["init"]) == 0
    (git_repo / "output" / "junk.txt").write_text("x")
    status = git(git_repo, "status", "--porcelain")
    assert "output" not in status


def test_the_next_hint_names_the_keys_to_set_and_the_commit_that_makes_new_work(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re
    import subprocess

    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "run.command" in out and "confTemplFile" in out and "null" in out and "{{ params | cli_args }}" in out
    commit = re.search(r"2\. commit: (git add .*)$", out, re.M)
    assert commit is not None and 'git commit -m "mrl init"' in commit.group(1)
    cfg = json.loads((git_repo / ".mrl.cfg").read_text())
    cfg["run"]["command"] = "python {{codeDir}}/train.py {{ params | cli_args }}"
    (git_repo / ".mrl.cfg").write_text(json.dumps(cfg))
    subprocess.run(commit.group(1), shell=True, cwd=git_repo, check=True, capture_output=True)
    assert git(git_repo, "status", "--porcelain") == ""
    assert 'mrl new "what this experiment asks"' in out
    assert main(["new", "what this experiment asks"]) == 0
