"""Benchmark: `mrl analyze` against `mrl table` (the cost of reading the data), the same
with 10 repeats per combination (means and bands), `mrl analyze --index` over 200
experiments, and `mrl table` on 10,000 sub-experiments against
`find EXPDIR -name .mrl.status | xargs cat`.

    python bench/bench_analyze.py [--subs 1000] [--lines 200] [--big 10000] [--repeat 3]
                                  [--exps 200] [--exp-subs 10]

Everything is measured in the same run on the same freshly written experiments; the
figures are best-of-N wall times of real `mrl` subprocesses. Aims: analyze within 3x of
table, the report under 10 MB (with and without repeats), the index of 200 experiments
under 2 s, table on 10,000 sub-experiments under a second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
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


def bench_params(i: int, repeats: int | None) -> dict[str, object]:
    """Sub-experiment i's params: a seed each (the default), or a 10 x 10 grid of lr x wd
    with `repeats` runs of each combination (MRL:repeat's `repeat` param)."""
    if repeats is None:
        return {"lr": [0.1, 0.03, 0.01, 0.003][i % 4], "wd": [0.0, 1e-4, 1e-3][i % 3], "seed": i, "epochs": 10}
    combo, rep = divmod(i - 1, repeats)
    return {"lr": 10 ** -(1 + (combo % 10) / 3), "wd": (combo // 10 % 10) * 1e-4, "repeat": rep + 1, "epochs": 10}


def make_experiment(proj: Path, n_subs: int, n_lines: int, repeats: int | None = None) -> Path:
    """`mrl new`, then n_subs finished sub-experiments written as docs/design.md pins them."""
    expdir = Path(mrl("new", "-cp", "no", f"bench {n_subs}x{n_lines}", cwd=proj).stdout.strip().splitlines()[-1])
    host = socket.gethostname()
    for i in range(1, n_subs + 1):
        d = expdir / f"{i:03d}"
        d.mkdir()
        params = bench_params(i, repeats)
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
                        "loss": 1.0 / (s + 1) + 0.01 * math.sin(s + i) + float(params["lr"]),  # type: ignore[arg-type]
                        "acc": 1 - 1.0 / (s + 2),
                        "lr": params["lr"],
                    }
                )
                for s in range(n_lines)
            )
            (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        (d / "run.log").write_text(f"==== mrl attempt 1 step 1/1 on {host}\n" + "epoch done\n" * 30)
    rec = json.loads((expdir / ".mrl").read_text())
    rec["batch"] = {"n": n_subs, "single": False, "templates": [], "repeat": repeats}
    (expdir / ".mrl").write_text(json.dumps(rec))
    return expdir


def copies(proj: Path, expdir: Path, n: int) -> None:
    """n - 1 more experiments like `expdir` (copied folders, records renumbered): an index to list."""
    outdir = expdir.parent
    for k in range(expdir_id(expdir) + 1, expdir_id(expdir) + n):
        dest = outdir / f"{k:04d}"
        shutil.copytree(expdir, dest, ignore=shutil.ignore_patterns("analysis", "code"))
        rec = json.loads((dest / ".mrl").read_text())
        rec["expId"], rec["description"] = k, f"copy {k} of {expdir.name}"
        (dest / ".mrl").write_text(json.dumps(rec))


def expdir_id(expdir: Path) -> int:
    return int(expdir.name)


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
    ap.add_argument("--exps", type=int, default=200)
    ap.add_argument("--exp-subs", type=int, default=10)
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

        rep = make_experiment(proj, a.subs, a.lines, repeats=10)
        t_table = best_of(a.repeat, lambda: mrl("table", rep.name, cwd=proj))
        t_analyze = best_of(a.repeat, lambda: mrl("analyze", rep.name, cwd=proj))
        size = (rep / "analysis" / "index.html").stat().st_size
        print(f"{a.subs} sub-experiments = {a.subs // 10} combinations x 10 repeats, {a.lines}-line metrics.jsonl:")
        print(f"  mrl table    {t_table:6.2f} s")
        print(f"  mrl analyze  {t_analyze:6.2f} s   = {t_analyze / t_table:.1f}x table (aim: <= 3x)")
        print(f"  report size  {size / 1e6:6.2f} MB (aim: < 10 MB)")

        with tempfile.TemporaryDirectory() as tmp2:
            many = make_project(Path(tmp2))
            first = make_experiment(many, a.exp_subs, 50)
            copies(many, first, a.exps)
            cache = many / "output" / ".mrl.index.json"

            def cold() -> None:
                cache.unlink(missing_ok=True)
                mrl("analyze", "--index", cwd=many)

            t_ls = best_of(a.repeat, lambda: mrl("ls", cwd=many))
            try:
                t_cold = best_of(a.repeat, cold)
                mrl("analyze", "--index", cwd=many)
                t_warm = best_of(a.repeat, lambda: mrl("analyze", "--index", cwd=many))
            except subprocess.CalledProcessError:  # an mrl without --index (a "before" figure)
                t_cold = t_warm = float("nan")
        print(f"mrl analyze --index, {a.exps} experiments x {a.exp_subs} sub-experiments x 50-line metrics.jsonl:")
        print(f"  mrl ls                        {t_ls:6.2f} s")
        print(f"  --index, nothing cached       {t_cold:6.2f} s (aim: < 2 s)")
        print(f"  --index, cards cached         {t_warm:6.2f} s (aim: < 2 s)")

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
