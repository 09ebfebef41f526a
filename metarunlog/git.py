"""Git facts (head, describe, dirty files) and a snapshot of the tree at a commit.

Plain `git` subprocesses: they start faster than GitPython and need nothing installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from metarunlog.errors import MrlError


@dataclass(frozen=True)
class Head:
    sha: str
    description: str  # `git log -1 --format=%s`: the subject of the commit
    describe: str  # `git describe --always --dirty`
    branch: str | None


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=env,
        )
    except FileNotFoundError as e:
        raise MrlError("git is not installed: install git and try again") from e
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise MrlError(f"git {args[0]} failed in {cwd}: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


def toplevel(path: Path) -> Path | None:
    """The top-level directory of the git work tree containing `path`, or None."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True
        )
    except FileNotFoundError as e:
        raise MrlError("git is not installed: install git and try again") from e
    if proc.returncode != 0:
        return None
    return Path(proc.stdout.strip())


def head(repo: Path) -> Head:
    out = _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    if not out:
        raise MrlError(f"the git repository {repo} has no commit yet: commit your code first")
    subject = _git(repo, "log", "-1", "--format=%s", out).strip()
    describe = _git(repo, "describe", "--always", "--dirty", "--tags").strip()
    branch = _git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip() or None
    return Head(sha=out, description=subject, describe=describe, branch=branch)


def dirty_files(repo: Path, untracked: bool) -> list[str]:
    """Paths with uncommitted changes (`git status --porcelain`), untracked ones if asked."""
    out = _git(
        repo, "status", "--porcelain=v1", "-z", f"--untracked-files={'normal' if untracked else 'no'}"
    )
    entries = [e for e in out.split("\0") if e]
    files: list[str] = []
    skip_next = False
    for e in entries:
        if skip_next:  # the source path of a rename
            skip_next = False
            continue
        status, path = e[:2], e[3:]
        if status[0] in "RC":
            skip_next = True
        files.append(f"{status.strip() or '?'} {path}")
    return files


def diff_against_head(repo: Path, untracked: bool) -> bytes:
    """`git diff --binary HEAD`, plus untracked files when asked (via a throwaway index)."""
    if not untracked:
        return _git_bytes(repo, ["diff", "--binary", "HEAD"])
    git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir").strip())
    with tempfile.TemporaryDirectory(prefix="mrl-index-") as tmp:
        index = Path(tmp) / "index"
        if (git_dir / "index").exists():
            shutil.copy2(git_dir / "index", index)
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        _git(repo, "add", "-A", env=env)
        return _git_bytes(repo, ["diff", "--binary", "--cached", "HEAD"], env=env)


def _git_bytes(repo: Path, args: list[str], env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, env=env)
    if proc.returncode != 0:
        raise MrlError(f"git {args[0]} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def snapshot(repo: Path, commit: str, dest: Path) -> None:
    """Write the tree of `commit` into `dest` (which must exist and be empty).

    A throwaway index plus `git checkout-index` writes the files straight from the object
    store, in parallel where git allows; bench/bench_core.py measures it against
    `git archive | tar -x`. The result is plain files: no .git, no link back to the repo.
    """
    with tempfile.TemporaryDirectory(prefix="mrl-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", commit, env=env)
        _git(
            repo,
            "-c", "checkout.workers=0",
            "-c", "core.autocrlf=false",
            "checkout-index", "-a", "-f", f"--prefix={dest}{os.sep}",
            env=env,
        )


def apply_diff(diff_file: Path, dest: Path) -> None:
    """Apply a `git diff --binary` patch to the plain folder `dest` (not a repository)."""
    # Keep git from discovering the enclosing repository: paths are then taken relative to dest.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(dest.parent)}
    proc = subprocess.run(
        ["git", "apply", "--whitespace=nowarn", str(diff_file)],
        cwd=dest,
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise MrlError(f"could not apply {diff_file} to {dest}: {proc.stderr.strip()}")
