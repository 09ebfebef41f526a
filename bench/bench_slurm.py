#!/usr/bin/env python3
"""Slurm backend at scale (issue 15), in the same run:

1. 2,000 sub-experiments of `true` through `mrl run --backend slurm --pack 100 --wait`
   against the same work submitted by hand as one packed array (the floor): 20 tasks,
   each running `/bin/sh -c true` 100 times, watched with `squeue` every 0.1 s until no
   task is left. Aim: within 1.2x.
2. The submission alone for 10,000 sub-experiments (`mrl run --backend slurm --pack 100`,
   which returns once submitted; the arrays are held back with `--begin` and cancelled
   after). Aim: under 5 s.

    python bench/bench_slurm.py [--n 2000] [--pack 100] [--pack-jobs N] [--submit-n 10000] [--repeat 5]

Needs a Slurm cluster (starts the local one with scripts/slurm-up.sh when run as root).
mrl's extra work per sub-experiment is its own record, lock, `run.log` and rendered
command; per task, a Python process that loads the experiment.
"""

from __future__ import annotations

import argparse
import json
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
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}
MRL = [sys.executable, "-m", "metarunlog"]
COMMAND = "true"


def sh(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout


def make_project(base: Path, name: str, n: int, pack_jobs: int | None = None) -> Path:
    """A git repo, `mrl init`, one experiment with N sub-experiments via `mrl makebatch`."""
    repo = base / name
    repo.mkdir()
    (repo / "conf.txt").write_text(f"x = {{{{x}}}}\n# MRL:grid['x'] = list(range({n}))\n")
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "init"], repo)
    sh(MRL + ["init"], repo)
    cfg = json.loads((repo / ".mrl.cfg").read_text())
    cfg.update(confTemplFile="conf.txt", copyFiles=["conf.txt"])
    cfg["run"] = {**cfg.get("run", {}), "command": COMMAND, "backend": "slurm"}
    if pack_jobs:
        cfg["run"]["slurm"] = {"pack_jobs": pack_jobs}
    (repo / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "mrl"], repo)
    sh(MRL + ["new", "bench"], repo)
    sh(MRL + ["makebatch"], repo)
    return repo


def time_mrl(repo: Path, pack: int) -> float:
    t = time.perf_counter()
    sh(MRL + ["run", "--backend", "slurm", "--pack", str(pack), "--wait", "--force"], repo)
    return time.perf_counter() - t


def time_floor(work: Path, n: int, pack: int) -> float:
    """The same work as one packed array by hand: each task runs `sh -c true` `pack` times."""
    tasks = (n + pack - 1) // pack
    script = work / "floor.sh"
    script.write_text(
        f"#!/bin/bash\n#SBATCH --output={work}/floor-%A_%a.out\nfor i in $(seq {pack}); do /bin/sh -c {COMMAND}; done\n"
    )
    t = time.perf_counter()
    job = sh(["sbatch", "--parsable", f"--array=0-{tasks - 1}", str(script)], work).strip().split(";")[0]
    while subprocess.run(
        ["squeue", "-h", "-j", job, "-t", "PD,R,CG,CF,S", "-o", "%i"], capture_output=True, text=True
    ).stdout.strip():
        time.sleep(0.1)
    return time.perf_counter() - t


def time_submit(repo: Path, pack: int) -> float:
    """Submission only, of sub-experiments that never ran: held back an hour by --begin,
    then cancelled, and their records removed for the next repeat."""
    import shutil

    expdir = repo / "output" / "0001"
    t = time.perf_counter()
    sh(MRL + ["run", "--backend", "slurm", "--pack", str(pack), "--slurm-opt=--begin=now+3600"], repo)
    took = time.perf_counter() - t
    log = expdir / ".mrl.slurm" / "submissions.jsonl"
    jobs = [json.loads(line)["jobId"] for line in log.read_text().splitlines()]
    subprocess.run(["scancel", *jobs], check=False, capture_output=True)
    for status in expdir.glob("*/.mrl.status"):
        status.unlink()
    shutil.rmtree(expdir / ".mrl.slurm")
    shutil.rmtree(expdir / ".mrl.owners", ignore_errors=True)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="sub-experiments of the packed run (default 2000)")
    ap.add_argument("--pack", type=int, default=100, help="sub-experiments per task (default 100)")
    ap.add_argument("--submit-n", type=int, default=10000, help="sub-experiments of the submission timing")
    ap.add_argument("--pack-jobs", type=int, help="run.slurm.pack_jobs of the packed run (default: unset, 1 here)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each, alternating (default 5)")
    args = ap.parse_args()

    from tests.slurm_cluster import ensure_cluster

    ensure_cluster()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-slurm-") as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        repo = make_project(base, "packed", args.n, args.pack_jobs)
        big = make_project(base, "big", args.submit_n)
        print(f"(made {args.n} + {args.submit_n} sub-experiments in {time.perf_counter() - t:.1f} s)", flush=True)
        floor, mrl, submit = [], [], []
        for i in range(args.repeat):
            floor.append(time_floor(base, args.n, args.pack))
            mrl.append(time_mrl(repo, args.pack))
            submit.append(time_submit(big, args.pack))
            print(
                f"run {i + 1}: floor {floor[-1]:6.2f} s   mrl --pack {mrl[-1]:6.2f} s   "
                f"submit {args.submit_n}: {submit[-1]:5.2f} s",
                flush=True,
            )
    f, m, s = statistics.median(floor), statistics.median(mrl), statistics.median(submit)
    tasks = (args.n + args.pack - 1) // args.pack
    print(f"\n{args.n} sub-experiments of `{COMMAND}`, {args.pack} per task ({tasks} tasks), median of {args.repeat}:")
    print(f"  one packed array by hand, squeue every 0.1 s (floor)  {f:6.2f} s")
    print(f"  mrl run --backend slurm --pack {args.pack} --wait          {m:6.2f} s")
    print(f"  ratio mrl / floor: {m / f:.2f}x (aim: <= 1.2x)")
    print(f"submission alone, {args.submit_n} sub-experiments --pack {args.pack}: {s:.2f} s (aim: < 5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
