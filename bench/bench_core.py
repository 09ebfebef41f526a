#!/usr/bin/env python3
"""Core speed: start-up of `mrl --help` / `mrl ls` (1,000 experiments) against bare
Python, and `mrl new` on a 20,000-file repository against `git archive HEAD | tar -x`.

    python bench/bench_core.py [--files 20000] [--experiments 1000] [--repeat 7]

Prints medians and ratios measured in the same run. Aims (issue 2): `mrl ls` within 3x
of `python -c pass`; `mrl new` within 1.5x of the archive floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b",
}
MRL = [sys.executable, "-m", "metarunlog"]


def timed(cmd: list[str] | str, cwd: Path, repeat: int, shell: bool = False, setup=None) -> float:
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        os.sync()  # flush the previous run's writes so that they are not billed to this one
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=ENV, shell=shell, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_repo(path: Path, nfiles: int) -> None:
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    for i in range(nfiles):
        d = path / f"pkg{i // 500:03d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i:05d}.py").write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * 20)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "big"], cwd=path, check=True, env=ENV)
    subprocess.run(MRL + ["init"], cwd=path, check=True, env=ENV, stdout=subprocess.DEVNULL)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "mrl"], cwd=path, check=True, env=ENV)


def fake_experiments(repo: Path, n: int) -> None:
    out = repo / "output"
    for i in range(1, n + 1):
        d = out / f"{i:04d}"
        d.mkdir()
        (d / ".mrl").write_text(json.dumps({"expId": i, "gitHash": "0" * 40, "description": f"exp {i}",
                                            "timestamp": "2026-01-01T00:00:00"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-") as tmp:
        tmp_path = Path(tmp)
        small = tmp_path / "small"
        make_repo(small, 3)
        fake_experiments(small, a.experiments)
        py = timed([sys.executable, "-c", "pass"], small, a.repeat)
        helpt = timed(MRL + ["--help"], small, a.repeat)
        lst = timed(MRL + ["ls"], small, a.repeat)
        lsd = timed(MRL + ["ls", "-desc", "-tm"], small, a.repeat)
        print(f"start-up ({a.experiments} experiments), median of {a.repeat}:")
        print(f"  python -c pass      {py * 1000:7.1f} ms  (floor)")
        print(f"  mrl --help          {helpt * 1000:7.1f} ms  {helpt / py:5.2f}x")
        print(f"  mrl ls              {lst * 1000:7.1f} ms  {lst / py:5.2f}x   (aim: <= 3x)")
        print(f"  mrl ls -desc -tm    {lsd * 1000:7.1f} ms  {lsd / py:5.2f}x")

        big = tmp_path / "big"
        make_repo(big, a.files)
        dest = tmp_path / "dest"

        def fresh_dest() -> None:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()

        def fresh_out() -> None:
            shutil.rmtree(big / "output", ignore_errors=True)
            (big / "output").mkdir()

        r = max(3, a.repeat // 2)
        archive = timed(f"git archive HEAD | tar -x -C {dest}", big, r, shell=True, setup=fresh_dest)
        idx = tmp_path / "index"
        checkout = timed(
            f"GIT_INDEX_FILE={idx} git read-tree HEAD && "
            f"GIT_INDEX_FILE={idx} git -c checkout.workers=0 checkout-index -a -f --prefix={dest}/",
            big, r, shell=True, setup=fresh_dest)
        wt = tmp_path / "wt"

        def fresh_wt() -> None:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=big, capture_output=True)
            shutil.rmtree(wt, ignore_errors=True)

        worktree = timed(f"git worktree add -q --detach {wt} HEAD", big, r, shell=True, setup=fresh_wt)
        fresh_wt()
        new = timed(MRL + ["new", "bench"], big, r, setup=fresh_out)
        print(f"\nsnapshot of {a.files} tracked files, median of {r}:")
        print(f"  git archive | tar -x          {archive * 1000:7.1f} ms  (floor)")
        print(f"  read-tree + checkout-index    {checkout * 1000:7.1f} ms  {checkout / archive:5.2f}x")
        print(f"  git worktree add --detach     {worktree * 1000:7.1f} ms  {worktree / archive:5.2f}x"
              "   (rejected: code/ would link back to the repo)")
        print(f"  mrl new (whole command)       {new * 1000:7.1f} ms  {new / archive:5.2f}x   (aim: <= 1.5x)")


if __name__ == "__main__":
    main()
