"""chaos-u's harness (../chaos-u/chaos_u.py, itself chaos-s's), widened with ordinary
environment faults, hooks and damaged records (chaos-w, docs/dev-notes/wave2/chaos-w.md).

Everything chaos_u.py does (runners, kill -9/INT/TERM/HUP, SIGSTOP, cancel, -replace /
--extend, readers, hostile names, decoys, --full), plus, at random moments:
- read-only: the experiment folder, or one sub-experiment's, bind-mounted read-only over
  itself for 0.2-1.5 s (EROFS even for root), then unmounted;
- a low open-file limit: a runner, a reader or makebatch started with RLIMIT_NOFILE 10-40;
- lost streams: a command whose stdout is a pipe with no reader or /dev/full, or whose
  stderr is /dev/full;
- a closed terminal: a runner (or `analyze --watch`) in a pty of its own, whose master
  is closed after 0.1-1.5 s (SIGHUP, then EIO on every write);
- the process tree: SIGKILL, or SIGSTOP..SIGCONT, of one random process under a runner
  (a step's shell, its python, the step's `sleep` child);
- hooks (`mrl_hooks.py`, before_/after_ of run, status, table, makebatch, cancel,
  analyze): each command draws one behaviour per hook: nothing, hang 0.1-1 s, raise, exit
  2, leave a child (inheriting stdout) or a daemon (setsid, with a look-alike
  MRL_SUBEXP_DIR and MRL_ATTEMPT in its environment and `step.py` in its argv);
- steps that print huge (1-3 MB, no newline) or binary lines, ANSI escapes and `\\r`;
- decoys: besides chaos-s's, a look-alike `python3 .../step.py` (MRL_SUBEXP_DIR,
  MRL_ATTEMPT, MRL_EXP_DIR of this experiment) started before the first runner;
- once the round settled: records damaged by hand (a sub's `.mrl.status` or
  `metrics.json` truncated, emptied, binary or NUL bytes), then every reader and a run:
  one line, no traceback; then the damage is undone by the user's remedy (the record
  removed or restored) and the final plain run must recover.

Invariants: chaos_u's (done => its own metrics from its own last step that ended 0,
no OVERLAP, no traceback, decoys alive, no process of the experiment left, ...) and
the exit codes of each command as this fault allows.

    python chaos_w.py [--mrl PATH] [--rounds N] [--seed S] [--seconds T] [--full] [--keep]
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "chaos-u"))
sys.path.insert(0, str(HERE.parent / "chaos-s"))
import chaos  # noqa: E402
import chaos_u  # noqa: E402

HOOKED = ["run", "status", "table", "makebatch", "cancel", "analyze"]

HOOKS = r"""
import json, os, subprocess, sys, time
def _act(name):
    mode = os.environ.get("CHAOS_HOOK_" + name, "")
    if mode.startswith("hang"):
        time.sleep(float(mode[4:]))
    elif mode == "raise":
        raise RuntimeError("chaos " + name)
    elif mode == "exit2":
        sys.exit(2)
    elif mode == "child":
        subprocess.Popen(["sleep", "1.5"])
    elif mode.startswith("daemon:"):
        env = dict(os.environ, MRL_SUBEXP_DIR=mode[7:], MRL_ATTEMPT="1")
        # a signal from anyone (mrl must never send one: not its process) is logged
        code = ("import os, signal, sys, time\n"
                "def hit(n, f):\n"
                "    open(os.environ['CHAOS_HOOK_LOG'], 'a').write('SIGNALLED %d %d\\n' % (os.getpid(), n))\n"
                "    sys.exit(0)\n"
                "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1): signal.signal(s, hit)\n"
                "time.sleep(2.5)\n")
        subprocess.Popen(["python3", "-c", code, "step.py"], env=env,
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _cmd in HOOKED:
    for _when in ("before", "after"):
        globals()[_when + "_" + _cmd] = (lambda n: lambda mrl, args: _act(n))(_when + "_" + _cmd)
""".replace("HOOKED", repr(HOOKED))

# The step also prints hostile output: a huge line without newline, binary, escapes.
NOISE = r"""
noise = rng.random()
if noise < 0.08:
    sys.stdout.write("x" * rng.randint(1_000_000, 3_000_000)); sys.stdout.flush()
elif noise < 0.16:
    sys.stdout.buffer.write(os.urandom(rng.randint(100, 5000))); sys.stdout.flush()
elif noise < 0.24:
    sys.stdout.write("\x1b[2J\x1b[31mred\rover\x07\x1b]0;title\x07\n" * 50); sys.stdout.flush()
"""
# A read-only folder makes the step's own files fail (its guard, a slot file): it says so
# (exit 4) rather than print a traceback that would read as mrl's in `mrl run`'s log tail.
QUIET = """
def quiet(kind, e, tb):
    log("end", sub, os.getpid(), 4, time.time())
    sys.stderr.write("step error: %s: %s\\n" % (kind.__name__, e))
    os._exit(4)
sys.excepthook = quiet
"""
STEP = chaos_u.STEP.replace(
    "time.sleep(rng.uniform(0.005, 0.5))", NOISE.strip() + "\ntime.sleep(rng.uniform(0.005, 0.5))"
)
STEP = STEP.replace("guard = open(", QUIET.lstrip("\n") + "guard = open(", 1)
assert "noise" in STEP and "quiet" in STEP


class Round(chaos_u.Round):
    def __init__(self, seed: int, mrl: str, root: Path, full: bool) -> None:
        super().__init__(seed, mrl, root, full)
        self.ro_mounts: list[Path] = []
        self.ro_lock = threading.Lock()
        self.lost_ok: set[int] = set()  # pids whose output was meant to be lost
        self.calm = False  # the final run: no hook behaves oddly
        self.ro_epoch = 0  # read-only mounts made so far: a command that met one may exit 1
        self.epoch_at: dict[int, int] = {}

    # ---- setup: hooks, the noisy step ----
    def setup(self) -> None:
        saved = chaos_u.STEP
        chaos_u.STEP = STEP
        try:
            super().setup()
        finally:
            chaos_u.STEP = saved
        (self.proj / "mrl_hooks.py").write_text(HOOKS)
        cfg = json.loads((self.proj / ".mrl.cfg").read_text())
        cfg["hooks"] = {f"{w}_{c}": {} for c in HOOKED for w in ("before", "after")}
        (self.proj / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
        subprocess.run(["git", "add", "."], cwd=self.proj, env=self.env, check=True)
        subprocess.run(["git", "commit", "-qm", "hooks"], cwd=self.proj, env=self.env, check=True)

    def hook_env(self) -> dict[str, str]:
        env = dict(self.env, CHAOS_HOOK_LOG=str(self.dir / "hooks.log"))
        if self.calm:
            return env
        for c in HOOKED:
            for w in ("before", "after"):
                r = self.rng.random()
                if r < 0.7:
                    continue
                mode = self.rng.choice(["hang", "raise", "exit2", "child", "daemon"])
                if mode == "hang":
                    mode = f"hang{self.rng.uniform(0.1, 1):.2f}"
                elif mode == "daemon":
                    mode = f"daemon:{self.exp / f'{self.rng.randint(1, max(1, self.count)):03d}'}"
                env[f"CHAOS_HOOK_{w}_{c}"] = mode
        return env

    # ---- commands: hooks, low limits, lost streams ----
    def mrl_cmd(self, *args: str, ok: tuple[int, ...] = (0, 1), wait: bool = True, **how: object) -> subprocess.Popen:
        env = self.hook_env()
        lowfd = how.get("lowfd")
        lost = how.get("lost")
        kw: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        closers: list[int] = []
        if lost == "stdout-closed":
            r, w = os.pipe()
            os.close(r)
            kw["stdout"] = w
            closers.append(w)
        elif lost == "stdout-full":
            kw["stdout"] = os.open("/dev/full", os.O_WRONLY)
            closers.append(kw["stdout"])  # type: ignore[arg-type]
        elif lost == "stderr-full":
            kw["stderr"] = os.open("/dev/full", os.O_WRONLY)
            closers.append(kw["stderr"])  # type: ignore[arg-type]

        def pre() -> None:
            if lowfd:
                resource.setrlimit(resource.RLIMIT_NOFILE, (int(lowfd), int(lowfd)))  # type: ignore[call-overload]

        p = subprocess.Popen(
            [self.mrl, *args],
            cwd=self.proj,
            env=env,
            text=True,
            start_new_session=True,
            preexec_fn=pre,
            **kw,  # type: ignore[call-overload]
        )
        self.epoch_at[p.pid] = self.ro_epoch
        for fd in closers:
            os.close(fd)
        hooks = " ".join(f"{k[11:]}={v[:12]}" for k, v in env.items() if k.startswith("CHAOS_HOOK_"))
        if any(v in ("raise", "exit2") for k, v in env.items() if k.startswith("CHAOS_HOOK_")):
            ok = tuple(sorted({*ok, 1}))  # a hook that fails: one error line, exit 1
        self.note(f"start pid={p.pid} mrl {' '.join(args)} lowfd={lowfd} lost={lost} hooks[{hooks}]")
        if lost:
            self.lost_ok.add(p.pid)
        if wait:
            self.finish(p, list(args), ok)
        return p

    def finish(self, p: subprocess.Popen, args: list[str], ok: tuple[int, ...], timeout: float = 90) -> None:
        with self.lock:
            before = len(self.faults)
        super().finish(p, args, ok, timeout)
        if self.ro_epoch != self.epoch_at.get(p.pid) or self.ro_mounts:  # it met a read-only folder
            with self.lock:  # exit 1 with one error line is then right (the traceback check stays)
                wrong = f"mrl {' '.join(args)} exit 1 not in"
                self.faults[before:] = [f for f in self.faults[before:] if not f.startswith(wrong)]

    def start_runner(self) -> None:
        r = self.rng.random()
        if r < 0.12:
            return self.pty_runner()
        if r < 0.22:
            args = ["run", "-j", str(self.rng.randint(1, 3))]
            how = self.rng.choice(
                [
                    {"lowfd": self.rng.randint(10, 40)},
                    {"lost": "stdout-closed"},
                    {"lost": "stdout-full"},
                    {"lost": "stderr-full"},
                ]
            )
            p = self.mrl_cmd(*args, wait=False, **how)
            with self.lock:
                self.runners.append((p, args, time.monotonic(), time.time()))
            threading.Thread(target=self.finish, args=(p, args, (0, 1, 129, 130, 143)), daemon=True).start()
            return
        super().start_runner()

    def pty_runner(self) -> None:
        """A runner (or analyze --watch) in a terminal of its own that is then closed."""
        args = (
            ["run", "-j", str(self.rng.randint(1, 3))]
            if self.rng.random() < 0.7
            else ["analyze", "1", "--watch", "0.3"]
        )
        master, slave = pty.openpty()
        err_path = self.dir / f"pty-err-{time.monotonic_ns()}"

        def pre() -> None:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        with open(err_path, "w") as ef:
            stderr = slave if self.rng.random() < 0.5 else ef
            p = subprocess.Popen(
                [self.mrl, *args],
                cwd=self.proj,
                env=self.hook_env(),
                stdin=slave,
                stdout=slave,
                stderr=stderr,
                preexec_fn=pre,
            )
        os.close(slave)
        self.note(f"start pid={p.pid} mrl {' '.join(args)} in a pty")
        if args[0] == "run":
            with self.lock:
                self.runners.append((p, args, time.monotonic(), time.time()))
        out = b""
        until = time.monotonic() + self.rng.uniform(0.1, 1.5)
        while time.monotonic() < until and p.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        self.signalled.setdefault(p.pid, set()).add(int(signal.SIGHUP))
        os.close(master)
        self.note(f"closed the terminal of {p.pid}")
        try:
            rc = p.wait(90)
        except subprocess.TimeoutExpired:
            self.fault(f"mrl {' '.join(args)} in a closed pty hung")
            p.kill()
            rc = p.wait()
        err = err_path.read_text(errors="replace")
        err_path.unlink()
        text = err + out.decode(errors="replace")
        self.note(f"end pid={p.pid} rc={rc} mrl {' '.join(args)} (pty) :: {text.strip()[-300:]!r}")
        if any(b in text for b in chaos.BAD):
            self.fault(f"traceback from mrl {' '.join(args)} in a closed pty rc={rc}: {text[-1500:]}")
        if rc not in (0, 1, 129, 130, -1):
            self.fault(f"mrl {' '.join(args)} in a closed pty exit {rc}")

    def makebatch(self) -> None:
        # the harness's own edit of the template may meet a read-only experiment too
        try:
            super().makebatch()
        except OSError as e:
            if e.errno != errno.EROFS:
                raise
            while self.ro_mounts:
                time.sleep(0.05)
            (self.exp / "conf.json").write_text(self.template())
            self.note(f"the template edit met a read-only experiment: {e}")

    # ---- new actors ----
    def read_only(self) -> None:
        with self.lock:
            subs = [d for d in self.exp.iterdir() if d.is_dir() and d.name.isdigit()] if self.exp.exists() else []
        target = self.exp if not subs or self.rng.random() < 0.4 else self.rng.choice(subs)
        with self.ro_lock:
            # one at a time: a sub's mount under the experiment's would outlive both umounts
            if self.ro_mounts or mount("--bind", str(target), str(target)) != 0:
                return
            self.ro_mounts.append(target)
            self.ro_epoch += 1
            subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True)
        self.note(f"read-only {target}")
        time.sleep(self.rng.uniform(0.2, 1.5))
        with self.ro_lock:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
            self.ro_mounts.remove(target)
        self.note(f"writable {target}")

    def lowfd_reader(self) -> None:
        what = self.rng.choice(
            [["status"], ["table", "--json"], ["analyze"], ["cancel"], ["tag", "1", "+x"], ["info", "1/1"]]
        )
        self.mrl_cmd(
            *what,
            ok=(0, 1),
            **self.rng.choice(
                [
                    {"lowfd": self.rng.randint(10, 40)},
                    {"lost": "stdout-closed"},
                    {"lost": "stdout-full"},
                    {"lost": "stderr-full"},
                ]
            ),
        )

    def tree_signal(self) -> None:
        with self.lock:
            live = [r[0].pid for r in self.runners if r[0].poll() is None]
        if not live:
            return
        runner = self.rng.choice(live)
        tree = descendants(runner)
        if not tree:
            return
        pid = self.rng.choice(tree)
        if self.rng.random() < 0.5:
            self.note(f"SIGKILL -> {pid} under runner {runner}: {cmdline(pid)[:80]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        else:
            self.stop_cont(pid, self.rng.uniform(0.1, 1.5), f"tree process under {runner}")

    def rm_sub(self) -> None:
        """`rm -rf` of one sub-experiment folder (running or not), as a user cleaning up."""
        subs = [d for d in self.exp.iterdir() if d.is_dir() and d.name.isdigit()] if self.exp.exists() else []
        if len(subs) > 2:
            victim = self.rng.choice(subs)
            self.note(f"rm -rf {victim}")
            shutil.rmtree(victim, ignore_errors=True)

    def clock_reader(self) -> None:
        """A reader whose clock is a day or years off (as after a clock step)."""
        if shutil.which("faketime") is None:
            return
        off = self.rng.choice(["-1d", "+1d", "-10y", "+30y", "@1970-01-01 00:00:01"])
        what = self.rng.choice([["status", "--json"], ["table", "--json"], ["info", "1/1"], ["cancel"], ["ls"]])
        # (not FAKETIME_DONT_FAKE_MONOTONIC: libfaketime then makes every time.sleep EINVAL)
        env = dict(self.env)
        p = subprocess.run(
            ["faketime", "-f", off, self.mrl, *what],
            cwd=self.proj,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
        )
        self.note(f"faketime {off} mrl {' '.join(what)} rc={p.returncode} :: {p.stderr.strip()[-200:]!r}")
        if p.returncode not in (0, 1) or any(b in p.stderr for b in chaos.BAD):
            self.fault(f"faketime {off} mrl {' '.join(what)} rc={p.returncode}: {p.stderr[-800:]}")

    def actions(self) -> dict[str, tuple[Any, float]]:
        acts = super().actions()
        acts["signal"] = (self.signal_runner, 1.5)
        acts["cancel"] = (self.cancel, 1.2)
        acts["pause"] = (self.pause, 0.8)
        acts.update(
            ro=(self.read_only, 0.8),
            lowfd=(self.lowfd_reader, 1),
            tree=(self.tree_signal, 1),
            rmsub=(self.rm_sub, 0.3),
            clock=(self.clock_reader, 0.6),
        )
        return acts

    settle_s = 3  # the hooks' daemons (2.5 s) end

    def actors(self, seconds: float) -> None:
        # a look-alike of a step of 002 (its variables, `step.py` in its argv), older than every runner
        look_alike = dict(self.env, MRL_SUBEXP_DIR=str(self.exp / "002"), MRL_ATTEMPT="1", MRL_EXP_DIR=str(self.exp))
        argv = ["python3", "-c", "import time; time.sleep(600)", str(self.proj / "step.py")]
        self.decoys.append(subprocess.Popen(argv, env=look_alike, start_new_session=True))
        self.decoy_pids.add(self.decoys[-1].pid)
        super().actors(seconds)

    # ---- damaged records, once settled ----
    def damage(self) -> None:
        subs = sorted(d for d in self.exp.iterdir() if d.is_dir() and d.name.isdigit())
        if not subs:
            return
        victim = self.rng.choice(subs) / self.rng.choice([".mrl.status", "metrics.json"])
        if not victim.exists():
            return
        saved = victim.read_bytes()
        how = self.rng.choice(["truncate", "empty", "binary", "nul", "list"])
        data = {
            "truncate": saved[: self.rng.randint(0, max(0, len(saved) - 1))],
            "empty": b"",
            "binary": os.urandom(self.rng.randint(1, 400)),
            "nul": b"\0" * self.rng.randint(1, 4096),
            "list": b"[1, 2]",
        }[how]
        victim.write_bytes(data)
        self.note(f"damaged {victim} ({how})")
        for args in (
            ["status"],
            ["status", "--json"],
            ["table"],
            ["table", "--json"],
            ["info", f"1/{victim.parent.name}"],
            ["analyze"],
            ["run", "--dry-run"],
            ["ls"],
        ):
            p = subprocess.run(
                [self.mrl, *args], cwd=self.proj, env=self.env, capture_output=True, text=True, errors="replace"
            )
            if p.returncode not in (0, 1) or any(b in p.stderr for b in chaos.BAD):
                self.fault(
                    f"mrl {' '.join(args)} with {victim.name} damaged ({how}) rc={p.returncode}: {p.stderr[-800:]}"
                )
        # the remedy mrl names ("fix or remove the file"): the metrics are restored, a status removed
        if victim.name == "metrics.json":
            victim.write_bytes(saved)
        else:
            victim.unlink()
            (victim.parent / "metrics.json").unlink(missing_ok=True)  # a sub with no record must not be "done"

    def check_batches(self) -> None:
        # chaos-s's check, for runners proved to own the experiment before the makebatch (a step
        # of theirs had started): a runner stopped, or held by a hanging before_run hook, in its
        # first moments may not have claimed it yet, and may then rightly run the new subs
        starts = [w.split() for w in (self.log.read_text().splitlines() if self.log.exists() else [])]
        starts = [w for w in starts if w[0] == "start"]
        for t0, t1, runners in self.batches:
            for pid, _ in runners:
                mine = [w for w in starts if w[6] == str(pid)]
                late = [w for w in mine if float(w[5]) > t1]
                if late and any(float(w[5]) < t0 for w in mine):
                    self.fault(
                        f"makebatch at {t0:.3f}-{t1:.3f} succeeded while runner {pid}, which had started steps, "
                        f"went on to start {late[0][1]} at {late[0][5]}"
                    )

    def check_grid(self) -> None:
        hooks_log = self.dir / "hooks.log"
        for line in hooks_log.read_text().splitlines() if hooks_log.exists() else []:
            self.fault(f"a hook's daemon (a look-alike of a step, not mrl's) was signalled: {line}")
        super().check_grid()
        self.damage()  # chaos_u's run: the last check before the final plain run
        self.calm = True  # which runs with no hook failing and every limit as usual

    def run(self, seconds: float) -> list[str]:
        try:
            return super().run(seconds)
        finally:
            for m in list(self.ro_mounts):
                subprocess.run(["umount", "-l", str(m)], capture_output=True)


def mount(*args: str) -> int:
    return subprocess.run(["mount", *args], capture_output=True).returncode


def descendants(pid: int) -> list[int]:
    """Every live process under `pid` (by parent links in /proc)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def main() -> int:
    return chaos_u.main(Round, "/tmp/chaos-w-venv/bin/mrl", "/tmp/chaos-w/rounds")


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
