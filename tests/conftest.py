"""Shared fixtures: real git repositories in temp dirs, an initialised mrl project.

Tests call `main([...])` in-process (fast) or `run_mrl(...)` as a real subprocess when
signals, exit codes or concurrency matter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
# Test modules import helpers as `from tests.helpers.<module> import ...`.
sys.path.insert(1, str(REPO_ROOT / "tests"))

from metarunlog.main import main  # noqa: E402,F401


def _signals_as_a_terminal_gives_them() -> None:
    """The tests send real SIGHUP/SIGINT/SIGTERM to mrl processes and expect what a user at a
    terminal gets. Dispositions set to "ignore" are inherited through exec: a suite started
    under `nohup` (SIGHUP) or as a background job of a script (SIGINT) would otherwise hand
    its mrl processes ignored signals, which mrl rightly keeps ignored (docs/running.md)."""
    import signal

    for sig, handler in (
        (signal.SIGHUP, signal.SIG_DFL),
        (signal.SIGTERM, signal.SIG_DFL),
        (signal.SIGINT, signal.default_int_handler),
    ):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, handler)


_signals_as_a_terminal_gives_them()

# The helpers live in tests/helpers/; these names stay importable from here for older tests.
from tests.helpers.repo import GIT_ENV, commit_all, git, old_one_job_exp, run_mrl, set_cfg  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MRL_DEBUG", raising=False)


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository with one commit (train.py, conf.lua), cwd set to it."""
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('training')\n")
    (repo / "conf.lua").write_text(
        "local cfg = {\n    learning_rate = {{lr}},\n    wdecay = {{wdecay}},\n}\n"
        "-- MRL:grid['lr'] = [0.01, 0.04, 0.1]\n-- MRL:grid['wdecay'] = [0.1, 1.0, 10.0]\n"
    )
    commit_all(repo, "initial")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def project(git_repo: Path) -> Path:
    """`git_repo` after `mrl init` (committed), with conf.lua as confTemplFile and copyFile."""
    assert main(["init"]) == 0
    set_cfg(git_repo, confTemplFile="conf.lua", copyFiles=["conf.lua"])
    commit_all(git_repo, "mrl init")
    return git_repo
