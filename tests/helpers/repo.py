"""Real git repositories and real `mrl` processes for tests: git with a fixed identity,
commits, `.mrl.cfg` edits, `mrl` as a subprocess of this checkout's code, and records as
older mrl versions left them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from metarunlog.main import main

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    ).stdout


def commit_all(cwd: Path, msg: str = "change") -> str:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", msg)
    return git(cwd, "rev-parse", "HEAD").strip()


def sha256_project(repo: Path) -> Path:
    """A project in a new repository at `repo` made with `git init --object-format=sha256`
    (blob and commit ids of 64 hex digits), with train.py and a symlink to it committed.
    The cwd must be `repo` (main(["init"]) runs there)."""
    repo.mkdir()
    git(repo, "init", "-q", "--object-format=sha256")
    (repo / "train.py").write_text("print('training')\n")
    os.symlink("train.py", repo / "latest.py")
    os.chdir(repo)
    assert main(["init"]) == 0
    commit_all(repo, "sha256 repository")
    return repo


def set_cfg(basedir: Path, **keys: object) -> None:
    import json

    path = basedir / ".mrl.cfg"
    data = json.loads(path.read_text())
    data.update(keys)
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_mrl(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`mrl ARGS` as a real subprocess of this checkout's code."""
    full_env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "metarunlog", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=check,
    )


def run_mrl_into_head(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mrl ARGS | head -1` in bash: stdout is head's line, the exit code mrl's own (PIPESTATUS)."""
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    line = " ".join([sys.executable, "-m", "metarunlog", *args])
    return subprocess.run(
        f"{line} | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def old_one_job_exp(basedir: Path, template: str, rendered: str, params: dict | None = None) -> Path:
    """`mrl new`, then conf.lua as an earlier mrl 2.0 left a template without MRL lines (a
    "one-job experiment"): rendered into EXPDIR itself, the template kept in
    .mrl.template/, `"single": true` in the batch record. mrl now makes 001/ instead (as the
    original did) but still reads, runs and -replaces these."""
    import hashlib
    import json

    assert main(["new"]) == 0
    exp = sorted(p for p in (basedir / "output").iterdir() if p.name.isdigit())[-1]
    (exp / ".mrl.template").mkdir()
    (exp / ".mrl.template" / "conf.lua").write_text(template)
    (exp / "conf.lua").write_text(rendered)
    record = json.loads((exp / ".mrl").read_text())
    record["batch"] = {
        "n": 1,
        "single": True,
        "templates": ["conf.lua"],
        "made": "2026-11-01T12:00:00+00:00",
        "params": params or {},
        "rendered": {"conf.lua": hashlib.sha256(rendered.encode()).hexdigest()},
    }
    (exp / ".mrl").write_text(json.dumps(record, indent=2) + "\n")
    return exp
