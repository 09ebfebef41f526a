"""Acceptance checks of issues 12-16 as a user meets them: `mrl` as a real subprocess in
real git repositories in temp dirs (accept-b2, wave 2, ninth stop)."""

from __future__ import annotations

import os
from pathlib import Path

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
