"""What a step leaves behind never keeps `.mrl.lock`, and its process group is stopped
with escalation to SIGKILL when the step ends (issue 10, "Jobs that cannot be run or
stopped")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from metarunlog.locks import is_running
from tests.backends.contract import make_experiment
from tests.helpers.processes import alive, statuses
from tests.helpers.repo import run_mrl


def test_a_daemon_left_by_a_step_does_not_keep_the_lock(project: Path) -> None:
    daemon = "setsid sh -c 'echo $$ > daemon.pid; exec sleep 60' > /dev/null 2>&1 < /dev/null &"
    exp = make_experiment(project, [{"x": 1}], daemon + " while [ ! -s daemon.pid ]; do sleep 0.01; done")
    sub = exp.dir / "001"
    proc = run_mrl("run", cwd=project)
    daemon = int((sub / "daemon.pid").read_text())
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert alive(daemon)  # it left the step's group: not ours to track, but it holds nothing
        assert not is_running(sub)
        again = run_mrl("run", "--force", cwd=project)
        assert again.returncode == 0 and "left to another runner" not in again.stdout, again.stdout
        assert statuses(exp.dir)["001"]["attempts"] == 2
        cancel = run_mrl("cancel", cwd=project)
        assert "nothing is running" in cancel.stdout
    finally:
        for p in (sub / "daemon.pid").read_text().split():
            if alive(int(p)):
                os.kill(int(p), signal.SIGKILL)


def test_a_background_job_ignoring_sigterm_is_killed_when_its_step_ends(project: Path) -> None:
    bg = "sh -c 'trap \"\" TERM; echo $$ > bg.pid; while :; do sleep 1; done' > /dev/null 2>&1 &"
    exp = make_experiment(project, [{"x": 1}], bg + " while [ ! -s bg.pid ]; do sleep 0.01; done")
    sub = exp.dir / "001"
    proc = run_mrl("run", cwd=project)
    bg = int((sub / "bg.pid").read_text())
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not alive(bg)  # SIGTERM ignored, then SIGKILL
        assert not is_running(sub)
        assert statuses(exp.dir)["001"]["state"] == "done"
    finally:
        if alive(bg):
            os.kill(bg, signal.SIGKILL)
