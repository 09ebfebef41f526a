#!/usr/bin/env python3
"""Slurm backend overhead: N trivial sub-experiments through `mrl run --backend slurm
--wait` against the same array submitted by hand, `sbatch --array=1-N --wait`, each task
running the same trivial command, alternately in the same run.

    python bench/bench_slurm.py [--n 50] [--repeat 3] [--max-parallel 0]

Needs a Slurm cluster (starts the local one with scripts/slurm-up.sh when run as root).
Prints each wall time, the medians and their ratio. Aim (issue 6): within 1.2x of raw
sbatch. The difference is mrl's own work: a Python process per task that renders the
command and writes `.mrl.status` and `run.log`, plus submitting held and releasing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b",
}
MRL = [sys.executable, "-m", "metarunlog"]
COMMAND = "true"


def sh(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)


def make_project(base: Path, n: int, max_parallel: int) -> Path:
    """A git repo, `mrl init`, one experiment with N sub-experiments via `mrl makebatch`."""
    import json

    repo = base / "proj"
    repo.mkdir()
    values = ", ".join(str(i) for i in range(n))
    (repo / "conf.txt").write_text(f"x = {{{{x}}}}\n# MRL:grid['x'] = [{values}]\n")
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "init"], repo)
    sh(MRL + ["init"], repo)
    cfg = json.loads((repo / ".mrl.cfg").read_text())
    cfg.update(confTemplFile="conf.txt", copyFiles=["conf.txt"])
    cfg["run"] = {**cfg.get("run", {}), "command": COMMAND, "backend": "slurm"}
    if max_parallel:
        cfg["run"]["slurm"] = {"max_parallel": max_parallel}
    (repo / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "mrl"], repo)
    sh(MRL + ["new", "bench"], repo)
    sh(MRL + ["makebatch"], repo)
    return repo


def time_mrl(repo: Path) -> float:
    t = time.perf_counter()
    sh(MRL + ["run", "--backend", "slurm", "--wait", "--force"], repo)
    return time.perf_counter() - t


def raw_script(work: Path) -> Path:
    script = work / "raw.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={work}/raw-%A_%a.out\n{COMMAND}\n")
    return script


def time_sbatch(work: Path, n: int, max_parallel: int) -> float:
    """The issue's peer: the same array by hand, `sbatch --array --wait`."""
    throttle = f"%{max_parallel}" if max_parallel else ""
    t = time.perf_counter()
    sh(["sbatch", "--parsable", "--wait", f"--array=1-{n}{throttle}", str(raw_script(work))], work)
    return time.perf_counter() - t


def time_floor(work: Path, n: int, max_parallel: int) -> float:
    """The floor: the same array, submitted without --wait, until squeue shows no task of
    it pending, running or completing (asked every 0.1 s). `sbatch --wait` itself sleeps
    2 s, then 3 s, 4 s... between its checks, so it can lag the array by many seconds."""
    throttle = f"%{max_parallel}" if max_parallel else ""
    t = time.perf_counter()
    job = subprocess.run(
        ["sbatch", "--parsable", f"--array=1-{n}{throttle}", str(raw_script(work))],
        cwd=work, env=ENV, check=True, capture_output=True, text=True,
    ).stdout.strip().split(";")[0]
    while subprocess.run(
        ["squeue", "-h", "-j", job, "-t", "PD,R,CG,CF,S", "-o", "%i"], capture_output=True, text=True
    ).stdout.strip():
        time.sleep(0.1)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="sub-experiments / array tasks (default 50)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, alternating (default 3)")
    ap.add_argument("--max-parallel", type=int, default=0, help="array throttle %%N for both (default none)")
    args = ap.parse_args()

    from tests.slurm_cluster import ensure_cluster

    ensure_cluster()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-slurm-") as tmp:
        base = Path(tmp)
        repo = make_project(base, args.n, args.max_parallel)
        raw, floor, mrl = [], [], []
        for i in range(args.repeat):
            raw.append(time_sbatch(base, args.n, args.max_parallel))
            floor.append(time_floor(base, args.n, args.max_parallel))
            mrl.append(time_mrl(repo))
            print(f"run {i + 1}: sbatch --wait {raw[-1]:6.2f} s   sbatch+squeue {floor[-1]:6.2f} s   "
                  f"mrl {mrl[-1]:6.2f} s", flush=True)
    r, f, m = statistics.median(raw), statistics.median(floor), statistics.median(mrl)
    print(f"\n{args.n} trivial array tasks (`{COMMAND}`), median of {args.repeat}:")
    print(f"  sbatch --array --wait (the issue's peer)      {r:6.2f} s")
    print(f"  sbatch --array, squeue every 0.1 s (floor)    {f:6.2f} s")
    print(f"  mrl run --backend slurm --wait                {m:6.2f} s")
    print(f"  ratio mrl / sbatch --wait: {m / r:.2f}x (aim: <= 1.2x);  mrl / floor: {m / f:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
