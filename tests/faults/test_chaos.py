"""Faults a randomized race/fault harness found (docs/dev-notes/wave2/chaos-s.md), each
reduced to a deterministic case: real mrl processes, real signals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.processes import KILLED_AFTER_SPAWN, start_mrl, statuses, wait_for
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl

# The `mrl` program (metarunlog._entry, what the console script runs) in a real process
# that sends itself SIGINT as Python imports `metarunlog.main` or a module under it.
SIGNALLED_AS_MAIN_IMPORTS = """
import builtins, os, signal, sys
real, target = builtins.__import__, sys.argv[1]
def imp(name, *a, **k):
    if name == target:
        builtins.__import__ = real
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *a, **k)
builtins.__import__ = imp
from metarunlog._entry import run
sys.argv = ["mrl", "ls"]
sys.exit(run())
"""


@pytest.mark.parametrize("target", ["metarunlog.main", "argparse", "metarunlog.error_handler"])
def test_ctrl_c_as_the_program_imports_main_is_an_interrupt_not_a_traceback(project: Path, target: str) -> None:
    # before: Python's own KeyboardInterrupt traceback (main's handlers did not exist yet)
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", SIGNALLED_AS_MAIN_IMPORTS, target]
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "mrl: interrupted\n", proc.stderr


def test_the_console_script_and_python_m_run_the_guarded_entry() -> None:
    assert 'mrl = "metarunlog._entry:run"' in (REPO_ROOT / "pyproject.toml").read_text()
    assert "metarunlog._entry import run" in (REPO_ROOT / "metarunlog" / "__main__.py").read_text()
    assert "metarunlog._entry import run" in (REPO_ROOT / "bin" / "mrl").read_text()


# `mrl ARGS` in a real process that sends itself SIGNAL at its Nth dataclass field set up
# (`Field.__set_name__`: a class body of a command module mrl imports lazily). Python
# wraps what __set_name__ raises in a RuntimeError, so a Ctrl-C landing there reached the
# error handler as "Error calling __set_name__ ...", not as a KeyboardInterrupt.
SIGNALLED_IN_SET_NAME = """
import dataclasses, os, signal, sys
from metarunlog.main import main
n, sig = int(sys.argv[1]), getattr(signal, sys.argv[2])
real, count = dataclasses.Field.__set_name__, [0]
def at(self, owner, name):
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), sig)
    return real(self, owner, name)
dataclasses.Field.__set_name__ = at
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("args", [["status"], ["run", "--dry-run"]], ids=["status", "run"])
def test_ctrl_c_as_mrl_imports_a_command_is_an_interrupt_not_an_internal_error(project: Path, args: list[str]) -> None:
    # before: `mrl: internal error (a bug in mrl)`, a RuntimeError traceback and exit 3
    make_experiment(project, [{"x": 1}], "true")
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", SIGNALLED_IN_SET_NAME, "1", "SIGINT", *args]
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 130, proc.stderr
    assert "mrl: interrupted" in proc.stderr


# `mrl ARGS` in a real process that sends itself SIGINT at the Nth Python call after main
# started (sys.setprofile counts them): N small is while main sets up its handlers
# (killed_like_ctrl_c, the stderr guard), before the error handler's own `try`.
SIGNALLED_AT_CALL = """
import os, signal, sys
from metarunlog.main import main
n, count = int(sys.argv[1]), [0]
def at(frame, event, arg):
    if event == "call":
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGINT)
sys.setprofile(at)
code = main(sys.argv[2:])
sys.setprofile(None)
sys.exit(code)
"""


@pytest.mark.parametrize("n", [2, 4, 8, 12])
def test_ctrl_c_while_main_sets_up_its_handlers_is_an_interrupt_not_a_traceback(project: Path, n: int) -> None:
    # before: Python's KeyboardInterrupt traceback (from killed_like_ctrl_c's set-up)
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", SIGNALLED_AT_CALL, str(n), "status"]
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 130 and "mrl: interrupted" in proc.stderr, proc.stderr


def test_a_job_another_runner_finished_meanwhile_is_not_reported_as_done_by_this_run(project: Path) -> None:
    # Runner A plans 001 and 002 and runs 001; meanwhile runner B runs 002. When A's slot
    # took 002 it found it done and left it alone, but printed `[2/2] 002 done in 0.0s`
    # and `2 done`: a job A never ran, reported as A's (before).
    command = "{% if x == 1 %}while [ ! -e ../go ]; do sleep 0.05; done; {% endif %}echo $$ >> ran"
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], command)
    a = start_mrl("run", "-j", "1", cwd=project)
    try:
        wait_for(lambda: statuses(exp.dir).get("001", {}).get("state") == "running", what="001 running")
        b = run_mrl("run", "1/2", cwd=project)
        assert b.returncode == 0 and "002 done" in b.stdout, b.stdout + b.stderr
        (exp.dir / "go").touch()
        out, err = a.communicate(timeout=120)
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode == 0, out + err
    assert "001 done" in out and "002 done" not in out, out
    assert "1 done; 1 left to another runner" in out, out
    assert len((exp.dir / "002" / "ran").read_text().split()) == 1  # B's run only
    assert statuses(exp.dir)["002"]["runnerPid"] != a.pid


# `mrl ARGS` in a real process that gets SIGINT just as its Nth os.open of a temp file
# (`*.tmp`) returns: as a Ctrl-C that arrives while the file is being made is delivered.
SIGNALLED_AS_TEMP_OPENED = """
import os, signal, sys
from metarunlog.main import main
n, real, count = int(sys.argv[1]), os.open, [0]
def at(path, *a, **k):
    fd = real(path, *a, **k)
    if str(path).endswith(".tmp"):
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGINT)
    return fd
os.open = at
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("args", [["tag", "1", "+x"], ["run"]], ids=["tag", "run-claim"])
def test_ctrl_c_as_a_temp_file_is_made_leaves_no_temp_file(project: Path, args: list[str]) -> None:
    # before: an empty `.NAME.PID.RAND.N.tmp` was left (in EXPDIR, in EXPDIR/.mrl.owners/)
    exp = make_experiment(project, [{"x": 1}], "true")
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", SIGNALLED_AS_TEMP_OPENED, "1", *args]
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert [p.name for p in exp.dir.rglob("*.tmp")] == []


def test_a_step_whose_runner_died_before_recording_it_is_never_run_twice_at_once(project: Path) -> None:
    # the step holds a flock on `guard` for 3 s; a second step of the same sub-experiment
    # that finds it held writes `overlap`
    step = "(flock -n 9 || echo $$ >> ../overlap; sleep 3) 9> guard"
    exp = make_experiment(project, [{"x": 1}], step)
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", KILLED_AFTER_SPAWN, "run"]
    first = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == -9, first.stderr
    second = run_mrl("run", cwd=project)
    assert not (exp.dir / "overlap").exists(), second.stdout + second.stderr
    assert "001 not run: its step (pid " in second.stderr and "still running" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr

    def a_run_ran_it() -> bool:  # once the orphan ended, the next run runs it (no record said it ran)
        return "still running" not in run_mrl("run", cwd=project).stderr

    wait_for(a_run_ran_it, 60, "the killed runner's step to end")
    assert json.loads((exp.dir / "001" / ".mrl.status").read_text())["state"] == "done"
    assert not (exp.dir / "overlap").exists()


@pytest.mark.parametrize("target", ["1/2", "1/1,2", "last/2-3", "1/all"])
def test_an_exp_selection_after_resources_is_refused_not_run_as_a_gpu(project: Path, target: str) -> None:
    # `--resources` takes every word after it: before, `mrl run --resources 0 1 1/2` ran
    # every sub-experiment (not 1/2), one of them with CUDA_VISIBLE_DEVICES=1/2
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], 'echo "$CUDA_VISIBLE_DEVICES" > gpu')
    proc = run_mrl("run", "--resources", "0", "1", target, cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert f"mrl run {target} --resources" in proc.stderr, proc.stderr
    assert not list(exp.dir.glob("*/gpu")) and not list(exp.dir.glob("*/.mrl.status"))
    # the documented order works, and a MIG id with slashes is still a resource
    ok = run_mrl("run", target.replace("last", "1"), "--resources", "MIG-GPU-aa/1/0", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert {p.read_text().strip() for p in exp.dir.glob("*/gpu")} == {"MIG-GPU-aa/1/0"}
