"""Benchmark: reading metrics with bounded memory, and `mrl table --all` across experiments.

    python bench/bench_metrics.py [--mb 200] [--exps 100] [--subs 100] [--lines 20] [--repeat 3]

1. One sub-experiment whose `metrics.jsonl` is `--mb` MB (about 9 million values): wall time
   and peak memory (max RSS of the process) of `mrl table` (`--summary last`, the default,
   and `--summary best`) against a plain Python loop that parses the same file line by line
   (`for line in f: json.loads(line)`), measured in the same run. Aims: peak under 150 MB,
   wall time within 1.5x of the loop.
2. One sub-experiment whose `metrics.csv` is `--csv-mb` MB (`step,epoch,loss,val_loss,acc`,
   as the csv module writes it; 90 MB is about 2.3 million rows): `mrl table` (last, best)
   against a plain loop of the csv module that converts every cell with float() (the
   floor: what reading a CSV's numbers at least costs in Python). No aim in the issue;
   reported as a ratio. `--csv-mb 0` skips it.
3. `mrl table --all` over `--exps` experiments of `--subs` finished sub-experiments, each
   with a `--lines`-line metrics.jsonl. Aim: under 1.5 s. The floor is `cat` of every
   `.mrl.status` and `metrics.jsonl` (what any reader must at least read).
4. Hostile files of `--hostile-mb` MB (300: the 300 MB string that made `mrl table` take
   4.4 GB and 68 s): a metrics.json holding one string that long, a metrics.jsonl and a
   metrics.csv with one line that long between normal ones. `mrl table` against `cat` of
   the file (the floor: reading it once); aim: peak under 150 MB (the readers' caps: a
   .json over 64 MiB is not parsed, a line over 1 MiB is read past). `--hostile-mb 0`
   skips it.

Every figure is the best of `--repeat` runs of a real subprocess.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analyze import ENV, make_experiment, make_project  # noqa: E402

FLOOR = "import json, sys\nwith open(sys.argv[1]) as f:\n    for line in f:\n        json.loads(line)\n"
CSV_FLOOR = (
    "import csv, sys\nwith open(sys.argv[1], newline='') as f:\n    rows = csv.reader(f)\n    next(rows)\n"
    "    for row in rows:\n        [float(c) for c in row]\n"
)


# Runs a command and prints its wall time and peak RSS. A fresh small process does the fork,
# so that the child's max RSS does not count the pages it shared with this (larger) script.
SHIM = (
    "import os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(time.perf_counter() - t, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))\n"
)


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    out = subprocess.run([sys.executable, "-c", SHIM, *cmd], cwd=cwd, env=ENV, capture_output=True, text=True)
    wall, rss, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr}")
    return float(wall), float(rss)  # Linux: ru_maxrss is in kilobytes


def best(n: int, cmd: list[str], cwd: Path) -> tuple[float, float]:
    runs = [run_measured(cmd, cwd) for _ in range(n)]
    return min(w for w, _ in runs), max(m for _, m in runs)


def write_big_jsonl(path: Path, mb: int) -> int:
    size, i, buf = 0, 0, []
    with path.open("w") as f:
        while size < mb * 1_000_000:
            row = {"step": i, "loss": 1 / (i + 1) + 0.01 * math.sin(i), "acc": 1 - 1 / (i + 2), "lr": 1e-3}
            line = json.dumps({**row, "time": i / 20})
            buf.append(line + "\n")
            size += len(line) + 1
            i += 1
            if len(buf) >= 100_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    return i


def one_big(proj: Path, mb: int, repeat: int) -> None:
    _one_big_file(proj, "metrics.jsonl", write_big_jsonl, mb, repeat, FLOOR, "plain loop json.loads per line",
                  " (aims: <= 1.5x, < 150 MB)")  # fmt: skip


def _one_big_file(
    proj: Path, name: str, write: Any, mb: int, repeat: int, floor: str, floor_label: str, aims: str = ""
) -> None:
    """`mrl table` (last, best) on one sub-experiment whose `name` is `mb` MB, against `floor`."""
    exp = make_experiment(proj, 1, 0)
    rows = write(exp / "001" / name, mb)
    (proj / "floor.py").write_text(floor)
    t_floor, m_floor = best(repeat, [sys.executable, str(proj / "floor.py"), str(exp / "001" / name)], proj)
    print(f"`mrl table` on one sub-experiment with a {mb} MB {name} ({rows:,} lines):")
    print(f"  {floor_label + ' (floor)':39} {t_floor:6.2f} s  peak {m_floor:6.0f} MB")
    for summary in ("last", "best"):
        cmd = [sys.executable, "-m", "metarunlog", "table", exp.name, "--summary", summary]
        t, m = best(repeat, cmd, proj)
        print(
            f"  mrl table --summary {summary:4}                 {t:6.2f} s  peak {m:6.0f} MB"
            f"   = {t / t_floor:.2f}x floor{aims}"
        )


def write_big_csv(path: Path, mb: int) -> int:
    import csv
    import random

    rnd = random.Random(1)
    i = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "loss", "val_loss", "acc"])
        while f.tell() < mb * 1_000_000:
            w.writerows(
                [k, k // 1000, round(rnd.random(), 6), round(2 * rnd.random(), 6), round(rnd.random(), 6)]
                for k in range(i, i + 100_000)
            )
            i += 100_000
    return i


def one_big_csv(proj: Path, mb: int, repeat: int) -> None:
    _one_big_file(proj, "metrics.csv", write_big_csv, mb, repeat, CSV_FLOOR, "csv.reader + float() per cell")


def many(proj: Path, n_exps: int, n_subs: int, n_lines: int, repeat: int) -> None:
    first = make_experiment(proj, n_subs, n_lines)
    fmt_width = len(first.name)
    for i in range(2, n_exps + 1):
        dest = first.parent / f"{i:0{fmt_width}d}"
        shutil.copytree(first, dest, symlinks=True, ignore=shutil.ignore_patterns("code"))
        rec = json.loads((dest / ".mrl").read_text())
        rec["expId"] = i
        (dest / ".mrl").write_text(json.dumps(rec))
    cat = f"find {first.parent} \\( -name .mrl.status -o -name metrics.jsonl \\) -print0 | xargs -0 cat > /dev/null"
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cat, shell=True, check=True)
        times.append(time.perf_counter() - t)
    t_floor = min(times)
    t_all, m_all = best(repeat, [sys.executable, "-m", "metarunlog", "table", "--all"], proj)
    t_best, _ = best(repeat, [sys.executable, "-m", "metarunlog", "table", "--all", "--summary", "best"], proj)
    t_agg, _ = best(repeat, [sys.executable, "-m", "metarunlog", "table", "--all", "--aggregate"], proj)
    print(f"`mrl table --all`: {n_exps} experiments x {n_subs} sub-experiments, {n_lines}-line metrics.jsonl each:")
    print(f"  find | xargs cat (floor)       {t_floor:6.2f} s")
    print(f"  mrl table --all                {t_all:6.2f} s  peak {m_all:4.0f} MB  (aim: < 1.5 s)")
    print(f"  mrl table --all --summary best {t_best:6.2f} s")
    print(f"  mrl table --all --aggregate    {t_agg:6.2f} s")


HOSTILE = {  # file: (before the long value, after it)
    "metrics.json": ('{"acc": 0.5, "log": "', '"}'),
    "metrics.jsonl": ('{"step": 1, "loss": 0.5}\n{"step": 2, "dump": "', '"}\n{"step": 3, "loss": 0.25}\n'),
    "metrics.csv": ("step,loss\n1,0.5\n", "\n3,0.25\n"),
}


def hostile(proj: Path, mb: int, repeat: int) -> None:
    exp = make_experiment(proj, 1, 0)
    print(f"`mrl table` on one sub-experiment with a hostile {mb} MB file:")
    block = "x" * 1_000_000
    for name, (head, tail) in HOSTILE.items():
        path = exp / "001" / name
        with path.open("w") as f:
            f.write(head)
            for _ in range(mb):
                f.write(block)
            f.write(tail)
        t_floor, _ = best(repeat, ["cat", str(path)], proj)
        t, m = best(repeat, [sys.executable, "-m", "metarunlog", "table", exp.name], proj)
        print(f"  {name:14} cat (floor) {t_floor:6.2f} s   mrl table {t:6.2f} s  peak {m:6.0f} MB  (aim: < 150 MB)")
        path.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--csv-mb", type=int, default=90)
    ap.add_argument("--only-csv", action="store_true", help="only the CSV part (2.)")
    ap.add_argument("--exps", type=int, default=100)
    ap.add_argument("--subs", type=int, default=100)
    ap.add_argument("--lines", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hostile-mb", type=int, default=300)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proj = make_project(Path(tmp))
        parts = [] if a.only_csv else [lambda: one_big(proj, a.mb, a.repeat)]
        parts += [lambda: one_big_csv(proj, a.csv_mb, a.repeat)] if a.csv_mb else []
        parts += [] if a.only_csv else [lambda: many(proj, a.exps, a.subs, a.lines, a.repeat)]
        parts += [lambda: hostile(proj, a.hostile_mb, a.repeat)] if a.hostile_mb and not a.only_csv else []
        for k, part in enumerate(parts):
            if k:
                shutil.rmtree(proj / "output")
                (proj / "output").mkdir()
            part()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
