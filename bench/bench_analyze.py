"""Benchmark: `mrl analyze` against `mrl table` (the cost of reading the data), and
`mrl table` on 10,000 sub-experiments against `find EXPDIR -name .mrl.status | xargs cat`.

    python bench/bench_analyze.py [--subs 1000] [--lines 200] [--big 10000] [--repeat 3]

Everything is measured in the same run on the same freshly written experiments; the
figures are best-of-N wall times of real `mrl` subprocesses. Aims: analyze within 3x of
table, the report under 10 MB, table on 10,000 sub-experiments under a second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO),
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def sh(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=True)


def mrl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return sh(sys.executable, "-m", "metarunlog", *args, cwd=cwd)


def make_project(root: Path) -> Path:
    proj = root / "proj"
    proj.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=proj)
    (proj / "train.py").write_text("print('train')\n")
    sh("git", "add", "-A", cwd=proj)
    sh("git", "commit", "-q", "-m", "init", cwd=proj)
    mrl("init", cwd=proj)
    sh("git", "add", "-A", cwd=proj)
    sh("git", "commit", "-q", "-m", "mrl init", cwd=proj)
    return proj


def make_experiment(proj: Path, n_subs: int, n_lines: int) -> Path:
    """`mrl new`, then n_subs finished sub-experiments written as docs/design.md pins them."""
    expdir = Path(mrl("new", "-cp", "no", f"bench {n_subs}x{n_lines}", cwd=proj).stdout.strip().splitlines()[-1])
    host = socket.gethostname()
    for i in range(1, n_subs + 1):
        d = expdir / f"{i:03d}"
        d.mkdir()
        params = {"lr": [0.1, 0.03, 0.01, 0.003][i % 4], "wd": [0.0, 1e-4, 1e-3][i % 3], "seed": i, "epochs": 10}
        (d / ".mrl").write_text(json.dumps({"subExpId": i, "params": params}))
        status = {
            "state": "done",
            "exitCode": 0,
            "attempts": 1,
            "stepsDone": 1,
            "steps": 1,
            "start": "2024-01-01T10:00:00+00:00",
            "end": "2024-01-01T10:01:00+00:00",
            "duration": 60.0 + i % 7,
            "host": host,
            "pid": None,
            "runnerPid": None,
            "resource": None,
            "backend": "local",
            "jobId": None,
            "node": None,
            "command": ["python train.py"],
        }
        (d / ".mrl.status").write_text(json.dumps(status))
        if n_lines:
            lines = (
                json.dumps(
                    {
                        "step": s,
                        "loss": 1.0 / (s + 1) + 0.01 * math.sin(s + i),
                        "acc": 1 - 1.0 / (s + 2),
                        "lr": params["lr"],
                    }
                )
                for s in range(n_lines)
            )
            (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        (d / "run.log").write_text(f"==== mrl attempt 1 step 1/1 on {host}\n" + "epoch done\n" * 30)
    rec = json.loads((expdir / ".mrl").read_text())
    rec["batch"] = {"n": n_subs, "single": False, "templates": []}
    (expdir / ".mrl").write_text(json.dumps(rec))
    return expdir


def best_of(n: int, fn: object) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proj = make_project(Path(tmp))
        exp = make_experiment(proj, a.subs, a.lines)
        name = exp.name
        t_table = best_of(a.repeat, lambda: mrl("table", name, cwd=proj))
        t_analyze = best_of(a.repeat, lambda: mrl("analyze", name, cwd=proj))
        size = (exp / "analysis" / "index.html").stat().st_size
        print(f"{a.subs} sub-experiments x {a.lines}-line metrics.jsonl:")
        print(f"  mrl table    {t_table:6.2f} s")
        print(f"  mrl analyze  {t_analyze:6.2f} s   = {t_analyze / t_table:.1f}x table (aim: <= 3x)")
        print(f"  report size  {size / 1e6:6.2f} MB (aim: < 10 MB)")

        big = make_experiment(proj, a.big, 0)
        t_floor = best_of(
            a.repeat,
            lambda: subprocess.run(f"find {big} -name .mrl.status | xargs cat > /dev/null", shell=True, check=True),
        )
        t_big = best_of(a.repeat, lambda: mrl("table", big.name, cwd=proj))
        t_csv = best_of(a.repeat, lambda: mrl("table", big.name, "--csv", cwd=proj))
        print(f"{a.big} sub-experiments (no metrics):")
        print(f"  find | xargs cat (floor)  {t_floor:6.2f} s")
        print(f"  mrl table                 {t_big:6.2f} s   = {t_big / t_floor:.1f}x floor (aim: < 1 s)")
        print(f"  mrl table --csv           {t_csv:6.2f} s   = {t_csv / t_floor:.1f}x floor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
