"""Records damaged or edited by hand, x every command (chaos-z).

A fresh project with one experiment of 3 done sub-experiments (copied per case); one file
is damaged (emptied, cut, binary, NUL, a folder, a symlink to a file outside, a FIFO, or a
JSON edit with wrong types / another id), then each command runs with a timeout. A fault:
a traceback, "internal error", an exit other than 0/1, a hang (timeout), more than one
`mrl: error:` line, the outside file changed, or a FIFO left blocking.

    python damage.py [--mrl-python PY] [--only SUBSTRING] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STEP = (
    'import json, os; c = json.load(open("conf.json"))\n'
    'json.dump({"x": c["x"], "loss": c["x"] / 10}, open("metrics.json", "w"))\n'
)

COMMANDS = [
    ["ls"],
    ["ls", "--json"],
    ["info"],
    ["info", "1/1"],
    ["info", "--json"],
    ["status"],
    ["status", "--json"],
    ["table"],
    ["table", "--json"],
    ["table", "--summary", "best"],
    ["diff", "1/1", "1/2"],
    ["analyze"],
    ["analyze", "--index"],
    ["tag", "1", "+t"],
    ["verify"],
    ["cancel"],
    ["run"],
    ["run", "--force", "1/1"],
    ["makebatch", "--extend", "--grid", "x=0,1,2,3"],
    ["rerun", "1", "--failed"],
    ["new", "after damage"],
]

OUTSIDE_TEXT = "someone else's file\n"


def damages(outside: Path) -> list[tuple[str, str, object]]:
    """(target relative to the project, label, damage); damage: bytes, a JSON value, or a str kind."""
    sub_json = [
        {"subExpId": "1", "params": {"x": 0}},
        {"subExpId": 2, "params": {"x": 1}},  # another sub's id
        {"subExpId": 1, "params": [1, 2]},
        {"subExpId": 1, "params": {"x": 5}},  # params edited: not what ran
        {"subExpId": True, "params": {"x": 0}},
        {"subExpId": 1e300, "params": {"x": 0}},
        {"subExpId": 1},
        {"params": {"x": 0}},
        [],
        {"subExpId": 1, "params": {"x": 0}, "extra": "x" * 1000},
    ]
    exp_json_edits = [
        {"expId": "x"},
        {"expId": 2},
        {"expId": None},
        {"run": "oops"},
        {"run": {"command": 5}},
        {"run": {"command": ["echo", None]}},
        {"basedir": 5},
        {"gitHash": None},
        {"tags": "abc"},
        {"tags": [1, None]},
        {"batch": "x"},
        {"batch": {"n": "many"}},
        {"batch": {"n": -1}},
        {"timestamp": 5},
        {"timestamp": "not a time"},
        {"description": ["a"]},
        {"snapshot": "x"},
        {"copied": [1]},
    ]
    status_json = [
        {"state": "running", "pid": 1, "runnerPid": 1},
        {"state": "running", "pid": os.getpid(), "runnerPid": os.getpid()},
        {"state": "done", "exitCode": "0"},
        {"state": "done", "duration": "x"},
        {"state": "done", "duration": 1e309},
        {"state": "done", "start": 5},
        {"state": "failed", "exitCode": 1.5},
        {"state": "queued", "runnerPid": -1},
        {"state": "running", "pid": 0, "runnerPid": 0},
        {"state": "running", "pid": 2**70, "runnerPid": 2**70},
        {"state": "done", "attempts": -3},
        {"state": "done", "steps": "x", "stepsDone": None},
        {"state": ["done"]},
    ]
    raw = {
        "empty": b"",
        "cut": b'{"subExpId": 1, "par',
        "binary": bytes(range(256)),
        "nul": b"\0" * 64,
        "latin1": b'{"x": "caf\xe9"}',
        "deep": b"[" * 100000,
    }
    kinds = ["dir", "symlink", "fifo", "symlink-loop", "unreadable"]
    out: list[tuple[str, str, object]] = []
    for target in (
        "E/001/.mrl",
        "E/.mrl",
        "E/001/.mrl.status",
        "E/001/.mrl.lock",
        "E/.mrl.done",
        "E/.mrl.owners",
        "O/.mrl.last.lock",
        "E/001/metrics.json",
        "E/001/run.log",
        "E/.mrl.cfg",
        "E/001/conf.json",
        "E/.mrl.note",
        "last",
    ):
        for label, data in raw.items():
            out.append((target, label, data))
        for kind in kinds:
            out.append((target, kind, kind))
    for i, d in enumerate(sub_json):
        out.append(("E/001/.mrl", f"json{i}", d))
    for i, d in enumerate(exp_json_edits):
        out.append(("E/.mrl", f"edit{i}", ("edit", d)))
    for i, d in enumerate(status_json):
        out.append(("E/001/.mrl.status", f"status{i}", ("edit", d)))
    return out


def mrl(py: str, cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@b", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@b"
    )
    return subprocess.run(
        [py, "-m", "metarunlog", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def make_project(root: Path, py: str) -> Path:
    base = root / "proj"
    base.mkdir()
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q"], cwd=base, check=True)
    (base / "step.py").write_text(STEP)
    (base / "conf.json").write_text("{\"x\": {{x}}}\n// MRL:grid['x'] = [0, 1, 2]\n")
    assert mrl(py, base, "init").returncode == 0
    cfg = json.loads((base / ".mrl.cfg").read_text())
    cfg.update(copyFiles=["conf.json"], confTemplFile="conf.json")
    cfg["run"]["command"] = f"{sys.executable} {{{{codeDir}}}}/step.py"
    (base / ".mrl.cfg").write_text(json.dumps(cfg, indent=1))
    subprocess.run([*git, "add", "-A"], cwd=base, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=base, check=True)
    for args in (["new", "damage"], ["makebatch"], ["run"]):
        p = mrl(py, base, *args)
        assert p.returncode == 0, p.stderr
    return base


def apply(base: Path, target: str, damage: object, outside: Path) -> None:
    path = base / target.replace("E/", "output/0001/", 1).replace("O/", "output/", 1)
    if isinstance(damage, tuple):  # a JSON edit of the record
        data = json.loads(path.read_text())
        data.update(damage[1])
        path.write_text(json.dumps(data))
        return
    if isinstance(damage, (dict, list)):
        path.write_text(json.dumps(damage))
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    elif damage == "dir":
        path.mkdir()
    elif damage == "symlink":
        path.symlink_to(outside)
    elif damage == "symlink-loop":
        path.symlink_to(path.name)
    elif damage == "fifo":
        os.mkfifo(path)
    elif damage == "unreadable":
        path.write_text("{}")
        path.chmod(0)  # root reads it anyway; kept for non-root runs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mrl-python", default="/tmp/chaos-z-venv/bin/python")
    ap.add_argument("--only", default="")
    ap.add_argument("--commands", default="", help="comma-separated command names to keep")
    ap.add_argument("--timeout", type=float, default=20, help="seconds before a command counts as hung")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="chaos-z-damage-"))
    outside = root / "outside.txt"
    faults = 0
    try:
        pristine = make_project(root, a.mrl_python)
        base = root / "case"
        commands = [c for c in COMMANDS if not a.commands or c[0] in a.commands.split(",")]
        for target, label, damage in damages(outside):
            case = f"{target}:{label}"
            if a.only and a.only not in case:
                continue
            for args in commands:
                if base.exists():
                    shutil.rmtree(base)
                shutil.copytree(pristine, base, symlinks=True)
                # the copy's records name the pristine folder: point them here
                for rec in base.rglob(".mrl"):
                    if rec.is_file():
                        rec.write_text(rec.read_text().replace(str(pristine), str(base)))
                outside.write_text(OUTSIDE_TEXT)
                apply(base, target, damage, outside)
                try:
                    p = mrl(a.mrl_python, base, *args, timeout=a.timeout)
                except subprocess.TimeoutExpired:
                    print(f"FAULT {case} mrl {' '.join(args)}: hung ({a.timeout:.0f} s)", flush=True)
                    faults += 1
                    continue
                bad = []
                if p.returncode not in (0, 1):
                    bad.append(f"exit {p.returncode}")
                for word in ("Traceback", "internal error", "Exception ignored"):
                    if word in p.stderr:
                        bad.append(word)
                if sum(ln.startswith("mrl: error:") for ln in p.stderr.splitlines()) > 1:
                    bad.append("several error lines")
                if outside.read_text() != OUTSIDE_TEXT:
                    bad.append("wrote the outside file")
                if bad:
                    faults += 1
                    print(
                        f"FAULT {case} mrl {' '.join(args)}: {', '.join(bad)}\n    "
                        + p.stderr[-1500:].replace("\n", "\n    "),
                        flush=True,
                    )
        print(f"{faults} fault(s)")
        return 1 if faults else 0
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
