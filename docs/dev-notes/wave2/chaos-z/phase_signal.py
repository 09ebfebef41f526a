"""Signals at every phase of a command (chaos-z, docs/dev-notes/wave2/chaos-z.md).

A real `mrl CMD` process sends itself SIG at its Nth Python function call (every thread
counted: `sys.setprofile` + `threading.setprofile`), N swept over the command's whole life
(its plan, each step's spawn and record, the summary, the done mark). Then, once every
step it left has ended, the user's next commands (`mrl status`, a plain `mrl run`) must
recover: each sub done, its metrics.json its own params and its own pid, no temp file,
no traceback in any command, exit codes as the signal allows.

    python phase_signal.py [--mrl-python PY] [--sig KILL|INT|TERM|STOP] [--cmd run|cancel|...]
                           [--points 40] [--keep]

`--sig STOP` stops it at that point for 1.5 s, then continues it (Ctrl-Z, fg).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = r"""
import json, os, random, sys, time
c = json.load(open("conf.json"))
time.sleep(random.uniform(0.0, 0.05))
json.dump({"x": c["x"], "pid": os.getpid(), "cwd": os.getcwd()}, open("metrics.json", "w"))
print("step", c["x"])
"""

# the command, with a counter of Python calls that fires SIG at call N (0: count only,
# and print the total to fd 2 as `CALLS n` at exit)
PROBE = r"""
import os, signal, sys, threading, atexit
n, sig = int(sys.argv[1]), sys.argv[2]
seen = [0]
def prof(frame, event, arg):
    if event != "call":
        return
    seen[0] += 1
    if seen[0] == n:
        sys.setprofile(None); threading.setprofile(None)
        if sig == "STOP":
            os.system("(sleep 1.5; kill -CONT %d) &" % os.getpid())
        os.kill(os.getpid(), getattr(signal, "SIG" + sig))
if n:
    sys.setprofile(prof); threading.setprofile(prof)
else:
    sys.setprofile(prof); threading.setprofile(prof)
    atexit.register(lambda: os.write(2, b"CALLS %d\n" % seen[0]))
from metarunlog._entry import run
sys.argv = ["mrl"] + sys.argv[3:]
sys.exit(run())
"""

OK_EXIT = {"KILL": (-9,), "INT": (130, 0, 1), "TERM": (130, 143, -15, 0, 1), "HUP": (129, -1, 0, 1), "STOP": (0,)}


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=check)


def project(root: Path, py: str, n: int) -> Path:
    base = root / "proj"
    base.mkdir()
    env_git = ["-c", "user.email=a@b", "-c", "user.name=a"]
    sh("git", "init", "-q", cwd=base)
    (base / "step.py").write_text(STEP)
    (base / "conf.json").write_text("{\"x\": {{x}}}\n// MRL:grid['x'] = list(range(" + str(n) + "))\n")
    mrl(py, base, "init")
    cfg = json.loads((base / ".mrl.cfg").read_text())
    cfg.update(copyFiles=["conf.json"], confTemplFile="conf.json")
    cfg["run"]["command"] = f"{sys.executable} {{{{codeDir}}}}/step.py"
    (base / ".mrl.cfg").write_text(json.dumps(cfg, indent=1))
    sh("git", *env_git, "add", "-A", cwd=base)
    sh("git", *env_git, "commit", "-qm", "init", cwd=base)
    mrl(py, base, "new", "phase")
    mrl(py, base, "makebatch")
    return base


def mrl(py: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([py, "-m", "metarunlog", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if p.returncode not in (0, 1) or "Traceback" in p.stderr:
        raise SystemExit(f"mrl {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def probed(py: str, cwd: Path, n: int, sig: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([py, "-c", PROBE, str(n), sig, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def steps_alive(exp: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if f"MRL_EXP_DIR={exp}".encode() in env or f"MRL_SUBEXP_DIR={exp}/".encode() in env:
            out.append(int(d.name))
    return out


def settle(exp: Path, limit: float = 30) -> None:
    t = time.monotonic()
    while steps_alive(exp) and time.monotonic() - t < limit:
        time.sleep(0.1)


def check(base: Path, py: str, label: str, first: subprocess.CompletedProcess[str], sig: str) -> list[str]:
    faults = []
    exp = base / "output" / "0001"
    if first.returncode not in OK_EXIT[sig] and not (sig != "KILL" and first.returncode in (0, 1)):
        faults.append(f"{label}: exit {first.returncode}\n{first.stdout[-800:]}\n{first.stderr[-1500:]}")
    for bad in ("Traceback", "internal error", "Exception ignored"):
        if bad in first.stderr:
            faults.append(f"{label}: {bad} in its stderr\n{first.stderr[-2000:]}")
    settle(exp)
    for args in (["status"], ["status", "--json"], ["table", "--json"]):
        p = subprocess.run([py, "-m", "metarunlog", *args], cwd=base, capture_output=True, text=True, timeout=120)
        if p.returncode not in (0, 1) or "Traceback" in p.stderr:
            faults.append(f"{label}: mrl {' '.join(args)} after: {p.returncode}\n{p.stderr[-1500:]}")
    status = json.loads(
        subprocess.run([py, "-m", "metarunlog", "status", "--json"], cwd=base, capture_output=True, text=True).stdout
        or "[]"
    )
    rows = status if isinstance(status, list) else status.get("subexps", status.get("rows", []))
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("state") in ("running", "queued"):
            faults.append(f"{label}: after settling, {row.get('id')} reads {row.get('state')}")
    again = subprocess.run([py, "-m", "metarunlog", "run"], cwd=base, capture_output=True, text=True, timeout=120)
    if again.returncode != 0 or "Traceback" in again.stderr:
        faults.append(f"{label}: the next plain run: {again.returncode}\n{again.stdout[-800:]}\n{again.stderr[-800:]}")
    for sub in sorted(p for p in exp.iterdir() if p.is_dir() and p.name.isdigit()):
        conf = json.loads((sub / "conf.json").read_text())
        rec = json.loads((sub / ".mrl.status").read_text()) if (sub / ".mrl.status").exists() else {}
        try:
            m = json.loads((sub / "metrics.json").read_text())
        except (OSError, ValueError) as e:
            faults.append(f"{label}: {sub.name} metrics.json: {e}")
            continue
        if m.get("x") != conf["x"] or m.get("cwd") != str(sub):
            faults.append(f"{label}: {sub.name} holds another's metrics {m}")
        if rec.get("state") != "done":
            faults.append(f"{label}: {sub.name} is {rec.get('state')} after the next run")
    tmps = [str(p) for p in exp.rglob("*.tmp")] + [str(p) for p in (base / "output").glob(".*.tmp")]
    if tmps:
        faults.append(f"{label}: temp files left: {tmps}")
    return faults


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mrl-python", default="/tmp/chaos-z-venv/bin/python")
    ap.add_argument("--sig", default="KILL")
    ap.add_argument("--cmd", default="run -j 2")
    ap.add_argument("--subs", type=int, default=4)
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--first", type=int, default=0, help="start at this call (0: from 1)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    py, args = a.mrl_python, a.cmd.split()
    root = Path(tempfile.mkdtemp(prefix="chaos-z-phase-"))
    try:
        base = project(root, py, a.subs)
        pristine = root / "pristine"
        shutil.copytree(base, pristine, symlinks=True)
        counted = probed(py, base, 0, a.sig, args)
        total = int(counted.stderr.rsplit("CALLS ", 1)[1].split()[0])
        print(f"mrl {a.cmd}: {total} Python calls", flush=True)
        points = sorted({max(20, a.first + int((total - a.first) * i / a.points)) for i in range(a.points)})
        all_faults = []
        for n in points:
            shutil.rmtree(base)
            shutil.copytree(pristine, base, symlinks=True)
            first = probed(py, base, n, a.sig, args)
            faults = check(base, py, f"SIG{a.sig} at call {n}", first, a.sig)
            print(f"call {n:>7}: exit {first.returncode:>4} {'FAULT' if faults else 'ok'}", flush=True)
            for f in faults:
                print("   ", f.replace("\n", "\n    "), flush=True)
            all_faults += faults
        print(f"{len(all_faults)} fault(s) over {len(points)} points")
        return 1 if all_faults else 0
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept", root)


if __name__ == "__main__":
    sys.exit(main())
