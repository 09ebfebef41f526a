from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.repo import GIT_ENV, REPO_ROOT, commit_all, git, run_mrl, set_cfg


def record(project: Path, name: str = "0001") -> dict:
    return json.loads((project / "output" / name / ".mrl").read_text())


def test_new_makes_a_numbered_experiment_with_a_complete_record(project: Path) -> None:
    assert main(["new", "does lr matter?"]) == 0
    rec = record(project)
    head = git(project, "rev-parse", "HEAD").strip()
    assert rec["expId"] == 1
    assert rec["gitHash"] == head
    assert rec["gitDescription"] == "mrl init"
    assert rec["branch"] == "main"
    assert rec["dirty"] is False
    assert rec["description"] == "does lr matter?"
    for key in ("timestamp", "user", "host", "copiedFrom", "mrlVersion"):
        assert key in rec
    assert main(["new"]) == 0
    assert record(project, "0002")["expId"] == 2


def test_new_snapshots_the_tracked_tree_isolated_from_later_edits(project: Path) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "model.py").write_text("LAYERS = 3\n")
    (project / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(project / "run.sh", 0o755)
    commit_all(project, "model")
    assert main(["new"]) == 0
    code = project / "output" / "0001" / "code"
    assert (code / "pkg" / "model.py").read_text() == "LAYERS = 3\n"
    assert os.access(code / "run.sh", os.X_OK)
    assert not (code / ".git").exists()
    (project / "pkg" / "model.py").write_text("LAYERS = 99\n")
    commit_all(project, "more layers")
    assert (code / "pkg" / "model.py").read_text() == "LAYERS = 3\n"
    tracked = set(git(project, "ls-tree", "-r", "--name-only", "HEAD~1").split())
    snap = {p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()}
    assert snap == tracked


def test_new_refuses_a_dirty_tree_and_lists_the_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "train.py").write_text("print('changed')\n")
    assert main(["new"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: uncommitted changes") and "train.py" in err
    assert "--notclean" in err
    assert list((project / "output").iterdir()) == []


def test_untracked_files_count_only_with_gfut_yes(project: Path) -> None:
    (project / "scratch.py").write_text("x = 1\n")
    assert main(["new", "-gfut", "no"]) == 0
    assert main(["new", "-gfut", "yes"]) == 1
    set_cfg(project, gitFailUntrackedDefault="yes")
    commit_all(project, "gfut yes")
    (project / "scratch2.py").write_text("x = 2\n")
    assert main(["new"]) == 1


def test_notclean_saves_the_diff_and_applies_it_to_code(project: Path) -> None:
    (project / "train.py").write_text("print('changed')\n")
    assert main(["new", "--notclean", "sloppy"]) == 0
    exp = project / "output" / "0001"
    rec = record(project)
    assert rec["dirty"] is True
    assert "train.py" in (exp / ".mrl.diff").read_text()
    assert (exp / "code" / "train.py").read_text() == "print('changed')\n"
    # the working tree itself is untouched
    assert (project / "train.py").read_text() == "print('changed')\n"
    assert git(project, "status", "--porcelain").strip() == "M train.py"


def test_notclean_with_gfut_yes_also_carries_untracked_and_binary_files(project: Path) -> None:
    (project / "new_module.py").write_text("VALUE = 7\n")
    (project / "weights.bin").write_bytes(bytes(range(256)))
    assert main(["new", "-nc", "-gfut", "yes"]) == 0
    code = project / "output" / "0001" / "code"
    assert (code / "new_module.py").read_text() == "VALUE = 7\n"
    assert (code / "weights.bin").read_bytes() == bytes(range(256))
    # the user's index is untouched: the files are still untracked
    assert "?? new_module.py" in git(project, "status", "--porcelain")


def test_new_copies_copyfiles_from_the_last_experiment(project: Path) -> None:
    assert main(["new"]) == 0
    first = project / "output" / "0001"
    assert (first / "conf.lua").read_text() == (project / "conf.lua").read_text()
    (first / "conf.lua").write_text("-- edited in experiment 1\n")
    assert main(["new"]) == 0
    assert (project / "output" / "0002" / "conf.lua").read_text() == "-- edited in experiment 1\n"
    assert record(project, "0002")["copiedFrom"] == "0001"
    assert main(["new", "-cp", "no"]) == 0
    assert not (project / "output" / "0003" / "conf.lua").exists()
    assert main(["new", "-cp", "1"]) == 0
    assert (project / "output" / "0004" / "conf.lua").read_text() == "-- edited in experiment 1\n"


def test_new_with_an_unknown_cp_experiment_is_an_error_and_creates_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "-cp", "42"]) == 1
    assert "no experiment 42" in capsys.readouterr().err
    assert list((project / "output").iterdir()) == []


def test_new_writes_the_note_and_points_last_at_it(project: Path) -> None:
    assert main(["new", "first question"]) == 0
    assert main(["new", "second question"]) == 0
    note = (project / "output" / "0002" / ".mrl.note").read_text()
    assert note.startswith("# 0002: second question")
    assert os.readlink(project / "last") == os.path.join("output", "0002")


def test_ten_concurrent_new_make_ten_experiments(project: Path) -> None:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "metarunlog", "new", f"run {i}"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(10)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, outs
    exps = sorted(p.name for p in (project / "output").iterdir() if not p.name.startswith("."))
    assert exps == [f"{i:04d}" for i in range(1, 11)]
    descs = sorted(record(project, e)["description"] for e in exps)
    assert descs == sorted(f"run {i}" for i in range(10))
    assert os.readlink(project / "last") == os.path.join("output", "0010")


def test_new_in_a_repo_without_commits_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    monkeypatch.chdir(repo)
    assert main(["init"]) == 0
    r = run_mrl("new", cwd=repo)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("mrl: error:") and "no commit" in r.stderr
    assert "Traceback" not in r.stderr


def test_mrl_output_never_counts_as_uncommitted_code(project: Path) -> None:
    (project / ".gitignore").write_text("")
    commit_all(project, "no ignores")
    assert main(["new", "-gfut", "yes"]) == 0
    assert main(["new", "-gfut", "yes"]) == 0


def test_new_records_the_basedir_and_the_untracked_setting_as_the_original_did(project: Path) -> None:
    assert main(["new", "-gfut", "yes"]) == 0
    rec = record(project)
    assert rec["basedir"] == str(project.resolve())
    assert rec["gitFailUntracked"] == "yes"
    assert main(["new"]) == 0
    assert record(project, "0002")["gitFailUntracked"] == "no"  # gitFailUntrackedDefault


def test_a_project_in_a_subfolder_of_its_repository_snapshots_the_whole_tree(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = git_repo / "projA"  # a monorepo: repo/projA/.mrl.cfg beside repo/projB
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "train.py").write_text("print('A')\n")
    (git_repo / "projB").mkdir()
    (git_repo / "projB" / "lib.py").write_text("B = 1\n")
    (git_repo / "shared.py").write_text("S = 1\n")
    monkeypatch.chdir(proj)
    assert main(["init"]) == 0
    (proj / "conf.txt").write_text("lr={{lr}}\n# MRL:grid['lr'] = [1, 2]\n")
    set_cfg(proj, confTemplFile="conf.txt", run={"command": "cat {{codeDir}}/src/train.py > out.txt"})
    commit_all(git_repo, "monorepo")
    monkeypatch.chdir(proj / "src")  # found from below, too
    assert main(["new", "in a monorepo"]) == 0
    exp = proj / "output" / "0001"
    assert (exp / "code" / "shared.py").is_file() and (exp / "code" / "projB" / "lib.py").is_file()
    assert (exp / "code" / "projA" / "src" / "train.py").read_text() == "print('A')\n"
    assert json.loads((exp / ".mrl").read_text())["codeSubdir"] == "projA"
    assert not (exp / "code" / "projA" / "output").exists()  # no experiments inside code/
    monkeypatch.chdir(exp / "code" / "projA")  # the copy of .mrl.cfg in code/ is skipped
    assert main(["makebatch"]) == 0
    assert main(["run"]) == 0
    assert (exp / "002" / "out.txt").read_text() == "print('A')\n"


def test_mrl_output_in_a_monorepo_subfolder_does_not_count_as_uncommitted(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = git_repo / "projA"
    proj.mkdir()
    monkeypatch.chdir(proj)
    assert main(["init"]) == 0
    (proj / ".gitignore").unlink()  # the user dropped mrl's ignore lines
    (proj / "conf.lua").write_text("x = 1\n")
    git(git_repo, "add", "projA/.mrl.cfg", "projA/conf.lua")
    git(git_repo, "commit", "-q", "-m", "projA")
    assert main(["new"]) == 0
    assert main(["new"]) == 0  # output/0001 and `last` are mrl's own, not the user's changes


def test_file_names_that_are_not_utf8_are_snapshotted_warned_about_and_diffed(project: Path) -> None:
    name = os.path.join(os.fsencode(project), b"caf\xe9.csv")  # a latin-1 name, untracked
    with open(name, "wb") as f:
        f.write(b"1,2\n")
    r = run_mrl("new", "untracked", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "1 untracked file(s) not in code/" in r.stderr and "caf" in r.stderr
    commit_all(project, "a latin-1 file name")
    with open(name, "ab") as f:
        f.write(b"3,4\n")
    r = run_mrl("new", "--notclean", "dirty", cwd=project)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(os.fsencode(project), b"output/0002/code/caf\xe9.csv"), "rb") as f:
        assert f.read() == b"1,2\n3,4\n"
    assert run_mrl("verify", "2", cwd=project).returncode == 0


def test_a_named_pipe_as_conftemplfile_or_in_copyfiles_is_one_error_line_never_a_wait_or_a_traceback(
    project: Path,
) -> None:
    # shutil.copy2 raised SpecialFileError ("internal error", exit 3) in `mrl new`, and
    # makebatch's read of a FIFO template waited for a writer for good
    set_cfg(project, confTemplFile="conf.json")
    commit_all(project, "a template")
    os.mkfifo(project / "conf.json")
    r = run_mrl("new", "-cp", "basedir", "x", cwd=project, timeout=30)
    assert (r.returncode, r.stderr.count("\n")) == (1, 1), r.stderr
    assert r.stderr.startswith(f"mrl: error: confTemplFile entry 'conf.json': {project / 'conf.json'} is a named pipe")
    assert not list((project / "output").glob("0*"))  # nothing made
    (project / "conf.json").unlink()
    (project / "conf.json").write_text('{"lr": 0.1}\n// MRL:grid["lr"] = [0.1, 0.2]\n')
    commit_all(project, "a real template")
    assert run_mrl("new", "-cp", "basedir", "x", cwd=project).returncode == 0
    copied = project / "output" / "0001" / "conf.json"
    copied.unlink()
    os.mkfifo(copied)
    r = run_mrl("makebatch", cwd=project, timeout=30)
    assert (r.returncode, r.stderr) == (
        1,
        f"mrl: error: template {copied} is a named pipe (FIFO), not a file: confTemplFile 'conf.json' must name "
        "a regular file\n",
    )
    # a FIFO inside a copied folder the commit lacks (git keeps no FIFO: from the working tree)
    (project / "data").mkdir()
    os.mkfifo(project / "data" / "pipe")
    set_cfg(project, copyFiles=["data"], confTemplFile=None)
    commit_all(project, "copy a folder")
    r = run_mrl("new", "-cp", "basedir", "y", cwd=project, timeout=30)
    assert (r.returncode, r.stderr.count("\n")) == (1, 1) and "pipe is a named pipe (FIFO)" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (project / "output" / "0002").exists()
