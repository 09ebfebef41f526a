#!/usr/bin/env python3
"""`mrl cancel` of a whole experiment of 10,000 sub-experiments, local and Slurm, with the
lines it prints; against a floor measured in the same run.

- Slurm: 10,000 sub-experiments submitted `--pack 100` and held back an hour by `--begin`
  (one array of 100 tasks, nothing runs), then `mrl cancel`. Floor: `scancel` of the same
  array, submitted the same way (what any cancel has to ask of Slurm); mrl also records
  every sub-experiment `cancelled`.
- local: `mrl run -j 2` of 10,000 `sleep 600`, two running, then `mrl cancel` (the runner
  is asked: it records the 9,998 queued ones cancelled, stops the two running). Floor: the
  same cancel of a run of 2 (what is independent of the size).

    python bench/bench_cancel.py [--n 10000] [--backend slurm|local|both] [--repeat 3]

Run it under the shared lock (`flock /work/notes/bench.lock python bench/bench_cancel.py`).
Needs a Slurm cluster for the Slurm part (scripts/slurm-up.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_slurm import ENV, MRL, load, make_project, sh  # noqa: E402


def _reset(expdir: Path) -> None:
    for status in expdir.glob("*/.mrl.status"):
        status.unlink()
    for name in (".mrl.slurm", ".mrl.owners"):
        shutil.rmtree(expdir / name, ignore_errors=True)


CPU: list[float] = []  # CPU seconds (user + system) of each `mrl cancel`, in order


def _cancel(repo: Path) -> tuple[float, int, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(MRL + ["cancel"], cwd=repo, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took, proc.stdout.count("\n"), proc.returncode


def _cpu(k: int) -> str:
    """The median CPU of the last `k` cancels."""
    return f"CPU {statistics.median(CPU[-k:]):.2f} s"


def slurm_round(repo: Path) -> tuple[float, float, int, int]:
    expdir = repo / "output" / "0001"
    sh(MRL + ["run", "--backend", "slurm", "--pack", "100", "--slurm-opt=--begin=now+3600"], repo)
    took, lines, code = _cancel(repo)
    _reset(expdir)
    # the floor: the same array, cancelled by hand
    sh(MRL + ["run", "--backend", "slurm", "--pack", "100", "--slurm-opt=--begin=now+3600"], repo)
    jobs = [
        json.loads(line)["jobId"] for line in (expdir / ".mrl.slurm" / "submissions.jsonl").read_text().splitlines()
    ]
    t = time.perf_counter()
    subprocess.run(["scancel", *jobs], check=True, capture_output=True)
    floor = time.perf_counter() - t
    _reset(expdir)
    return took, floor, lines, code


def _running(expdir: Path, n: int) -> bool:
    found = 0
    for status in expdir.glob("*/.mrl.status"):
        try:
            rec = json.loads(status.read_text())
        except ValueError:
            continue
        found += rec.get("state") == "running" and bool(rec.get("pid"))
    return found >= n


def local_cancel(repo: Path) -> tuple[float, int, int]:
    expdir = repo / "output" / "0001"
    runner = subprocess.Popen(
        MRL + ["run", "--backend", "local", "-j", "2"],
        cwd=repo,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _running(expdir, 2):
            if time.monotonic() > deadline or runner.poll() is not None:
                raise SystemExit("the local run did not start")
            time.sleep(0.1)
        got = _cancel(repo)
        runner.wait(timeout=60)
        return got
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            runner.wait(timeout=60)
        _reset(expdir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--backend", choices=["slurm", "local", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-cancel-") as tmp:
        base = Path(tmp)
        if a.backend in ("slurm", "both"):
            repo = make_project(base, "slurm", a.n)
            runs = [slurm_round(repo) for _ in range(a.repeat)]
            mrl, floor = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            print(
                f"slurm: mrl cancel of {a.n}: median {mrl:.2f} s ({', '.join(f'{r[0]:.2f}' for r in runs)}), "
                f"{_cpu(a.repeat)}, {runs[-1][2]} lines, exit {runs[-1][3]}; scancel of the same array {floor:.2f} s; "
                f"{load()}"
            )
        if a.backend in ("local", "both"):
            for n in (a.n, 2):
                repo = make_project(base, f"local{n}", n)
                cfg = json.loads((repo / ".mrl.cfg").read_text())
                cfg["run"]["command"] = "sleep 600"
                (repo / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
                sh(["git", "commit", "-qam", "sleep"], repo)
                shutil.rmtree(repo / "output")
                (repo / "output").mkdir()
                sh(MRL + ["new", "bench"], repo)
                sh(MRL + ["makebatch"], repo)
                runs3 = [local_cancel(repo) for _ in range(a.repeat)]
                took = statistics.median(r[0] for r in runs3)
                print(
                    f"local: mrl cancel of a run of {n} (2 running): median {took:.2f} s "
                    f"({', '.join(f'{r[0]:.2f}' for r in runs3)}), {_cpu(a.repeat)}, {runs3[-1][1]} lines, "
                    f"exit {runs3[-1][2]}; {load()}"
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
