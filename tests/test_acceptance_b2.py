"""Acceptance checks of issues 12-16 as a user meets them: `mrl` as a real subprocess in
real git repositories in temp dirs (accept-b2, wave 2, ninth stop)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.repo import commit_all, git, run_mrl


def _project(tmp_path: Path) -> Path:
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('hi')\n")
    assert run_mrl("init", cwd=repo).returncode == 0
    return repo


def test_verify_lists_one_line_per_difference_whatever_the_file_names(tmp_path: Path) -> None:
    """A tracked file named with a newline or an ESC sequence, edited after `mrl new`: verify
    listed `changed  new` and `line.py` on two lines (a reader of the list saw a second,
    unknown file) and sent the name's terminal escape to the terminal. Each difference is one
    line, its control characters escaped as mrl's warnings already write them."""
    repo = _project(tmp_path)
    names = ["new\nline.py", "esc\x1b[31mred.py", "tab\tx.py"]
    for name in names:
        (repo / name).write_text("v1\n")
    commit_all(repo, "odd names")
    assert run_mrl("new", "x", cwd=repo).returncode == 0
    code = repo / "output" / "0001" / "code"
    for name in names:
        f = code / name
        f.unlink()  # a private edit (root writes through read-only bits; a user copies first)
        f.write_text("v2\n")
    r = run_mrl("verify", "1", cwd=repo)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert sorted(lines) == sorted(["changed  new\\nline.py", "changed  esc\\x1b[31mred.py", "changed  tab\\tx.py"]), (
        r.stdout
    )
    assert "\x1b" not in r.stdout
    assert "3 changed" in r.stderr
    # the listing is still the file names as they are for a plain name
    (code / "train.py").unlink()
    r = run_mrl("verify", "1", cwd=repo)
    assert "missing  train.py" in r.stdout.splitlines()
    assert os.path.exists(code / "new\nline.py")


def test_a_blob_a_concurrent_mrl_new_stored_first_is_linked_not_kept_private_nor_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `mrl new` filling a fresh store at once (a sweep script starting several): the one
    whose checkout finished second found every blob stored by the other. It kept private
    copies of all its files (the disk twice, six times for six) and its record still said
    `"stored": N`, files it never added. Now it links the stored files in place of its own
    (unchanged since stored, as any link from the store) and its record counts them as
    linked: `stored` is only what it added."""
    import json

    from metarunlog import git as mrl_git
    from metarunlog.main import main

    repo = _project(tmp_path)
    for i in range(40):
        (repo / f"m{i}.py").write_text(f"X = {i}\n")
    commit_all(repo, "forty modules")
    real_checkout = mrl_git.checkout_index
    other: list[subprocess.CompletedProcess[str]] = []

    def checkout_then_the_other_mrl_new_stores_everything(*args, **kwargs):
        real_checkout(*args, **kwargs)
        if not other:  # the other `mrl new`, a real process, between our checkout and our store
            other.append(run_mrl("new", "theirs", cwd=repo, timeout=120))

    monkeypatch.setattr(mrl_git, "checkout_index", checkout_then_the_other_mrl_new_stores_everything)
    monkeypatch.chdir(repo)
    assert main(["new", "mine"]) == 0
    assert other and other[0].returncode == 0, other
    out = repo / "output"
    (theirs,) = [
        p for p in out.iterdir() if p.name.isdigit() and json.loads((p / ".mrl").read_text())["description"] == "theirs"
    ]
    (mine,) = [p for p in out.iterdir() if p.name.isdigit() and p != theirs]
    snap = json.loads((mine / ".mrl").read_text())["snapshot"]
    assert snap["stored"] == 0, snap  # the other one stored every blob
    assert snap["linked"] == snap["files"], snap
    for i in range(40):
        assert os.path.samefile(mine / "code" / f"m{i}.py", theirs / "code" / f"m{i}.py")
    assert run_mrl("verify", mine.name, cwd=repo).returncode == 0
    assert run_mrl("verify", theirs.name, cwd=repo).returncode == 0
    assert not [p for p in (mine / "code").iterdir() if p.name.endswith(".tmp")]


def test_inside_a_copied_experiment_whose_project_is_not_here_the_error_names_that_project(tmp_path: Path) -> None:
    """An experiment folder rsynced to another machine (here: its project moved away) is
    self-contained, and `mrl verify` / `mrl status` inside it said "no .mrl.cfg in ... or any
    parent: run `mrl init` ... first", as if it were no experiment at all (and `mrl init`
    there would make a project inside the copy). Now the one line says what it is: an
    experiment of the project its record names, which is not here."""
    import shutil

    repo = _project(tmp_path)
    commit_all(repo, "mrl")
    assert run_mrl("new", "x", cwd=repo).returncode == 0
    far = tmp_path / "far"
    far.mkdir()
    shutil.copytree(repo / "output" / "0001", far / "0001", symlinks=True)
    repo.rename(tmp_path / "moved")
    (far / "0001" / "001").mkdir()  # a sub-experiment folder, as makebatch writes it
    (far / "0001" / "001" / ".mrl").write_text('{"subExpId": 1, "params": {"lr": 0.1}}')
    for args, cwd in ((["verify"], "code"), (["status"], "001"), (["info"], ".")):
        r = run_mrl(*args, cwd=far / "0001" / cwd)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("mrl: error: ") and str(far / "0001") in r.stderr, r.stderr
        assert str(repo) in r.stderr and "not here" in r.stderr and "mrl init" not in r.stderr, r.stderr
    # the code itself still runs without mrl
    assert subprocess.run(["python3", "train.py"], cwd=far / "0001" / "code", capture_output=True).returncode == 0
