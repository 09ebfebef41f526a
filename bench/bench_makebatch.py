#!/usr/bin/env python3
"""`mrl makebatch` of a 10,000-point grid against a floor measured in the same run.

    python bench/bench_makebatch.py [--side 100] [--repeat 5] [--sample-only]

The floor is a plain Python loop (its own interpreter, like `mrl`) that makes the same
folders and files: per combination a folder, its `.mrl` JSON record and the config
rendered with str.format. `mrl makebatch` also starts up, reads the config and the
experiment, parses the MRL lines, checks and renders every combination with Jinja,
builds the batch in a temp folder and moves it into place. Prints medians and the ratio.
Aim (issue 3): within 2x of the floor.

Then `MRL:sample = 5` of a 40^5 grid (10^8 combinations, never built): the time and the
peak memory (max RSS) of `mrl makebatch`, beside a bare `python -c pass` in the same run.
Aim (issues 10, 16): under 0.5 s and 50 MB.
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
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}
MRL = [sys.executable, "-m", "metarunlog"]
TEMPLATE = """\
model:
  layers: 4
  width: 512
optim:
  lr: {lr}
  weight_decay: {wd}
data:
  dir: {exp}/data
seed: {sub}
"""

FLOOR = r"""
import json, os, sys
out, side = sys.argv[1], int(sys.argv[2])
template = open(sys.argv[3]).read()
lrs = [round(0.001 * (i + 1), 6) for i in range(side)]
wds = [round(0.01 * (i + 1), 6) for i in range(side)]
n = 0
for lr in lrs:
    for wd in wds:
        n += 1
        d = os.path.join(out, f"{n:03d}")
        os.mkdir(d)
        with open(os.path.join(d, ".mrl"), "w") as f:
            f.write(json.dumps({"subExpId": n, "params": {"lr": lr, "wd": wd}}, indent=2) + "\n")
        with open(os.path.join(d, "conf.yaml"), "w") as f:
            f.write(template.format(lr=lr, wd=wd, exp=out, sub=n))
"""


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)


def make_project(path: Path, side: int) -> None:
    path.mkdir()
    run(["git", "init", "-q"], path)
    (path / "train.py").write_text("print('train')\n")
    jinja = TEMPLATE.replace("{lr}", "{{ lr }}").replace("{wd}", "{{ wd }}")
    jinja = jinja.replace("{exp}", "{{ expDir }}").replace("{sub}", "{{ subExpId }}")
    lrs = [round(0.001 * (i + 1), 6) for i in range(side)]
    wds = [round(0.01 * (i + 1), 6) for i in range(side)]
    jinja += f"# MRL:grid['lr'] = {lrs!r}\n# MRL:grid['wd'] = {wds!r}\n"
    (path / "conf.yaml").write_text(jinja)
    run(MRL + ["init"], path)
    cfg = json.loads((path / ".mrl.cfg").read_text())
    cfg.update(confTemplFile="conf.yaml", copyFiles=["conf.yaml"])
    (path / ".mrl.cfg").write_text(json.dumps(cfg))
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "init"], path)


SAMPLE_TEMPLATE = (
    "x = {{ p0 }} {{ p1 }} {{ p2 }} {{ p3 }} {{ p4 }}\n"
    + "".join(f"# MRL:grid['p{a}'] = range(40)\n" for a in range(5))
    + "# MRL:sample = 5\n"
)

# Runs a command and prints its wall time and the peak RSS (kB) of the process it started.
PEAK = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def timed_peak(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak MB) of `cmd`, measured by a small parent of its own."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, *cmd], cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def bench_sample(base: Path, repeat: int) -> None:
    proj = base / "sample-proj"
    make_project(proj, 1)
    (proj / "conf.yaml").write_text(SAMPLE_TEMPLATE)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "sample template"], proj)
    mrl, bare = [], []
    for i in range(repeat):
        run(MRL + ["new", f"sample {i}"], proj)
        mrl.append(timed_peak(MRL + ["makebatch", "last"], proj))
        exp = (proj / "last").resolve()
        assert len([p for p in exp.iterdir() if p.name.isdigit()]) == 5
        bare.append(timed_peak([sys.executable, "-c", "pass"], proj))
    t, mb = (statistics.median(x) for x in zip(*mrl, strict=True))
    bt, bmb = (statistics.median(x) for x in zip(*bare, strict=True))
    print(f"sample = 5 of a 40^5 grid (10^8 combinations), median of {repeat} runs")
    print(f"  mrl makebatch        {t:7.3f} s  {mb:6.1f} MB peak  (aim: under 0.5 s and 50 MB)")
    print(f"  python -c pass       {bt:7.3f} s  {bmb:6.1f} MB peak")


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    run(cmd, cwd)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=100, help="grid is side x side (default 100: 10,000 points)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sample-only", action="store_true", help="only the sample = 5 of 40^5 measurement")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-") as tmp:
        base = Path(tmp)
        bench_sample(base, a.repeat)
        if a.sample_only:
            return 0
        proj = base / "proj"
        make_project(proj, a.side)
        floor_template = base / "template.txt"
        floor_template.write_text(TEMPLATE)
        floor_script = base / "floor.py"
        floor_script.write_text(FLOOR)
        mrl_times, floor_times = [], []
        for i in range(a.repeat):  # interleaved, so both see the same machine state
            run(MRL + ["new", f"bench {i}"], proj)
            exp = (proj / "last").resolve()
            mrl_times.append(timed(MRL + ["makebatch", "last"], proj))
            assert (exp / f"{a.side * a.side:03d}" / "conf.yaml").is_file()
            floor_dir = base / f"floor{i}"
            floor_dir.mkdir()
            floor_times.append(
                timed([sys.executable, str(floor_script), str(floor_dir), str(a.side), str(floor_template)], base)
            )
            shutil.rmtree(floor_dir)
            shutil.rmtree(exp)
        m, f = statistics.median(mrl_times), statistics.median(floor_times)
    n = a.side * a.side
    print(f"grid of {n:,} points, median of {a.repeat} runs")
    print(f"  mrl makebatch        {m:7.3f} s  ({m / n * 1e6:6.1f} us per sub-experiment)")
    print(f"  plain Python loop    {f:7.3f} s  ({f / n * 1e6:6.1f} us per sub-experiment)")
    print(f"  ratio makebatch/floor: {m / f:.2f}x (aim: within 2x)")
    pairs = zip(mrl_times, floor_times, strict=True)
    print("  runs (makebatch, floor): " + ", ".join(f"({x:.2f}, {y:.2f})" for x, y in pairs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
