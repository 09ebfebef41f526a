"""Interleaved A/B of mrl checkouts: the same commands of each, in turns, on the same data,
beside a floor measured in the same rounds (a speed-regression check of a session's work).

    flock /work/notes/bench.lock python bench/bench_ab.py [--rounds 11] \
        [--parts startup,table,makebatch] NAME=CHECKOUT [NAME=CHECKOUT ...]

CHECKOUT is the PYTHONPATH root of an mrl checkout (`git archive REV | tar -x -C DIR` makes
one of a past commit); the first one runs `mrl init` and makes the data, so give the
oldest first (a newer mrl reads an older .mrl.cfg without unknown-key warnings). Each
round runs every command of every checkout once (the order reversed every other round),
so that a change in the machine's load hits them alike. Per command: median wall, median
CPU (user + system of the process and its children) and peak RSS, taken by a small shim
process (so that RSS is the command's own), and the ratio of each to the first checkout's.
On a shared machine the CPU ratio is the steadier one; a few percent either way is noise.

- startup: `mrl --help`, `mrl ls`, `mrl status` with 1,000 experiments, beside
  `python -c pass` and the plain-Python ls floor of bench_core.py;
- table: `mrl table` and `mrl analyze` of 1,000 sub-experiments with a 200-line
  metrics.jsonl each, `mrl table` and `mrl status` of 10,000 without metrics, beside
  `find EXPDIR -name .mrl.status | xargs cat`;
- makebatch: `mrl makebatch` of a 70 x 70 grid beside bench_makebatch.py's plain loop, and
  `MRL:sample = 5` of 40^5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_analyze  # noqa: E402
import bench_core  # noqa: E402
import bench_makebatch  # noqa: E402

PY = sys.executable
BASE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: bytecode
BASE_ENV.update(GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
SHIM = (
    "import os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, st, ru = os.wait4(p.pid, 0)\n"
    "print(time.perf_counter() - t, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(st))\n"
)
Sample = tuple[float, float, float]  # wall s, CPU s, peak RSS MB
# One measured command: its label, and a function of the checkout root (None: a floor) that
# prepares what it needs and returns (argv, cwd).
Case = tuple[str, Callable[[str | None], tuple[list[str], Path]]]


def env_of(root: str | None) -> dict[str, str]:
    return BASE_ENV if root is None else {**BASE_ENV, "PYTHONPATH": root}


def measure(cmd: list[str], cwd: Path, root: str | None) -> Sample:
    out = subprocess.run([PY, "-c", SHIM, *cmd], cwd=cwd, env=env_of(root), capture_output=True, text=True)
    wall, cpu, rss, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(cmd)} (in {cwd}, PYTHONPATH={root}) exited {code}")
    return float(wall), float(cpu), float(rss)


def mrl(*args: str, cwd: Path) -> tuple[list[str], Path]:
    return [PY, "-m", "metarunlog", *args], cwd


def use_checkout(root: str) -> None:
    """The helpers of the other benchmarks run `mrl init`/`new` with this checkout."""
    for mod in (bench_core, bench_analyze, bench_makebatch):
        mod.ENV.update(env_of(root))
    bench_core.MRL[:] = bench_makebatch.MRL[:] = [PY, "-m", "metarunlog"]


def startup_cases(tmp: Path) -> tuple[list[Case], list[Case]]:
    small = tmp / "small"
    bench_core.make_repo(small, 3)
    bench_core.fake_experiments(small, 1000)
    floors: list[Case] = [
        ("python -c pass", lambda _: ([PY, "-c", "pass"], small)),
        ("plain-Python ls floor", lambda _: ([PY, "-c", bench_core.LS_FLOOR], small)),
    ]
    cases: list[Case] = [(f"mrl {c}", lambda _, c=c: mrl(c, cwd=small)) for c in ("--help", "ls", "status")]
    return floors, cases


def table_cases(tmp: Path) -> tuple[list[Case], list[Case]]:
    proj = bench_analyze.make_project(tmp)
    runs = bench_analyze.make_experiment(proj, 1000, 200).name
    big = bench_analyze.make_experiment(proj, 10000, 0)
    cat = f"find {big} -name .mrl.status | xargs cat > /dev/null"
    floors: list[Case] = [("find | xargs cat (10,000)", lambda _: (["sh", "-c", cat], proj))]
    cases: list[Case] = [
        ("mrl table (1,000 x 200 lines)", lambda _: mrl("table", runs, cwd=proj)),
        ("mrl analyze (same)", lambda _: mrl("analyze", runs, cwd=proj)),
        ("mrl table (10,000)", lambda _: mrl("table", big.name, cwd=proj)),
        ("mrl status (10,000)", lambda _: mrl("status", big.name, cwd=proj)),
    ]
    return floors, cases


def makebatch_cases(tmp: Path) -> tuple[list[Case], list[Case]]:
    side = 70
    grid, sample = tmp / "grid", tmp / "sample"
    bench_makebatch.make_project(grid, side)
    bench_makebatch.make_project(sample, 1)
    (sample / "conf.yaml").write_text(bench_makebatch.SAMPLE_TEMPLATE)
    subprocess.run("git add -A && git commit -qm sample", shell=True, cwd=sample, env=bench_makebatch.ENV, check=True)
    (tmp / "template.txt").write_text(bench_makebatch.TEMPLATE)
    (tmp / "floor.py").write_text(bench_makebatch.FLOOR)

    def floor(_: str | None) -> tuple[list[str], Path]:
        out = tmp / "floor-out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        return [PY, str(tmp / "floor.py"), str(out), str(side), str(tmp / "template.txt")], tmp

    def batch(proj: Path) -> Callable[[str | None], tuple[list[str], Path]]:
        def prepare(root: str | None) -> tuple[list[str], Path]:
            last = proj / "last"
            if proj is grid and last.exists():
                shutil.rmtree(last.resolve())  # the grid's folders: disk is the cost measured, not its size
            subprocess.run(
                [PY, "-m", "metarunlog", "new", "ab"], cwd=proj, env=env_of(root), check=True, capture_output=True
            )
            return mrl("makebatch", "last", cwd=proj)

        return prepare

    floors: list[Case] = [(f"plain loop ({side}x{side})", floor)]
    cases: list[Case] = [
        (f"mrl makebatch ({side}x{side})", batch(grid)),
        ("mrl makebatch sample=5 of 40^5", batch(sample)),
    ]
    return floors, cases


PARTS = {"startup": startup_cases, "table": table_cases, "makebatch": makebatch_cases}


def run_part(name: str, tmp: Path, variants: dict[str, str], rounds: int) -> None:
    floors, cases = PARTS[name](tmp)
    results: dict[str, list[Sample]] = {}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        order = list(variants.items()) if r % 2 == 0 else list(variants.items())[::-1]
        for label, prepare in floors:
            cmd, cwd = prepare(None)
            results.setdefault(label, []).append(measure(cmd, cwd, None))
        for label, prepare in cases:
            for v, root in order:
                cmd, cwd = prepare(root)
                results.setdefault(f"{v}: {label}", []).append(measure(cmd, cwd, root))
    first = next(iter(variants))
    print(f"\n{name}: {rounds} rounds, load {min(loads):.2f}-{max(loads):.2f} (1-min average at each round)")
    print(f"  {'':44} {'wall med':>9} {'cpu med':>9} {'rss MB':>7}  vs {first} (wall / cpu)")
    for label, samples in results.items():
        wall, cpu = (statistics.median(s[i] for s in samples) for i in (0, 1))
        line = f"  {label:44} {wall:9.3f} {cpu:9.3f} {max(s[2] for s in samples):7.1f}"
        ref = results.get(f"{first}: {label.partition(': ')[2]}")
        if ref is not None and ref is not samples:
            ref_wall, ref_cpu = (statistics.median(s[i] for s in ref) for i in (0, 1))
            line += f"  {wall / ref_wall:5.2f}x {cpu / ref_cpu:5.2f}x"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--parts", default="startup,table,makebatch")
    ap.add_argument("variants", nargs="+", help="NAME=CHECKOUT (PYTHONPATH root of an mrl checkout), oldest first")
    a = ap.parse_args()
    variants = {k: str(Path(v).resolve()) for k, v in (x.split("=", 1) for x in a.variants)}
    for root in variants.values():
        subprocess.run([PY, "-m", "compileall", "-q", str(Path(root) / "metarunlog")], check=True)
    use_checkout(next(iter(variants.values())))
    for part in a.parts.split(","):
        with tempfile.TemporaryDirectory(prefix=f"mrl-ab-{part}-") as tmp:
            run_part(part, Path(tmp), variants, a.rounds)


if __name__ == "__main__":
    main()
