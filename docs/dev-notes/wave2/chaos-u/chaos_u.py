"""chaos-s's runner harness (../chaos-s/chaos.py), widened (chaos-u, docs/dev-notes/wave2/chaos-u.md).

Everything chaos.py does (concurrent runners, kill -9/INT/TERM/HUP, cancel, -replace /
--extend, tag/status/table, decoys, its invariants), plus:
- hostile param values: every sub also has a `name` from a pool of quotes, `$(...)`,
  backquotes, `;`, newlines, tabs, unicode (RTL override), `<script>`, 2,000 characters;
  the step gets it as `--name {{name}}` and logs ARGMISMATCH unless argv holds exactly
  its conf.json's value; a canary file `$(touch ...)` would make must never exist; at the
  end `table --csv/--tsv/--json/--markdown` and `analyze`'s HTML must hold every name as
  itself (CSV/JSON parse back to it, HTML never holds a raw `<script>`).
- long pauses: `run.heartbeat` 0.3 s, `run.stale_after` 1 s, and SIGSTOP of a runner for
  1-4 s (beyond stale_after: nobody may start its jobs again beside it, OVERLAP says),
  SIGSTOP of a live step for 0.2-3 s, SIGSTOP of `mrl cancel` for 0.5-3 s;
- two `makebatch --extend` at once on one grid edit (then: no two subs with one lr, and
  the subs are exactly the grid);
- `mrl analyze` and `mrl table --aggregate` as readers racing the runners;
- --full: the experiments folder is a small tmpfs, filled to ENOSPC at a random moment
  (mid-run, mid-makebatch, mid-analyze) and freed 0.1-1.5 s later; after the round the
  final plain run must still bring every sub to done/failed with true records.

    python chaos_u.py [--mrl PATH] [--rounds N] [--seed S] [--seconds T] [--full] [--keep]
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "chaos-s"))
import chaos  # noqa: E402

CANARY = "/tmp/chaos-u/CANARY"
NAMES = [
    "plain",
    "it's",
    'say "hi"',
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"a; touch {CANARY}; b",
    "two\nlines",
    "tab\there",
    "ünï\u202ecödé 🐍",
    "<script>alert(1)</script>",
    "back\\slash\\",
    "{{ lr }}",
    "%s %(x)s {0}",
    "-rf",
    "z" * 2000,
]

# The step gets its name on the command line too: argv must hold exactly its conf.json's.
STEP_NAME_CHECK = r"""
if "--name" in sys.argv and sys.argv[sys.argv.index("--name") + 1] != conf["name"]:
    log("ARGMISMATCH", sub, os.getpid())
"""

STEP = chaos.STEP.replace(
    'part = sys.argv[1] if len(sys.argv) > 1 else "only"',
    'part = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "--name" else "only"',
)
STEP = STEP.replace('log("start", sub', STEP_NAME_CHECK.lstrip("\n") + 'log("start", sub', 1)
# A full disk makes the step's own writes fail: it says so (exit 4) rather than die unlogged
# or (a file closed only at exit, whose flush error Python ignores) leave an empty metrics.json.
STEP = STEP.replace(
    '    json.dump({{"lr": conf["lr"]}}, open("part1.json", "w"))',
    '    try:\n        with open("part1.json", "w") as f:\n            json.dump({{"lr": conf["lr"]}}, f)\n'
    '    except OSError:\n        log("end", sub, os.getpid(), 4, time.time()); sys.exit(4)',
)
STEP = STEP.replace(
    'json.dump({{"lr": conf["lr"], "sub": conf["sub"], "pid": os.getpid(), "dir": sub}},\n'
    '          open("metrics.json.part", "w"))\nos.replace("metrics.json.part", "metrics.json")',
    'try:\n    with open("metrics.json.part", "w") as f:  # closed here: a full disk fails here, not at exit\n'
    '        json.dump({{"lr": conf["lr"], "sub": conf["sub"], "pid": os.getpid(), "dir": sub}}, f)\n'
    '    os.replace("metrics.json.part", "metrics.json")\n'
    'except OSError:\n    log("end", sub, os.getpid(), 4, time.time()); sys.exit(4)',
)
assert "ARGMISMATCH" in STEP and STEP.count("sys.exit(4)") == 2

TEMPLATE = (
    '{{\n  "lr": {{{{lr}}}},\n  "name": {{{{ name | tojson }}}},\n  "sub": {{{{ subExpId | tojson }}}}\n}}\n'
    "// MRL:grid['lr'] = {grid}\n// MRL:grid['name'] = {names}\n"
)


class Round(chaos.Round):
    def __init__(self, seed: int, mrl: str, root: Path, full: bool) -> None:
        super().__init__(seed, mrl, root)
        self.full = full
        self.names = self.rng.sample(NAMES, k=2)
        self.mounted: Path | None = None
        self.stopped: set[int] = set()

    # ---- setup: the hostile grid, short heartbeat, a tmpfs ----
    def template(self) -> str:
        grid = self.grid()
        return TEMPLATE.format(grid=grid, names=json.dumps(self.names))

    def setup(self) -> None:
        saved = chaos.STEP, chaos.TEMPLATE
        chaos.STEP = STEP
        try:
            super().setup()
        finally:
            chaos.STEP = saved[0]
        # the grid is lr x name: the harness's lr bookkeeping counts subs, so name has one
        # value per experiment generation... keep both: count doubles
        cfg = json.loads((self.proj / ".mrl.cfg").read_text())
        cmd = cfg["run"]["command"]
        add = " --name {{name}}"
        cfg["run"]["command"] = [c + add for c in cmd] if isinstance(cmd, list) else cmd + add
        cfg["run"]["heartbeat"] = 0.3
        cfg["run"]["stale_after"] = 1
        (self.proj / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
        subprocess.run(["git", "commit", "-qam", "hostile"], cwd=self.proj, env=self.env, check=True)
        # the experiment was made before: redo it from this config
        subprocess.run(["rm", "-rf", str(self.proj / "output")], check=True)
        (self.proj / "last").unlink(missing_ok=True)
        out = self.proj / "output"
        out.mkdir()
        if self.full:
            size = self.rng.choice(["3m", "6m"])
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(out)], check=True)
            self.mounted = out
        (self.proj / "conf.json").write_text(self.template())
        subprocess.run(["git", "commit", "-qam", "grid"], cwd=self.proj, env=self.env, check=True)
        subprocess.run([self.mrl, "new", "chaos-u"], cwd=self.proj, env=self.env, check=True, capture_output=True)
        subprocess.run([self.mrl, "makebatch"], cwd=self.proj, env=self.env, check=True, capture_output=True)
        self.exp = self.proj / "output" / "0001"

    def edit_template(self, extend: bool) -> None:
        if extend:
            self.count += self.rng.randint(1, 2)
        else:
            self.gen += 1
            self.count = self.rng.randint(2, 6)
        (self.exp / "conf.json").write_text(self.template())

    def makebatch(self) -> None:
        if self.rng.random() < 0.3:
            return self.two_makebatch()
        saved = (self.gen, self.count)
        super().makebatch()
        if (self.gen, self.count) == saved:
            (self.exp / "conf.json").write_text(self.template())

    def two_makebatch(self) -> None:
        """Two `makebatch --extend` at once on one grid edit."""
        saved = (self.gen, self.count)
        self.edit_template(True)
        t0 = time.time()
        ps = [self.mrl_cmd("makebatch", "--extend", wait=False) for _ in range(2)]
        for p in ps:
            self.finish(p, ["makebatch", "--extend"], (0, 1))
        if any(p.returncode == 0 for p in ps):
            with self.lock:
                self.batches.append((t0, time.time(), [(r[0].pid, r[3]) for r in self.runners]))
        else:
            self.gen, self.count = saved
            (self.exp / "conf.json").write_text(self.template())

    # ---- new actors ----
    def live_steps(self) -> list[int]:
        return [pid for pid, d in self.marker_procs() if pid not in self.decoy_pids]

    def pause(self) -> None:
        what = self.rng.choice(["runner", "runner", "step", "cancel"])
        if what == "cancel":
            p = self.mrl_cmd("cancel", wait=False)
            time.sleep(self.rng.uniform(0.02, 0.3))
            self.stop_cont(p.pid, self.rng.uniform(0.5, 3), "cancel")
            self.finish(p, ["cancel"], (0, 1))
            return
        if what == "step":
            steps = self.live_steps()
            if steps:
                self.stop_cont(self.rng.choice(steps), self.rng.uniform(0.2, 3), "step")
            return
        with self.lock:
            live = [r for r in self.runners if r[0].poll() is None]
        if live:
            self.stop_cont(self.rng.choice(live)[0].pid, self.rng.uniform(1, 4), "runner")

    def stop_cont(self, pid: int, seconds: float, what: str) -> None:
        self.note(f"SIGSTOP -> {what} {pid} for {seconds:.1f}s")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        self.stopped.add(pid)
        time.sleep(seconds)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self.note(f"SIGCONT -> {what} {pid}")

    def reader(self) -> None:
        r = self.rng.random()
        if r < 0.15:
            self.mrl_cmd("analyze", ok=(0, 1))
        elif r < 0.3:
            self.mrl_cmd("table", "--aggregate", "--by", "name", ok=(0, 1))
        elif self.mounted is None:
            super().reader()
        else:  # a full disk: `tag` may fail, with one error line (finish checks there is no traceback)
            what = self.rng.choice(["status", "tag"])
            if what == "status":
                self.mrl_cmd("status", "--json", ok=(0,))
            else:
                self.mrl_cmd("tag", "1", self.rng.choice(["+a", "+b", "-a"]), ok=(0, 1))

    def fill(self) -> None:
        if self.mounted is None:
            return
        filler = self.mounted / "filler"
        self.note("fill")
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
        time.sleep(self.rng.uniform(0.1, 1.5))
        filler.unlink(missing_ok=True)
        self.note("freed")

    def actions(self) -> dict[str, tuple[Any, float]]:
        """name -> (what it does, its weight): chaos.Round.actors' five and three more
        (chaos-w's harness adds its own). `makebatch` runs in the actors' own thread."""
        acts: dict[str, tuple[Any, float]] = {
            "run": (self.start_runner, 3),
            "signal": (self.signal_runner, 2),
            "cancel": (self.cancel, 1.5),
            "makebatch": (self.makebatch, 1),
            "reader": (self.reader, 2),
            "pause": (self.pause, 1.2),
        }
        if self.full:
            acts["fill"] = (self.fill, 0.5)
        return acts

    settle_s = 0.2  # after the last runner ended

    def actors(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        threads = []
        self.start_runner()
        acts = self.actions()
        names = list(acts)
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.01, 0.35))
            action = self.rng.choices(names, [acts[n][1] for n in names])[0]
            if action == "makebatch":
                self.makebatch()
                continue
            t = threading.Thread(target=acts[action][0], daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(120)
        if self.mounted is not None:
            (self.mounted / "filler").unlink(missing_ok=True)
        with self.lock:
            runners = list(self.runners)
        for p, _, _, _ in runners:
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                self.fault(f"runner {p.pid} never ended")
                p.kill()
        time.sleep(self.settle_s)

    # ---- new checks ----
    def steps(self) -> dict[str, list[list[str]]]:
        by = super().steps()
        for lines in by.values():
            for w in lines:
                if w[0] == "ARGMISMATCH":
                    self.fault(f"step in {w[1]} got another --name than its conf.json's")
        return by

    def check_grid(self) -> None:
        lrs: dict[int, str] = {}
        for d in sorted(self.exp.iterdir()):
            if not (d.is_dir() and d.name.isdigit()):
                continue
            try:
                params = json.loads((d / ".mrl").read_text())["params"]
            except (OSError, ValueError, KeyError) as e:
                self.fault(f"{d.name}: unreadable sub record: {e}")
                continue
            key = (params["lr"], params["name"])
            if key in lrs:
                self.fault(f"{d.name} and {lrs[key]} have one param set {key}")
            lrs[key] = d.name
        want = {(lr, n) for lr in self.grid() for n in self.names}
        if set(lrs) != want:
            self.note(f"SUSPECT subs {sorted(set(lrs) ^ want)[:6]} differ from the grid")

    def check_outputs(self) -> None:
        if os.path.exists(CANARY):
            self.fault("a param value ran as shell: the canary exists")
            os.unlink(CANARY)

        def out(*args: str) -> str:
            p = subprocess.run([self.mrl, *args], cwd=self.proj, env=self.env, capture_output=True, text=True)
            if p.returncode not in (0, 1) or any(b in p.stderr for b in chaos.BAD):
                self.fault(f"mrl {' '.join(args)} rc={p.returncode}: {p.stderr[-600:]}")
            return p.stdout

        names = set(self.names)
        for sep, fmt in ((",", "--csv"), ("\t", "--tsv")):
            got = {r["name"] for r in csv.DictReader(io.StringIO(out("table", fmt)), delimiter=sep)}
            if got - names:
                self.fault(f"table {fmt} names {got - names} are not the params {names}")
        try:
            got = {r["name"] for r in json.loads(out("table", "--json"))}
            if got - names:
                self.fault(f"table --json names {got - names} are not {names}")
        except ValueError as e:
            self.fault(f"table --json is no JSON: {e}")
        md = out("table", "--markdown")
        if "<script>" in md:
            self.fault("table --markdown holds a raw <script>")
        out("analyze")
        html = self.exp / "analysis" / "index.html"
        if html.exists():
            text = html.read_text(errors="replace")
            if "<script>alert(1)</script>" in text:
                self.fault("the report holds the param's <script> unescaped")
            if re.search(r"touch /tmp/chaos-u/CANARY\)", text) is None and any("$(" in n for n in names):
                self.note(f"SUSPECT report does not show the name {names}")

    def leftovers(self) -> None:
        for p in self.exp.rglob("*"):
            if p.name.endswith(".tmp") or ".tmp" in p.name and p.name.startswith("."):
                self.fault(f"leftover temp file {p}")

    def run(self, seconds: float) -> list[str]:
        try:
            self.setup()
            self.decoys = [subprocess.Popen(["sleep", "600"], start_new_session=b) for b in (True, False)]
            self.decoys.append(
                subprocess.Popen(
                    ["sleep", "600"], env=dict(self.env, MRL_SUBEXP_DIR=str(self.exp / "001")), start_new_session=True
                )
            )
            self.decoy_pids = {d.pid for d in self.decoys}
            self.actors(seconds)
            self.settle()
            self.leftovers()
            self.check_states(final=False)
            self.check_samples()
            self.check_batches()
            self.check_grid()
            self.mrl_cmd("run", "-j", "2", ok=(0, 1))
            self.settle()
            self.check_states(final=True)
            self.leftovers()
            self.check_outputs()
            for d in self.decoys:
                if d.poll() is not None:
                    self.fault(f"decoy {d.pid} died: {d.returncode}")
        finally:
            for d in getattr(self, "decoys", []):
                d.kill()
                d.wait()
            if self.mounted is not None:
                subprocess.run(["umount", "-l", str(self.mounted)], capture_output=True)
        return self.faults


def main(round_cls: type = Round, mrl: str = "/tmp/chaos-u-venv/bin/mrl", root: str = "/tmp/chaos-u/rounds") -> int:
    """Rounds of `round_cls` (this Round, or chaos-w's on top of it)."""
    chaos.reset_signals()
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--mrl", default=mrl)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--root", default=root)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    os.makedirs(os.path.dirname(CANARY), exist_ok=True)
    bad = 0
    for s in range(a.seed, a.seed + a.rounds):
        r = round_cls(s, a.mrl, Path(a.root), a.full)
        t = time.monotonic()
        faults = r.run(a.seconds)
        chaos.report_round(s, r, faults, time.monotonic() - t, f" names={r.names!r:.80}", limit=3000)
        bad += bool(faults)
        if not faults and not a.keep and not any("SUSPECT" in e for e in r.events):
            import shutil

            shutil.rmtree(r.dir, ignore_errors=True)
    print(f"{bad} of {a.rounds} rounds broke an invariant")
    return 1 if bad else 0


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
