#!/usr/bin/env python3
"""Slurm backend at scale (issue 15), in the same run:

1. 2,000 sub-experiments of `true` through `mrl run --backend slurm --pack 100 --wait`
   against the same work submitted by hand as one packed array (the floor): 20 tasks,
   each running `/bin/sh -c true` 100 times, watched with `squeue` every 0.1 s until no
   task is left. Aim: within 1.2x. Floor and mrl alternate, run by run.
2. The submission alone for 10,000 sub-experiments (`mrl run --backend slurm --pack 100`,
   which returns once submitted; the arrays are held back with `--begin` and cancelled
   after). Aim: under 5 s. `--submit-n 0` leaves it out.

    python bench/bench_slurm.py [--n 2000] [--pack 100] [--cpus-per-task 1] [--pack-jobs N]
                                [--submit-n 10000] [--repeat 5] [--no-bytecode-cache]

Like with like: both arrays ask for the same `--cpus-per-task` (the floor's script, mrl's
`run.slurm.cpus_per_task`), so Slurm runs as many of their tasks at once; how many did
(read from slurmctld's log, when this machine has it) is printed for both. mrl's packed
task runs `--pack-jobs` sub-experiments at once (default: one per CPU of the task, 1).

mrl's extra work per sub-experiment is its own record, lock, `run.log` and rendered
command; per task, a Python process that loads the experiment. An installed mrl has its
bytecode compiled; where the environment forbids writing it (PYTHONDONTWRITEBYTECODE, as
on the test machines) each task would compile every module again (~35 ms of CPU a task),
so the benchmark caches it in a temporary PYTHONPYCACHEPREFIX (`--no-bytecode-cache`: not).

Needs a Slurm cluster (starts the local one with scripts/slurm-up.sh when run as root).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
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


def make_project(base: Path, name: str, n: int, cpus: int = 1, pack_jobs: int | None = None) -> Path:
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
    cfg["run"]["slurm"] = {"cpus_per_task": cpus, **({"pack_jobs": pack_jobs} if pack_jobs else {})}
    (repo / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "mrl"], repo)
    sh(MRL + ["new", "bench"], repo)
    sh(MRL + ["makebatch"], repo)
    return repo


def time_mrl(repo: Path, pack: int) -> tuple[float, str]:
    """`mrl run --wait` of the whole experiment; (seconds, its first array's job id)."""
    t = time.perf_counter()
    sh(MRL + ["run", "--backend", "slurm", "--pack", str(pack), "--wait", "--force"], repo)
    took = time.perf_counter() - t
    log = repo / "output" / "0001" / ".mrl.slurm" / "submissions.jsonl"
    return took, json.loads(log.read_text().splitlines()[-1])["jobId"]


def time_floor(work: Path, n: int, pack: int, cpus: int) -> tuple[float, str]:
    """The same work as one packed array by hand: each task runs `sh -c true` `pack` times."""
    tasks = (n + pack - 1) // pack
    script = work / "floor.sh"
    script.write_text(
        f"#!/bin/bash\n#SBATCH --output={work}/floor-%A_%a.out\n#SBATCH --cpus-per-task={cpus}\n"
        f"for i in $(seq {pack}); do /bin/sh -c {COMMAND}; done\n"
    )
    t = time.perf_counter()
    job = sh(["sbatch", "--parsable", f"--array=0-{tasks - 1}", str(script)], work).strip().split(";")[0]
    while subprocess.run(
        ["squeue", "-h", "-j", job, "-t", "PD,R,CG,CF,S", "-o", "%i"], capture_output=True, text=True
    ).stdout.strip():
        time.sleep(0.1)
    return time.perf_counter() - t, job


def controller_log() -> Path | None:
    """slurmctld's log file, when this machine can read it (the local test cluster)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    m = re.search(r"^SlurmctldLogFile\s*=\s*(\S+)", out, re.M)
    path = Path(m.group(1)) if m else None
    return path if path is not None and path.is_file() else None


_EVENT = re.compile(r"^\[([^\]]+)\] (sched: Allocate|_job_complete:) JobId=(\d+)_(\d+)\(\d+\) (\S+)")


def at_once(log: Path | None, job: str) -> str:
    """How many tasks of array `job` ran at once at most, and the median task (start to
    end, as slurmctld logged them), e.g. "4 at once, 0.21 s a task"; "" when unknown."""
    if log is None:
        return ""
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = _EVENT.match(line)
        if not m or m.group(3) != job or (m.group(2) == "_job_complete:" and m.group(5) != "done"):
            continue
        t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
        (start if m.group(2) == "sched: Allocate" else end)[m.group(4)] = t
    spans = [(start[k], end[k]) for k in start if k in end]
    if not spans:
        return ""
    most = max(sum(1 for a, b in spans if a <= s < b) for s, _ in spans)
    return f"{most} at once, {statistics.median(b - a for a, b in spans):.2f} s a task"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


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
    ap.add_argument("--cpus-per-task", type=int, default=1, help="--cpus-per-task of both arrays (default 1)")
    ap.add_argument("--pack-jobs", type=int, help="run.slurm.pack_jobs of the packed run (default: one per CPU)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each, alternating (default 5)")
    ap.add_argument("--no-bytecode-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is")
    args = ap.parse_args()

    from tests.slurm_cluster import ensure_cluster

    ensure_cluster()
    log = controller_log()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-slurm-") as tmp:
        base = Path(tmp)
        if ENV.get("PYTHONDONTWRITEBYTECODE") and not args.no_bytecode_cache:
            del ENV["PYTHONDONTWRITEBYTECODE"]  # as an installed mrl: compiled once, not per task
            ENV["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        t = time.perf_counter()
        repo = make_project(base, "packed", args.n, args.cpus_per_task, args.pack_jobs)
        big = make_project(base, "big", args.submit_n) if args.submit_n else None
        print(f"(made {args.n} + {args.submit_n} sub-experiments in {time.perf_counter() - t:.1f} s)", flush=True)
        time_mrl(repo, args.pack)  # a first run: bytecode compiled, records of a finished run (as in each repeat)
        floor, mrl, submit = [], [], []
        for i in range(args.repeat):
            before = load()
            took, job = time_floor(base, args.n, args.pack, args.cpus_per_task)
            floor.append(took)
            f_once = at_once(log, job)
            took, job = time_mrl(repo, args.pack)
            mrl.append(took)
            m_once = at_once(log, job)
            if big is not None:
                submit.append(time_submit(big, args.pack))
            sub = f"   submit {args.submit_n}: {submit[-1]:5.2f} s" if submit else ""
            print(
                f"run {i + 1} ({before}): floor {floor[-1]:6.2f} s ({f_once or '?'})   "
                f"mrl --pack {mrl[-1]:6.2f} s ({m_once or '?'})   ratio {mrl[-1] / floor[-1]:.2f}x{sub}",
                flush=True,
            )
    report(args, floor, mrl, submit)
    return 0


def report(args: argparse.Namespace, floor: list[float], mrl: list[float], submit: list[float]) -> None:
    f, m = statistics.median(floor), statistics.median(mrl)
    tasks = (args.n + args.pack - 1) // args.pack
    pyc = "no bytecode cache" if args.no_bytecode_cache else "bytecode cached"
    print(
        f"\n{args.n} sub-experiments of `{COMMAND}`, {args.pack} per task ({tasks} tasks, "
        f"--cpus-per-task={args.cpus_per_task} both), {args.repeat} runs alternating, {pyc}, {load()}:"
    )
    print(f"  one packed array by hand, squeue every 0.1 s (floor)  median {f:6.2f} s  best {min(floor):6.2f} s")
    print(f"  mrl run --backend slurm --pack {args.pack} --wait          median {m:6.2f} s  best {min(mrl):6.2f} s")
    ratios = [b / a for a, b in zip(floor, mrl, strict=True)]  # each run's pair ran back to back
    print(
        f"  ratio mrl / floor: {m / f:.2f}x of the medians; per run: median {statistics.median(ratios):.2f}x, "
        f"best {min(ratios):.2f}x (aim: <= 1.2x)"
    )
    if submit:
        s = statistics.median(submit)
        print(f"submission alone, {args.submit_n} sub-experiments --pack {args.pack}: {s:.2f} s (aim: < 5 s)")


if __name__ == "__main__":
    raise SystemExit(main())
