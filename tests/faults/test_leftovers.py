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


def test_a_leftover_ignoring_sigterm_does_not_hold_up_the_other_slots(project: Path) -> None:
    # 001 leaves a child that ignores SIGTERM (SIGKILLed 2 s after 001 ended); 002 ends
    # 0.3 s after 001, and 003 starts in its slot: it must find that child still alive,
    # i.e. the pool did not wait for another slot's leftovers before recording 002 and
    # starting 003 (one thread drives every slot).
    bg = "sh -c 'trap \"\" TERM; echo $$ > bg.pid; while :; do sleep 1; done' > /dev/null 2>&1 &"
    steps = {
        1: bg + " while [ ! -s bg.pid ]; do sleep 0.01; done",
        2: "while [ ! -s ../001/bg.pid ]; do sleep 0.01; done; sleep 0.3",
        3: "p=$(cat ../001/bg.pid); "
        "if [ -d /proc/$p ] && ! grep -q ') Z' /proc/$p/stat; then echo alive; else echo gone; fi > seen",
    }
    command = "{% if x == 1 %}" + steps[1] + "{% elif x == 2 %}" + steps[2] + "{% else %}" + steps[3] + "{% endif %}"
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], command)
    proc = run_mrl("run", "-j", "2", cwd=project)
    bg_pid = int((exp.dir / "001" / "bg.pid").read_text())
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (exp.dir / "003" / "seen").read_text().strip() == "alive"
        assert not alive(bg_pid)  # still stopped before `mrl run` returns
        assert all(s["state"] == "done" for s in statuses(exp.dir).values())
    finally:
        if alive(bg_pid):
            os.kill(bg_pid, signal.SIGKILL)
