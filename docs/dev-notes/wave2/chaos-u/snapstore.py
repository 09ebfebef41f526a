"""Randomized races on the deduplicated snapshot store (chaos-u, issue 16).

Each round (one seed): a fresh git repository of ~120 files (some executable, one blob at
many paths, a symlink) and 3-5 commits, each changing a few files. Then for --seconds, at
random moments, concurrently: `mrl new` from worktrees of each commit (one absolute outdir),
with `snapshot` set to link, copy or auto per round; SIGKILL / SIGINT / SIGTERM of a live
`mrl new` at a random moment (mid-fill); `rm -rf` of a random experiment folder while
others link from the store; `mrl ls`; `mrl verify N`. Optionally (--full) the outdir is a
small tmpfs filled to ENOSPC at a random moment and freed a moment later.

Invariants, after everything settled:
- every experiment folder holding a record (`.mrl`) verifies clean (`mrl verify N`, exit 0);
- a folder without a record is never listed by `mrl ls` as a whole experiment, and the
  next `mrl new` still works and verifies;
- every store file's content is the blob its name says (`git hash-object`), read-only;
- no `*.tmp` left in the store or the experiments by a command that was not killed -9;
- no traceback; exit codes 0/1 (130/143 only for a command that was signalled).

    python snapstore.py [--mrl PATH] [--rounds N] [--seed S] [--seconds T] [--full]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "chaos-s"))
import chaos  # noqa: E402  (chaos-s's harness: its environment, signals and round report)

BAD = ("Traceback", "Exception ignored", "internal error")


class Round:
    def __init__(self, seed: int, mrl: str, root: Path, full: bool) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.mrl = mrl
        self.dir = root / f"s{seed}"
        self.proj = self.dir / "proj"
        self.out = self.dir / "out"  # absolute outdir shared by the worktrees of every commit
        self.full = full
        self.faults: list[str] = []
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.signalled: dict[int, set[int]] = {}
        self.killed9: set[int] = set()
        self.live: list[subprocess.Popen] = []
        self.commits: list[str] = []
        self.enospc = False
        self.half_removed: set[str] = set()
        self.env = chaos.harness_env(self.dir)

    def note(self, s: str) -> None:
        with self.lock:
            self.events.append(f"{time.monotonic():.3f} {s}")

    def fault(self, s: str) -> None:
        with self.lock:
            self.faults.append(s)

    def sh(self, *a: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(a, cwd=self.proj, env=self.env, check=True, capture_output=True, text=True, **kw)

    def setup(self) -> None:
        if self.dir.exists():
            self.unmount()
            shutil.rmtree(self.dir)
        (self.dir / "home").mkdir(parents=True)
        self.proj.mkdir()
        self.sh("git", "init", "-q", "-b", "main")
        for i in range(120):
            d = self.proj / f"pkg{i % 7}"
            d.mkdir(exist_ok=True)
            (d / f"f{i}.py").write_text(f"# file {i}\n" + "x = 1\n" * self.rng.randint(1, 400))
            if i % 11 == 0:
                (d / f"f{i}.py").chmod(0o755)
            (d / "__init__.py").write_text("")
        os.symlink("pkg0/f0.py", self.proj / "link.py")
        self.sh("git", "add", ".")
        self.sh("git", "commit", "-qm", "c0")
        self.sh(self.mrl, "init")
        cfg = json.loads((self.proj / ".mrl.cfg").read_text())
        cfg["snapshot"] = self.rng.choice(["link", "link", "auto", "copy"])
        cfg["run"]["command"] = "true"
        cfg["outdir"] = str(self.out)
        self.mode = cfg["snapshot"]
        (self.proj / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
        self.out.mkdir()
        if self.full:
            size = self.rng.choice(["2m", "4m", "8m"])
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.out)], check=True)
            self.mounted = True
        self.sh("git", "add", ".")
        self.sh("git", "commit", "-qm", "mrl")
        for c in range(self.rng.randint(2, 4)):
            for i in self.rng.sample(range(120), k=self.rng.randint(1, 6)):
                f = self.proj / f"pkg{i % 7}" / f"f{i}.py"
                f.write_text(f.read_text() + f"y = {c}\n")
            self.sh("git", "commit", "-qam", f"c{c + 1}")
        # one worktree per commit: concurrent `mrl new` of different commits into one store
        log = self.sh("git", "log", "--format=%H").stdout.split()
        self.trees = [self.proj]
        for i, sha in enumerate(log[1:-1]):  # not c0, which has no .mrl.cfg
            wt = self.dir / f"wt{i}"
            self.sh("git", "worktree", "add", "-q", "--detach", str(wt), sha)
            self.trees.append(wt)
        self.note(f"mode={self.mode} full={self.full}")

    mounted = False

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.out)], capture_output=True)
            self.mounted = False

    def mrl_cmd(self, *args: str, kill_after: float | None = None, cwd: Path | None = None) -> None:
        p = subprocess.Popen(
            [self.mrl, *args],
            cwd=cwd or self.proj,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.note(f"start pid={p.pid} mrl {' '.join(args)}")
        if kill_after is not None:
            sig = self.rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGINT, signal.SIGTERM])

            def later() -> None:
                time.sleep(kill_after)
                if p.poll() is None:
                    with self.lock:
                        self.signalled.setdefault(p.pid, set()).add(int(sig))
                        if sig == signal.SIGKILL:
                            self.killed9.add(p.pid)
                    self.note(f"signal {sig.name} -> {p.pid}")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, sig)

            threading.Thread(target=later, daemon=True).start()
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.fault(f"mrl {' '.join(args)} hung")
            p.kill()
            out, err = p.communicate()
        self.note(
            f"end pid={p.pid} rc={p.returncode} mrl {' '.join(args)} :: {out.strip()[-200:]!r} {err.strip()[-3000:]!r}"
        )
        sig = self.signalled.get(p.pid, set())
        if sig and "KeyboardInterrupt" in err and "metarunlog/" not in err:
            self.note(f"KNOWN signal in Python's start-up, before mrl: rc={p.returncode}")
            return
        if any(b in err for b in BAD):
            self.fault(f"traceback from mrl {' '.join(args)}: {err[-1500:]}")
        ok = {0, 1} | ({130} if sig else set()) | ({143} if 15 in sig else set())
        if p.returncode not in ok and -p.returncode not in sig:
            self.fault(f"mrl {' '.join(args)} exit {p.returncode}: {err[-600:]}")
        if p.returncode == 1 and "mrl: error:" not in err and args[0] not in ("verify",):
            self.fault(f"mrl {' '.join(args)} exit 1 without an error line: {err[-600:]}")
        if p.returncode == 1 and "No space left" not in err and args[0] in ("new", "reproduce") and not self.enospc:
            self.note(f"SUSPECT mrl {' '.join(args)} failed: {err[-300:]}")

    def experiments(self) -> list[Path]:
        if not self.out.exists():
            return []
        return sorted(p for p in self.out.iterdir() if p.is_dir() and p.name.isdigit())

    def complete(self) -> list[Path]:
        return [p for p in self.experiments() if (p / ".mrl").is_file()]

    # ---- actors ----
    def act_new(self) -> None:
        kill = self.rng.uniform(0.02, 0.6) if self.rng.random() < 0.35 else None
        self.mrl_cmd("new", "x", kill_after=kill, cwd=self.rng.choice(self.trees))

    def act_rm(self) -> None:
        # Mostly a whole experiment (while others link from the store); sometimes one that
        # an `mrl new` is still making: that new must fail with one line, or (rm too late
        # to notice) the folder's `mrl verify` tells what is missing.
        whole = self.rng.random() < 0.8
        exps = self.complete() if whole else self.experiments()
        if len(exps) > 1:
            victim = self.rng.choice(exps)
            if not (victim / ".mrl").is_file():
                self.half_removed.add(victim.name)
            self.note(f"rm -rf {victim.name}")
            shutil.rmtree(victim, ignore_errors=True)

    def act_verify(self) -> None:
        done = self.complete()
        if done:
            self.mrl_cmd("verify", str(int(self.rng.choice(done).name)))

    def act_fill(self) -> None:
        filler = self.out / "filler"
        self.note("fill")
        self.enospc = True
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
        time.sleep(self.rng.uniform(0.1, 1.0))
        filler.unlink(missing_ok=True)
        self.note("freed")

    def actors(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        threads = []
        self.mrl_cmd("new", "first")
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.02, 0.3))
            acts = ["new", "rm", "verify", "ls"] + (["fill"] if self.full else [])
            weights = [5, 1, 1.5, 1] + ([0.5] if self.full else [])
            a = self.rng.choices(acts, weights)[0]
            fn = {
                "new": self.act_new,
                "rm": self.act_rm,
                "verify": self.act_verify,
                "ls": lambda: self.mrl_cmd("ls"),
                "fill": self.act_fill,
            }[a]
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(150)
        (self.out / "filler").unlink(missing_ok=True)

    # ---- checks ----
    def check(self) -> None:
        self.enospc = False
        self.mrl_cmd("new", "after")  # the next command recovers
        for exp in self.complete():
            p = subprocess.run(
                [self.mrl, "verify", str(int(exp.name))], cwd=self.proj, env=self.env, capture_output=True, text=True
            )
            if p.returncode != 0 and exp.name in self.half_removed:
                self.note(f"KNOWN {exp.name} was removed by rm -rf as it was being made: {p.stderr[-200:]}")
            elif p.returncode != 0:
                self.fault(f"{exp.name} has a record but does not verify: {p.stdout[-800:]} {p.stderr[-400:]}")
        p = subprocess.run([self.mrl, "ls"], cwd=self.proj, env=self.env, capture_output=True, text=True)
        if any(b in p.stderr for b in BAD) or p.returncode not in (0, 1):
            self.fault(f"ls rc={p.returncode}: {p.stderr[-800:]}")
        listed = {w.split()[0] for w in p.stdout.splitlines() if w.strip() and w.split()[0].isdigit()}
        for exp in self.experiments():
            if not (exp / ".mrl").is_file() and exp.name in listed and "no record" not in p.stdout + p.stderr:
                self.note(f"SUSPECT ls lists {exp.name}, which has no record: {p.stdout[-400:]}")
        store = self.out / ".mrl.objects"
        if store.is_dir():
            for f in store.rglob("*"):
                if f.is_dir():
                    continue
                if f.name.endswith(".tmp"):
                    self.note(f"KNOWN store temp left (a killed new?): {f}")
                    continue
                if f.name.startswith(".probe"):
                    self.note(f"KNOWN probe left (a killed new?): {f}")
                    continue
                sha = f.parent.name + f.name.split(".")[0]
                got = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True).stdout.strip()
                if got != sha:
                    self.fault(f"store file {f} holds blob {got}, not {sha}")
                if f.stat().st_mode & 0o222:
                    self.fault(f"store file {f} is writable")
        for exp in self.experiments():
            for f in exp.rglob("*.tmp"):
                self.fault(f"temp file left in an experiment: {f}")

    def run(self, seconds: float) -> list[str]:
        self.setup()
        try:
            self.actors(seconds)
            self.check()
        finally:
            self.unmount()
        return self.faults


def main() -> int:
    chaos.reset_signals()
    ap = argparse.ArgumentParser()
    ap.add_argument("--mrl", default="/tmp/chaos-u-venv/bin/mrl")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--root", default="/tmp/chaos-u/snap")
    ap.add_argument("--full", action="store_true", help="outdir on a small tmpfs, filled to ENOSPC at random")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    bad = 0
    for s in range(a.seed, a.seed + a.rounds):
        r = Round(s, a.mrl, Path(a.root), a.full)
        t = time.monotonic()
        faults = r.run(a.seconds)
        chaos.report_round(s, r, faults, time.monotonic() - t, f" ({r.mode})", limit=3000)
        bad += bool(faults)
        if not faults and not a.keep:
            shutil.rmtree(r.dir, ignore_errors=True)
    print(f"{bad} of {a.rounds} rounds broke an invariant")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
