"""Real `mrl` subprocesses and what they leave: start one, wait for a condition, read the
status records, tell whether a pid is still a live (non-zombie) process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.repo import GIT_ENV, REPO_ROOT

# `mrl ARGS` in a real process that is killed (SIGKILL) right after it started a step,
# before it wrote the record naming that step (the gap between fork and record).
KILLED_AFTER_SPAWN = """
import os, signal, sys
from metarunlog import execute
from metarunlog.main import main
real = execute.spawn_step
def spawned(*a, **k):
    proc = real(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)
    return proc
execute.spawn_step = spawned
sys.exit(main(sys.argv[1:]))
"""


def statuses(exp_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(exp_dir.glob("*/.mrl.status"))}


def start_mrl(
    *args: str,
    cwd: Path,
    new_session: bool = True,
    preexec_fn: Callable[[], object] | None = None,
    script: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """`mrl ARGS` started as a real subprocess of this checkout's code, output piped; in a
    session of its own unless `new_session=False`; `preexec_fn` runs in the child first.
    `script`: Python code run instead of `-m metarunlog` (it calls `main` itself, with
    `sys.argv[1:]` the ARGS); `env`: more environment variables."""
    full_env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, *(["-c", script] if script is not None else ["-m", "metarunlog"]), *args],
        cwd=cwd,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=new_session,
        preexec_fn=preexec_fn,
    )


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def runner_killed_after_spawn(project: Path, command: str = "echo $$ > step.pid; sleep 60") -> tuple[Path, int]:
    """A real `mrl run` killed with -9 right after it started its step, before the record
    naming that step: the step runs on, no record names it. (experiment, the step's pid)"""
    from tests.backends.contract import make_experiment

    exp = make_experiment(project, [{"x": 1}], command)
    return exp.dir, kill_runner_after_spawn(project, exp.dir)


def kill_runner_after_spawn(project: Path, exp_dir: Path, *args: str) -> int:
    """`mrl run ARGS` of `exp_dir`'s experiment 001 killed with -9 right after it started the
    step (which writes its pid to step.pid); the step's pid."""
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", KILLED_AFTER_SPAWN, "run", *args]
    first = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == -9, first.stderr
    pid_file = exp_dir / "001" / "step.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), what="the step's pid")
    return int(pid_file.read_text())
