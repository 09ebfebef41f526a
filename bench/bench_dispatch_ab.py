"""Interleaved A/B rounds of `mrl run -j 2` on N `true` jobs: xargs, a syscall-only floor,
and one or more mrl checkouts, each round on a fresh experiment, in the same moments.

    flock /work/notes/bench.lock python bench/bench_dispatch_ab.py [--rounds 7] [--n 500] \
        [NAME=CHECKOUT ...]      (default: this checkout as "mrl")

Prints, per round, the load and each variant's wall / children CPU, then best and median
of both, and the ratio of each best wall to the best xargs. The floor is what `mrl run`
writes per job done by two Python threads with nothing else: the run lock, run.log with a
header, the `running` record (temp file + rename) after the spawn, the final record
(temp file + rename), and one syncfs per 0.5 s (mrl's group commit). The one-thread
floor does the same writes from one thread driving both slots (a pidfd per step in one
selector), as mrl's pool does: what a single-threaded Python runner pays at least, before
any of its own logic.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: bytecode
ENV.update(GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@l", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@l")
MRL = [sys.executable, "-m", "metarunlog"]

# What a job writes, as mrl does it, with no mrl logic: the run lock, run.log with a
# header, the `running` record after the spawn, the final record, a sync per 0.5 s.
JOB_WRITES = r"""
import fcntl, itertools, os, sys, time
env = dict(os.environ); seq = itertools.count(); last = [time.monotonic()]
def record(d, text):
    tmp = f"{d}/..mrl.status.{next(seq)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    os.write(fd, text); os.close(fd); os.replace(tmp, f"{d}/.mrl.status")
def start(d):
    lk = os.open(f"{d}/.mrl.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
    log = os.open(f"{d}/run.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    os.write(log, b"==== mrl attempt 1 step 1/1: true\n")
    fa = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, log, 1),
          (os.POSIX_SPAWN_DUP2, log, 2)]
    pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", "true"], env, file_actions=fa, setsid=True)
    record(d, b'{"state": "running"}' * 20)
    return d, lk, log, pid
def end(d, lk, log, pid):
    os.waitpid(pid, 0)
    record(d, b'{"state": "done"}' * 20)
    os.close(log); os.close(lk)
    if time.monotonic() - last[0] > 0.5:
        last[0] = time.monotonic(); os.sync()
"""

# Two threads, each doing one job after the other.
FLOOR = (
    JOB_WRITES
    + r"""
import threading
it = iter(sys.argv[1:]); lock = threading.Lock()
def worker():
    while True:
        with lock:
            d = next(it, None)
        if d is None:
            return
        end(*start(d))
ts = [threading.Thread(target=worker) for _ in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
os.sync()
"""
)

# One thread driving both slots by pidfds, as mrl's pool does.
FLOOR_ONE_THREAD = (
    JOB_WRITES
    + r"""
import selectors
dirs = iter(sys.argv[1:]); sel = selectors.DefaultSelector(); live = 0
def fill():
    global live
    while live < 2:
        d = next(dirs, None)
        if d is None:
            return
        job = start(d); sel.register(os.pidfd_open(job[3]), selectors.EVENT_READ, job); live += 1
fill()
while live:
    for key, _ in sel.select():
        sel.unregister(key.fd); os.close(key.fd); live -= 1; end(*key.data)
    fill()
os.sync()
"""
)


def sh(cmd: list[str] | str, cwd: Path, root: Path = ROOT) -> None:
    env = {**ENV, "PYTHONPATH": str(root)}
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, shell=isinstance(cmd, str))


def timed(cmd: list[str] | str, cwd: Path, root: Path = ROOT) -> tuple[float, float]:
    env = {**ENV, "PYTHONPATH": str(root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        check=True,
        shell=isinstance(cmd, str),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_project(root: Path, n: int) -> Path:
    proj = root / "proj"
    proj.mkdir()
    sh(["git", "init", "-q"], proj)
    values = ", ".join(map(str, range(n)))
    (proj / "conf.txt").write_text("i = {{i}}\n# MRL:grid['i'] = [" + values + "]\n")
    sh([*MRL, "init"], proj)
    cfg = json.loads((proj / ".mrl.cfg").read_text())
    cfg.update(confTemplFile="conf.txt", copyFiles=["conf.txt"])
    cfg["run"] = {**cfg.get("run", {}), "command": "true"}
    (proj / ".mrl.cfg").write_text(json.dumps(cfg))
    sh("git add -A && git commit -qm bench", proj)
    return proj


def floor_dirs(root: Path, n: int, r: int, name: str = "floor") -> list[str]:
    base = root / f"{name}{r}"
    dirs = []
    for i in range(n):
        d = base / f"{i + 1:03d}"
        d.mkdir(parents=True)
        (d / ".mrl").write_text("{}")
        dirs.append(str(d))
    return dirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--dir", help="where the experiments go (default: the system's temp dir; /dev/shm: no disk)")
    ap.add_argument("variants", nargs="*", help="NAME=CHECKOUT (PYTHONPATH root of an mrl checkout)")
    args = ap.parse_args()
    variants = {k: Path(v) for k, v in (a.split("=", 1) for a in args.variants)} or {"mrl": ROOT}
    results: dict[str, list[tuple[float, float]]] = {
        "xargs -P 2": [],
        "floor": [],
        "floor 1 thread": [],
        **{k: [] for k in variants},
    }
    with tempfile.TemporaryDirectory(prefix="mrl-ab-", dir=args.dir) as tmp:
        root = Path(tmp)
        proj = make_project(root, args.n)
        for r in range(args.rounds):
            results["xargs -P 2"].append(timed(f"seq {args.n} | xargs -P 2 -I{{}} true", root))
            dirs = floor_dirs(root, args.n, r)
            results["floor"].append(timed([sys.executable, "-c", FLOOR, *dirs], root))
            dirs = floor_dirs(root, args.n, r, "floor1t")
            results["floor 1 thread"].append(timed([sys.executable, "-c", FLOOR_ONE_THREAD, *dirs], root))
            for name, checkout in variants.items():
                sh([*MRL, "new", "bench"], proj)
                sh([*MRL, "makebatch"], proj)
                results[name].append(timed([*MRL, "run", "-j", "2"], proj, checkout))
            line = " ".join(f"{k}={v[-1][0]:.3f}/{v[-1][1]:.2f}" for k, v in results.items())
            print(f"round {r + 1}: load {os.getloadavg()[0]:.2f}  {line}", flush=True)
    best_xargs = min(w for w, _ in results["xargs -P 2"])
    print(f"\n{'':14} {'best':>7} {'median':>7} {'cpu med':>8}  best/xargs  ({args.rounds} rounds, wall s / cpu s)")
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"{name:14} {min(walls):7.3f} {statistics.median(walls):7.3f} {statistics.median(cpus):8.3f}"
            f"  {min(walls) / best_xargs:6.2f}x"
        )


if __name__ == "__main__":
    main()
