"""Randomized race/fault harness for mrl's local backend (chaos-s, docs/dev-notes/wave2/chaos-s.md).

Each round (one seed): a fresh git project; run.command is one or two steps of a script
that writes metrics.json holding its own params (read from its rendered conf.json) and
its pid, sleeps 5-500 ms, sometimes fails (exit 3), ignores SIGTERM, leaves a background
child (sleep 2.5), and logs its start/end to a file outside mrl (with a flock guard that
logs OVERLAP when two steps of one sub-experiment run at once). Then, for --seconds, at
random moments: `mrl run -j 1..3` (plain, --failed, --force, --retries 1, a selection;
--fail-fast, --resources 0 1 with a flock per slot that logs SLOTOVERLAP; sometimes a
second runner at once), SIGKILL/SIGINT/SIGTERM/SIGHUP or SIGSTOP..SIGCONT to a runner,
`mrl cancel` (whole and EXP/SUB), `makebatch --extend` / `-replace` (after editing the
experiment's template grid), `mrl tag`, `mrl status [--json]`, `mrl table --json`. Three
decoy `sleep` processes (one with MRL_SUBEXP_DIR of 001 in its environment) must live.

Invariants (after everything settled, then again after a final plain `mrl run -j 2`):
done => metrics.json holds this sub's params and the pid of the last step that started
for it, which ended 0; no OVERLAP; nothing `running`/`queued` once settled; a `failed`
sub's last step failed by itself; a `cancelled` one's last step did not fail by itself
with that exit code; a `running` row of a status sample never names another sub's step;
no makebatch -replace/--extend succeeded while a runner that had claimed before it went
on to start steps after it; no step process (MRL_SUBEXP_DIR under the experiment) alive
10 s after the end; decoys alive; no `*.tmp` left; `mrl table --json` agrees with status
and metrics.json; no traceback on stderr; exit codes as docs/running.md says (death by a
signal only for a runner that was sent it). SUSPECT / KNOWN lines are printed, not counted.

    python chaos.py [--mrl PATH] [--rounds N] [--seed S] [--seconds T] [--keep]

Start it from a foreground shell or as here: it resets SIGINT to default for its children
(a background job of a non-interactive shell ignores SIGINT, and mrl keeps it ignored).
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
from typing import Any

STEP = r"""
import fcntl, json, os, random, signal, subprocess, sys, time
LOG = {log!r}
sub = os.environ["MRL_SUBEXP_DIR"]
conf = json.load(open("conf.json"))
rng = random.Random()
def log(*words):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())
    os.close(fd)
guard = open(os.path.join(sub, ".chaos.guard"), "w")
try:
    fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    log("OVERLAP", sub, os.getpid(), time.time())
try:
    runner = open("/proc/%d/stat" % os.getppid()).read().rsplit(")", 1)[1].split()[1]
except OSError:
    runner = "?"
part = sys.argv[1] if len(sys.argv) > 1 else "only"
cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
if cvd is not None:
    slot = open(os.path.join(os.path.dirname(sub), ".chaos.slot.%s.%s" % (runner, cvd)), "w")
    try:
        fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log("SLOTOVERLAP", sub, os.getpid(), runner, cvd)
log("start", sub, os.getpid(), os.getppid(), os.environ.get("MRL_ATTEMPT"), time.time(), runner, conf["lr"], part)
if rng.random() < 0.15:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log("ignoreterm", sub, os.getpid())
if rng.random() < 0.15:
    child = subprocess.Popen(["sleep", "2.5"])
    log("child", sub, os.getpid(), child.pid)
time.sleep(rng.uniform(0.005, 0.5))
if part == "1":
    json.dump({{"lr": conf["lr"]}}, open("part1.json", "w"))
    code = 3 if rng.random() < 0.1 else 0
    log("end", sub, os.getpid(), code, time.time())
    sys.exit(code)
if part == "2" and json.load(open("part1.json"))["lr"] != conf["lr"]:
    log("STALEPART", sub, os.getpid())
json.dump({{"lr": conf["lr"], "sub": conf["sub"], "pid": os.getpid(), "dir": sub}},
          open("metrics.json.part", "w"))
os.replace("metrics.json.part", "metrics.json")
code = 3 if rng.random() < 0.15 else 0
log("end", sub, os.getpid(), code, time.time())
sys.exit(code)
"""

TEMPLATE = '{{\n  "lr": {{{{lr}}}},\n  "sub": {{{{ subExpId | tojson }}}}\n}}\n// MRL:grid[\'lr\'] = {grid}\n'

BAD = ("Traceback", "Exception ignored", "internal error")


class Round:
    def __init__(self, seed: int, mrl: str, root: Path) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.mrl = mrl
        self.dir = root / f"r{seed}"
        self.proj = self.dir / "proj"
        self.log = self.dir / "steps.log"
        self.events: list[str] = []
        self.faults: list[str] = []
        self.lock = threading.Lock()
        self.runners: list[tuple[subprocess.Popen, list[str], float]] = []
        self.gen = 0
        self.count = 0
        self.env = harness_env(self.dir)
        self.signalled: dict[int, set[int]] = {}
        self.samples: list[list[dict]] = []
        self.batches: list[tuple[float, float, list[tuple[int, float]]]] = []

    # ---- setup ----
    def grid(self) -> list[int]:
        return [self.gen * 1000 + i + 1 for i in range(self.count)]

    def setup(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "home").mkdir(parents=True)
        self.proj.mkdir()
        sh = lambda *a: subprocess.run(a, cwd=self.proj, env=self.env, check=True, capture_output=True)  # noqa: E731
        sh("git", "init", "-q", "-b", "main")
        (self.proj / "step.py").write_text(STEP.format(log=str(self.log)))
        self.count = self.rng.randint(2, 6)
        (self.proj / "conf.json").write_text(TEMPLATE.format(grid=self.grid()))
        sh("git", "add", ".")
        sh("git", "commit", "-qm", "init")
        sh(self.mrl, "init")
        cfg = json.loads((self.proj / ".mrl.cfg").read_text())
        cfg["confTemplFile"] = "conf.json"
        cfg["copyFiles"] = ["conf.json"]
        self.multi = self.rng.random() < 0.4
        if self.multi:
            cfg["run"]["command"] = ["python3 {{codeDir}}/step.py 1", "python3 {{codeDir}}/step.py 2"]
        else:
            cfg["run"]["command"] = "python3 {{codeDir}}/step.py"
        (self.proj / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
        sh("git", "add", ".")
        sh("git", "commit", "-qm", "mrl init")
        sh(self.mrl, "new", "chaos round")
        sh(self.mrl, "makebatch")
        self.exp = self.proj / "output" / "0001"

    # ---- actors ----
    def note(self, s: str) -> None:
        with self.lock:
            self.events.append(f"{time.monotonic():.3f} {s}")

    def mrl_cmd(self, *args: str, ok: tuple[int, ...] = (0, 1), wait: bool = True) -> subprocess.Popen:
        p = subprocess.Popen(
            [self.mrl, *args],
            cwd=self.proj,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.note(f"start pid={p.pid} mrl {' '.join(args)}")
        if wait:
            self.finish(p, list(args), ok)
        return p

    def finish(self, p: subprocess.Popen, args: list[str], ok: tuple[int, ...], timeout: float = 90) -> None:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fault(f"mrl {' '.join(args)} (pid {p.pid}) hung > {timeout}s")
            p.kill()
            out, err = p.communicate()
        out, err = out or "", err or ""  # a stream chaos-w's harness gave away (lost on purpose)
        self.note(
            f"end pid={p.pid} rc={p.returncode} mrl {' '.join(args)} :: {out.strip()[-300:]!r} {err.strip()[-300:]!r}"
        )
        before_main = "metarunlog/" not in err or "from metarunlog.main import main" in err
        if any(b in err for b in BAD) and p.pid in self.signalled and before_main and "KeyboardInterrupt" in err:
            self.note(f"KNOWN signal before mrl's main ran (Python start-up or `import metarunlog`): {args}")
        elif any(b in err for b in BAD) or any(b in out for b in BAD):
            self.fault(f"traceback from mrl {' '.join(args)} rc={p.returncode}: {err[-1500:]}")
        signalled = self.signalled.get(p.pid, set())
        died_of = -p.returncode if p.returncode < 0 else None
        if p.returncode not in ok and died_of not in signalled:
            self.fault(f"mrl {' '.join(args)} exit {p.returncode} not in {ok}: {out[-500:]} {err[-500:]}")
        if args[:2] == ["status", "--json"] and p.returncode == 0:
            try:
                self.samples.append(json.loads(out))
            except ValueError:
                self.fault(f"status --json printed no JSON: {out[:300]!r}")
        if args and args[0] == "run" and p.returncode == 0 and self.signalled.get(p.pid, set()) - {9}:
            self.note(f"SUSPECT runner {p.pid} exit 0 after {self.signalled[p.pid]}")

    def start_runner(self) -> None:
        args = ["run", "-j", str(self.rng.randint(1, 3))]
        r = self.rng.random()
        if r < 0.15:
            args.append("--failed")
        elif r < 0.2:
            args = ["run", "--fail-fast", "-j", "2"]
        elif r < 0.28:
            args = ["run", "--resources", "0", "1"]
        elif r < 0.3:
            args.append("--force")
        elif r < 0.4:
            args += ["--retries", "1"]
        if self.rng.random() < 0.2:
            ids = sorted(self.rng.sample(range(1, self.count + 1), k=self.rng.randint(1, self.count)))
            args.insert(1, "1/" + ",".join(map(str, ids)))  # before --resources, which takes every word
        if self.rng.random() < 0.2:
            threading.Thread(target=self.start_runner_plain, daemon=True).start()
        p = self.mrl_cmd(*args, wait=False)
        with self.lock:
            self.runners.append((p, args, time.monotonic(), time.time()))
        threading.Thread(target=self.finish, args=(p, args, (0, 1, 129, 130, 143)), daemon=True).start()

    def start_runner_plain(self) -> None:
        p = self.mrl_cmd("run", "-j", "2", wait=False)
        with self.lock:
            self.runners.append((p, ["run", "-j", "2"], time.monotonic(), time.time()))
        self.finish(p, ["run", "-j", "2"], (0, 1, 129, 130, 143))

    def signal_runner(self) -> None:
        with self.lock:
            live = [r for r in self.runners if r[0].poll() is None]
        if not live:
            return
        p, args, _, _ = self.rng.choice(live)
        if self.rng.random() < 0.15:  # Ctrl-Z, then fg
            self.note(f"SIGSTOP -> runner {p.pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGSTOP)
            time.sleep(self.rng.uniform(0.05, 0.6))
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)
            return
        sig = self.rng.choice([signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
        self.signalled.setdefault(p.pid, set()).add(int(sig))
        self.note(f"signal {sig.name} -> runner {p.pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)

    def edit_template(self, extend: bool) -> None:
        if extend:
            self.count += self.rng.randint(1, 2)
        else:
            self.gen += 1
            self.count = self.rng.randint(2, 6)
        (self.exp / "conf.json").write_text(TEMPLATE.format(grid=self.grid()))

    def makebatch(self) -> None:
        extend = self.rng.random() < 0.5
        saved = (self.gen, self.count)
        self.edit_template(extend)
        t0 = time.time()
        p = self.mrl_cmd("makebatch", "--extend" if extend else "-replace", wait=False)
        self.finish(p, ["makebatch", "--extend" if extend else "-replace"], (0, 1))
        if p.returncode == 0:
            with self.lock:
                self.batches.append((t0, time.time(), [(r[0].pid, r[3]) for r in self.runners]))
        if p.returncode != 0:
            self.gen, self.count = saved
            (self.exp / "conf.json").write_text(TEMPLATE.format(grid=self.grid()))

    def cancel(self) -> None:
        if self.rng.random() < 0.5:
            self.mrl_cmd("cancel", ok=(0, 1))
        else:
            ids = sorted(self.rng.sample(range(1, self.count + 1), k=self.rng.randint(1, min(2, self.count))))
            self.mrl_cmd("cancel", "1/" + ",".join(map(str, ids)), ok=(0, 1))

    def reader(self) -> None:
        what = self.rng.choice(["status", "table", "tag", "statusjson"])
        if what == "status":
            self.mrl_cmd("status", ok=(0,))
        elif what == "statusjson":
            self.mrl_cmd("status", "--json", ok=(0,))
        elif what == "table":
            self.mrl_cmd("table", "--json", ok=(0,))
        else:
            self.mrl_cmd("tag", "1", self.rng.choice(["+a", "+b", "-a"]), ok=(0,))

    def actors(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        threads = []
        self.start_runner()
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.01, 0.35))
            action = self.rng.choices(["run", "signal", "cancel", "makebatch", "reader"], [3, 2, 1.5, 1, 2])[0]
            fn = {
                "run": self.start_runner,
                "signal": self.signal_runner,
                "cancel": self.cancel,
                "makebatch": self.makebatch,
                "reader": self.reader,
            }[action]
            if action == "makebatch":
                fn()  # sequential: it edits the template the harness tracks
                continue
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(120)
        with self.lock:
            runners = list(self.runners)
        for p, _, _, _ in runners:
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                self.fault(f"runner {p.pid} never ended")
                p.kill()
        time.sleep(0.2)

    # ---- checks ----
    def fault(self, s: str) -> None:
        with self.lock:
            self.faults.append(s)

    def marker_procs(self) -> list[tuple[int, str]]:
        found = []
        exp = str(self.exp)
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                env = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            for e in env:
                mine = e.startswith(b"MRL_SUBEXP_DIR=") and e[15:].decode(errors="replace").startswith(exp)
                if mine and int(d) not in self.decoy_pids:
                    found.append((int(d), e[15:].decode(errors="replace")))
        return found

    def settle(self) -> None:
        for _ in range(100):
            if not self.marker_procs():
                return
            time.sleep(0.1)
        self.fault(f"step processes still alive after settling: {self.marker_procs()}")

    def status_json(self) -> list[dict]:
        p = subprocess.run([self.mrl, "status", "--json"], cwd=self.proj, env=self.env, capture_output=True, text=True)
        if p.returncode != 0 or any(b in p.stderr for b in BAD):
            self.fault(f"status --json rc={p.returncode}: {p.stderr[-800:]}")
            return []
        return json.loads(p.stdout)

    def steps(self) -> dict[str, list[list[str]]]:
        by: dict[str, list[list[str]]] = {}
        if not self.log.exists():
            return by
        for line in self.log.read_text().splitlines():
            w = line.split()
            if w[0] == "SLOTOVERLAP":
                self.fault(f"two jobs at once on slot {w[4]} of runner {w[3]}: {w[1]}")
            if w[0] == "STALEPART":
                self.fault(f"step 2 in {w[1]} found step 1's output of other params")
            if w[0] == "OVERLAP":
                self.fault(f"two steps at once in {w[1]}: pid {w[2]}")
            by.setdefault(w[1], []).append(w)
        return by

    def check_states(self, final: bool) -> None:
        rows = self.status_json()
        steps = self.steps()
        for row in rows:
            sid = row.get("id")
            subdir = next(
                (d for d in self.exp.iterdir() if d.is_dir() and d.name.isdigit() and int(d.name) == sid), None
            )
            if subdir is None:
                self.fault(f"status row {sid} has no folder")
                continue
            params = json.loads((subdir / ".mrl").read_text())["params"]
            state = row["state"]
            lines = steps.get(str(subdir), [])
            starts = [w for w in lines if w[0] == "start" and w[7] == str(params["lr"])]
            ends = {w[2]: w for w in lines if w[0] == "end"}
            if state in ("running", "queued"):
                self.fault(f"{subdir.name}: {state} after everything settled: {row}")
            if state == "done":
                m = subdir / "metrics.json"
                if not m.exists():
                    self.fault(f"{subdir.name}: done without metrics.json")
                    continue
                met = json.loads(m.read_text())
                if met["lr"] != params["lr"] or met["dir"] != str(subdir) or met["sub"] != subdir.name:
                    self.fault(f"{subdir.name}: done with another's metrics {met} params {params}")
                if not starts:
                    self.fault(f"{subdir.name}: done but no step ever started")
                    continue
                last = starts[-1]
                if str(met["pid"]) != last[2]:
                    self.fault(f"{subdir.name}: done, metrics pid {met['pid']} is not the last step's {last[2]}")
                end = ends.get(last[2])
                if end is None or end[3] != "0":
                    self.fault(f"{subdir.name}: done but its last step {last[2]} did not end ok: {end}")
                rpid = row.get("pid")
                if rpid is not None and str(rpid) not in (last[2], last[3]):
                    self.fault(f"{subdir.name}: record pid {rpid} is not the last step {last[2]}/{last[3]}")
            elif state == "failed":
                if starts:
                    end = ends.get(starts[-1][2])
                    if end is not None and end[3] == "0":
                        self.fault(f"{subdir.name}: failed but its last step {end[2]} ended 0: {row}")
                    if end is None:
                        self.fault(f"{subdir.name}: failed, its last step {starts[-1][2]} was killed: {row}")
            elif state == "cancelled" and starts:
                end = ends.get(starts[-1][2])
                if end is not None and end[3] != "0" and row.get("exitCode") == int(end[3]):
                    self.fault(f"{subdir.name}: cancelled, but its last step {end[2]} had failed by itself: {row}")
                elif end is not None and end[3] != "0":  # SIGTERM as it was exiting: -15 is true
                    self.note(f"SUSPECT {subdir.name}: cancelled as its last step {end[2]} was exiting {end[3]}: {row}")
                elif end is not None:
                    self.note(f"SUSPECT {subdir.name}: cancelled but its last step {end[2]} ended 0: {row}")
            if final and state not in ("done", "failed"):
                self.fault(f"{subdir.name}: {state} after a final plain run: {row}")
        if final:
            self.check_table(rows)

    def check_samples(self) -> None:
        owner: dict[str, str] = {}
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            w = line.split()
            if w[0] == "start":
                owner[w[2]] = w[1]
                owner.setdefault(w[3], w[1])
        for rows in self.samples:
            for row in rows:
                if row.get("state") == "running" and row.get("pid"):
                    sub = owner.get(str(row["pid"]))
                    if sub is not None and Path(sub).name != row["name"] and Path(sub).parent == self.exp:
                        self.fault(f"status said {row['name']} running with pid {row['pid']}, a step of {sub}")

    def check_batches(self) -> None:
        starts = [line.split() for line in (self.log.read_text().splitlines() if self.log.exists() else [])]
        starts = [w for w in starts if w[0] == "start"]
        for t0, t1, runners in self.batches:
            for pid, began in runners:
                if began >= t0 - 0.05:
                    continue
                late = [w for w in starts if w[6] == str(pid) and float(w[5]) > t1]
                if late:
                    self.fault(
                        f"makebatch at {t0:.3f}-{t1:.3f} succeeded while runner {pid} (since {began:.3f}) "
                        f"went on to start {late[0][1]} at {late[0][5]}"
                    )

    def check_table(self, rows: list[dict]) -> None:
        p = subprocess.run([self.mrl, "table", "--json"], cwd=self.proj, env=self.env, capture_output=True, text=True)
        if p.returncode != 0 or any(b in p.stderr for b in BAD):
            self.fault(f"table --json rc={p.returncode}: {p.stderr[-800:]}")
            return
        data = json.loads(p.stdout)
        recs = data if isinstance(data, list) else data.get("rows", data)
        for rec in recs:
            sid = rec.get("id") or rec.get("subExpId")
            subdir = next(
                (d for d in self.exp.iterdir() if d.is_dir() and d.name.isdigit() and int(d.name) == int(sid)), None
            )
            if subdir is None:
                continue
            m = subdir / "metrics.json"
            if not m.exists():
                continue
            met = json.loads(m.read_text())
            row = next((r for r in rows if r.get("id") == int(sid)), None)
            if row is not None and rec.get("state") != row["state"]:
                self.fault(f"table {sid}: state {rec.get('state')} but status says {row['state']}")
            if rec.get("state") == "done" and rec.get("metric.lr", rec.get("lr")) != rec.get("lr"):
                self.fault(f"table {sid}: metric lr {rec.get('metric.lr')} != param lr {rec.get('lr')}")
            for k in ("pid",):
                v = rec.get(k, rec.get(f"metrics.{k}"))
                if v is not None and v != met[k]:
                    self.fault(f"table {sid}: {k}={v} but metrics.json has {met[k]}")

    def leftovers(self) -> None:
        for p in self.exp.rglob("*"):
            if p.name.endswith(".tmp") or ".tmp" in p.name and p.name.startswith("."):
                self.fault(f"leftover temp file {p}")

    def run(self, seconds: float) -> list[str]:
        self.setup()
        self.decoys = [subprocess.Popen(["sleep", "600"], start_new_session=b) for b in (True, False)]
        self.decoys.append(
            subprocess.Popen(
                ["sleep", "600"], env=dict(self.env, MRL_SUBEXP_DIR=str(self.exp / "001")), start_new_session=True
            )
        )
        self.decoy_pids = {d.pid for d in self.decoys}
        try:
            self.actors(seconds)
            self.settle()
            self.leftovers()
            self.check_states(final=False)
            self.check_samples()
            self.check_batches()
            self.mrl_cmd("run", "-j", "2", ok=(0, 1))
            self.settle()
            self.check_states(final=True)
            self.leftovers()
            for d in self.decoys:
                if d.poll() is not None:
                    self.fault(f"decoy {d.pid} died: {d.returncode}")
        finally:
            for d in self.decoys:
                d.kill()
                d.wait()
        return self.faults


def harness_env(folder: Path) -> dict[str, str]:
    """The environment of every command a round runs: a HOME of its own under `folder`, a git
    identity, no MRL_DEBUG (its tracebacks would read as faults)."""
    env = dict(
        os.environ,
        HOME=str(folder / "home"),
        GIT_AUTHOR_NAME="c",
        GIT_AUTHOR_EMAIL="c@c",
        GIT_COMMITTER_NAME="c",
        GIT_COMMITTER_EMAIL="c@c",
    )
    env.pop("MRL_DEBUG", None)
    return env


def reset_signals() -> None:
    # Started in the background by a shell, this process (and so every mrl it starts)
    # would ignore SIGINT; mrl keeps an ignored signal ignored, as documented.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    # A kill of the harness still ends its decoys (the `finally` of Round.run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def report_round(seed: int, r: Any, faults: list[str], took: float, label: str = "", limit: int | None = None) -> None:
    """A round's events.log, its line, the events worth a look and its faults (each cut to
    `limit` characters when given)."""
    (r.dir / "events.log").write_text("\n".join(r.events) + "\n")
    print(f"round {seed}: {len(faults)} fault(s) in {took:.1f}s{label}", flush=True)
    for e in r.events:
        if "SUSPECT" in e or "KNOWN" in e:
            print("    ~", e[:400], flush=True)
    for f in faults:
        print("   ", f.replace("\n", "\n    ")[:limit], flush=True)


def main() -> int:
    reset_signals()
    ap = argparse.ArgumentParser()
    ap.add_argument("--mrl", default="/tmp/chaos-s-venv/bin/mrl")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--root", default="/tmp/chaos-s/rounds")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    root = Path(a.root)
    bad = 0
    for s in range(a.seed, a.seed + a.rounds):
        r = Round(s, a.mrl, root)
        t = time.monotonic()
        faults = r.run(a.seconds)
        report_round(s, r, faults, time.monotonic() - t)
        if faults:
            bad += 1
        elif not a.keep and not any("SUSPECT" in e for e in r.events):
            shutil.rmtree(r.dir, ignore_errors=True)
    print(f"{bad} of {a.rounds} rounds broke an invariant")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
