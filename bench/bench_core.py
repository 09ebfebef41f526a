#!/usr/bin/env python3
"""Core speed and disk: start-up of `mrl --help` / `mrl ls` (1,000 experiments), `mrl new`
on a 20,000-file repository, and the disk 10 consecutive experiments take.

    python bench/bench_core.py [--files 20000] [--size-mb 200] [--experiments 1000] [--repeat 7]
                               [--consecutive 10] [--parts startup,snapshot]

Prints medians and ratios against floors measured in the same run:
- `mrl ls` against a plain Python script that reads the same records and prints them
  (LS_FLOOR below; aim, issue 16: <= 1.5x), and against `python -c pass`;
- `mrl new` against `git archive HEAD | tar -x` (aim: <= 1.0x), once on a fresh outdir and
  for each of `--consecutive` experiments where each commit changes one file;
- the disk those consecutive experiments use (every inode counted once, folders included)
  against one `git archive` copy (aim: <= 1.1x in total).
MRL_BENCH_ROOT=/other/checkout measures another checkout's code (before/after figures).
The package is byte-compiled first, as an installed one is; start-up commands are run in
turns (one of each per round) so that a change in the machine's load hits them alike.
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

ROOT = Path(os.environ.get("MRL_BENCH_ROOT") or Path(__file__).resolve().parent.parent)
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}
MRL = [sys.executable, "-m", "metarunlog"]


def timed(cmd: list[str] | str, cwd: Path, repeat: int, shell: bool = False, setup=None) -> float:
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        os.sync()  # flush the previous run's writes so that they are not billed to this one
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=ENV, shell=shell, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_repo(path: Path, nfiles: int, size: int = 0) -> None:
    """A repository of `nfiles` files in folders of 500, `size` bytes in all (at least ~150 each)."""
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    lines = max(20, size // max(1, nfiles) // 6)
    for i in range(nfiles):
        d = path / f"pkg{i // 500:03d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i:05d}.py").write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * lines)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "big"], cwd=path, check=True, env=ENV)
    subprocess.run(MRL + ["init"], cwd=path, check=True, env=ENV, stdout=subprocess.DEVNULL)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "mrl"], cwd=path, check=True, env=ENV)


def fake_experiments(repo: Path, n: int) -> None:
    out = repo / "output"
    for i in range(1, n + 1):
        d = out / f"{i:04d}"
        d.mkdir()
        (d / ".mrl").write_text(
            json.dumps({"expId": i, "gitHash": "0" * 40, "description": f"exp {i}", "timestamp": "2026-01-01T00:00:00"})
        )


# The floor for `mrl ls`: read every experiment's record and print one line each, the same
# output as `mrl ls` (newest first, ** = not done), in plain Python.
LS_FLOOR = """
import json, os
out = "output"
lines = []
for name in sorted(os.listdir(out), reverse=True):
    if not name.isdigit():
        continue
    with open(os.path.join(out, name, ".mrl")) as f:
        rec = json.load(f)
    done = os.path.exists(os.path.join(out, name, ".mrl.done"))
    lines.append(("  " if done else "**") + " " + name)
print("\\n".join(lines))
"""


def disk_used(*roots: Path) -> int:
    """Bytes allocated under `roots`, each inode counted once (hardlinks shared), folders too."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in [".", *dirs, *files]:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def consecutive(big: Path, dest: Path, n: int) -> None:
    """n rounds of: change one file, commit, `mrl new` (timed) and `git archive | tar -x`."""
    shutil.rmtree(big / "output", ignore_errors=True)
    (big / "output").mkdir()
    news, archives = [], []
    for i in range(n):
        f = big / "pkg000" / "mod00000.py"
        f.write_text(f"# module 0, round {i}\nVALUE = {i}\n")
        subprocess.run(["git", "commit", "-qam", f"round {i}"], cwd=big, check=True, env=ENV)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        archives.append(timed(f"git archive HEAD | tar -x -C {dest}", big, 1, shell=True))
        news.append(timed(MRL + ["new", f"round {i}"], big, 1))
    one_copy = disk_used(dest)
    all_exps = disk_used(big / "output")
    print(f"\n{n} consecutive `mrl new`, one file changed per commit:")
    print("  round   mrl new   archive   ratio")
    for i, (t, a) in enumerate(zip(news, archives, strict=True)):
        print(f"  {i + 1:5d} {t * 1000:7.1f} ms {a * 1000:7.1f} ms  {t / a:5.2f}x")
    med = statistics.median(news) / statistics.median(archives)
    print(f"  median mrl new / archive: {med:5.2f}x   (aim: <= 1.0x)")
    print(
        f"  disk: one git archive copy {one_copy / 1e6:7.1f} MB; {n} experiments {all_exps / 1e6:7.1f} MB"
        f"  {all_exps / one_copy:5.2f}x   (aim: <= 1.1x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--consecutive", type=int, default=10)
    ap.add_argument("--size-mb", type=float, default=200, help="total size of the big repository's files")
    ap.add_argument("--parts", default="startup,snapshot")
    a = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "metarunlog")], check=True)
    with tempfile.TemporaryDirectory(prefix="mrl-bench-") as tmp:
        tmp_path = Path(tmp)
        if "startup" in a.parts:
            startup(tmp_path, a.experiments, a.repeat)
        if "snapshot" in a.parts:
            snapshots(tmp_path, a.files, int(a.size_mb * 1e6), a.repeat, a.consecutive)


def startup(tmp_path: Path, experiments: int, repeat: int) -> None:
    small = tmp_path / "small"
    make_repo(small, 3)
    fake_experiments(small, experiments)
    cmds = {
        "py": [sys.executable, "-c", "pass"],
        "floor": [sys.executable, "-c", LS_FLOOR],
        "help": MRL + ["--help"],
        "ls": MRL + ["ls"],
        "lsd": MRL + ["ls", "-desc", "-tm"],
    }
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, cmd in cmds.items():
            runs[k].append(timed(cmd, small, 1))
    py, floor, helpt, lst, lsd = (statistics.median(runs[k]) for k in cmds)
    print(f"start-up ({experiments} experiments), median of {repeat}:")
    print(f"  python -c pass      {py * 1000:7.1f} ms")
    print(f"  plain-Python ls     {floor * 1000:7.1f} ms  (floor: reads and prints the same records)")
    print(f"  mrl --help          {helpt * 1000:7.1f} ms  {helpt / py:5.2f}x of python -c pass")
    print(f"  mrl ls              {lst * 1000:7.1f} ms  {lst / floor:5.2f}x of the floor   (aim: <= 1.5x)")
    print(f"  mrl ls -desc -tm    {lsd * 1000:7.1f} ms  {lsd / floor:5.2f}x of the floor")


def snapshots(tmp_path: Path, files: int, size: int, repeat: int, rounds: int) -> None:
    big = tmp_path / "big"
    make_repo(big, files, size)
    dest = tmp_path / "dest"

    def fresh_dest() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()

    def fresh_out() -> None:
        shutil.rmtree(big / "output", ignore_errors=True)
        (big / "output").mkdir()

    r = max(3, repeat // 2)
    archive = timed(f"git archive HEAD | tar -x -C {dest}", big, r, shell=True, setup=fresh_dest)
    idx = tmp_path / "index"
    checkout = timed(
        f"GIT_INDEX_FILE={idx} git read-tree HEAD && "
        f"GIT_INDEX_FILE={idx} git -c checkout.workers=0 checkout-index -a -f --prefix={dest}/",
        big,
        r,
        shell=True,
        setup=fresh_dest,
    )
    wt = tmp_path / "wt"

    def fresh_wt() -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=big, capture_output=True)
        shutil.rmtree(wt, ignore_errors=True)

    worktree = timed(f"git worktree add -q --detach {wt} HEAD", big, r, shell=True, setup=fresh_wt)
    fresh_wt()
    new = timed(MRL + ["new", "bench"], big, r, setup=fresh_out)
    print(f"\nsnapshot of {files} tracked files ({size / 1e6:.0f} MB), median of {r}:")
    print(f"  git archive | tar -x          {archive * 1000:7.1f} ms  (floor)")
    print(f"  read-tree + checkout-index    {checkout * 1000:7.1f} ms  {checkout / archive:5.2f}x")
    print(
        f"  git worktree add --detach     {worktree * 1000:7.1f} ms  {worktree / archive:5.2f}x"
        "   (rejected: code/ would link back to the repo)"
    )
    print(f"  mrl new (fresh outdir)        {new * 1000:7.1f} ms  {new / archive:5.2f}x   (aim: <= 1.5x)")
    consecutive(big, dest, rounds)


if __name__ == "__main__":
    main()
