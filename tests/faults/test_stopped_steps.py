"""A step that is stopped (SIGSTOP; Ctrl-Z in its own terminal; a debugger) when mrl ends it
still runs its SIGTERM handler: mrl sends SIGCONT right after the SIGTERM, as systemd does
(a stopped process only acts on SIGTERM once continued; without it the step ended by
SIGKILL after the grace, and a script that checkpoints on SIGTERM lost its checkpoint)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.processes import start_mrl, statuses, wait_for
from tests.helpers.repo import run_mrl

# a training script that saves a checkpoint on SIGTERM, then exits
CHECKPOINTS = (
    "import os, signal, sys, time\n"
    "def save(*_):\n"
    "    open('checkpoint.txt', 'w').write('saved')\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, save)\n"
    "open('ready.txt', 'w').write(str(os.getpid()))\n"
    "while True:\n"
    "    time.sleep(0.05)\n"
)


def _stopped_step(project: Path) -> tuple[Path, subprocess.Popen[str], int]:
    (project / "ckpt.py").write_text(CHECKPOINTS)
    exp = make_experiment(project, [{"x": 1}], f"{sys.executable} {project / 'ckpt.py'}")
    runner = start_mrl("run", cwd=project)
    ready = exp.dir / "001" / "ready.txt"
    wait_for(lambda: ready.exists() and ready.read_text().strip(), what="the step to be ready")
    pgid = os.getpgid(int(ready.read_text()))
    os.killpg(pgid, signal.SIGSTOP)
    wait_for(lambda: _state(int(ready.read_text())) == "T", what="the step to be stopped")
    return exp.dir / "001", runner, pgid


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("how", ["mrl cancel", "Ctrl-C"])
def test_a_stopped_step_runs_its_sigterm_handler_when_cancelled(project: Path, how: str) -> None:
    sub, runner, _ = _stopped_step(project)
    if how == "mrl cancel":
        proc = run_mrl("cancel", cwd=project)
        assert proc.stdout.strip() == "001: cancelled", proc.stdout + proc.stderr
    else:
        os.kill(runner.pid, signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, out + err
    assert (sub / "checkpoint.txt").read_text() == "saved"  # its handler ran: not SIGKILLed
    assert statuses(sub.parent)["001"]["state"] == "cancelled"
