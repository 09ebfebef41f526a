"""Faults the second randomized harness found (docs/dev-notes/wave2/chaos-u.md): the
snapshot store, full disks, long pauses, hostile values. Each reduced to a deterministic
case with real mrl processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.faults.test_chaos import KILLED_AFTER_SPAWN  # a runner killed -9 right after it started a step
from tests.helpers.repo import GIT_ENV, REPO_ROOT

# `mrl new` in a real process, where another process (here: the same one, at the moment
# the snapshot starts) removes the experiment folder mrl new is making.
REMOVED_AS_NEW_FILLS = """
import shutil, sys
from metarunlog import snapshot
from metarunlog.main import main
real = snapshot.take
def take(repo, commit, dest, *a, **k):
    shutil.rmtree(dest.parent)  # the `rm -rf output/0001` of another shell
    return real(repo, commit, dest, *a, **k)
snapshot.take = take
sys.exit(main(["new", "x"]))
"""


def test_an_experiment_folder_removed_while_mrl_new_makes_it_is_one_error_line(project: Path) -> None:
    # before: FileNotFoundError traceback, `mrl: internal error (a bug in mrl)`, exit 3
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", REMOVED_AS_NEW_FILLS], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("mrl: error: ") and "was removed while mrl new was making it" in proc.stderr
    assert not any(p.name.isdigit() for p in (project / "output").iterdir())


def test_mrl_new_never_copies_config_files_from_a_half_made_experiment(project: Path) -> None:
    # A newer folder without a record: an `mrl new` killed -9 half-way, or one another
    # `mrl new` is still filling. before: its half-copied conf.lua was the default source,
    # and the record said `copiedFrom: 0002`, an experiment `mrl ls` does not even list.
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}

    def mrl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "metarunlog", *args], cwd=project, env=env, capture_output=True, text=True
        )

    assert mrl("new", "first").returncode == 0
    (project / "output" / "0001" / "conf.lua").write_text("-- MRL:grid['lr'] = [7]\nlr = {{lr}}\n")
    half = project / "output" / "0002"
    (half / "code").mkdir(parents=True)
    (half / "conf.lua").write_text("lr = {{")  # cut off as it was being copied
    proc = mrl("new", "second")
    assert proc.returncode == 0, proc.stderr
    made = project / "output" / "0003"
    assert (made / "conf.lua").read_text() == (project / "output" / "0001" / "conf.lua").read_text()
    record = json.loads((made / ".mrl").read_text())
    assert record["copiedFrom"] == "0001" and record["copied"] == {"conf.lua": "0001"}
    assert "copied conf.lua from 0001" in proc.stdout


def test_a_process_older_than_a_killed_runner_is_never_taken_for_its_orphaned_step(project: Path) -> None:
    # A session leader whose MRL_SUBEXP_DIR names 001 but that started before the runner
    # (a shell that exported it, a daemon of an earlier run): before, every later `mrl run`
    # said `001 not run: its step (pid <it>), started by an mrl run that was killed, is
    # still running` for as long as it lived (the harness's decoy: 600 s).
    from tests.backends.contract import make_experiment
    from tests.helpers.processes import wait_for
    from tests.helpers.repo import run_mrl

    exp = make_experiment(project, [{"x": 1}], "true")
    sub = str(exp.dir / "001")
    stranger = subprocess.Popen(["sleep", "600"], env={**os.environ, "MRL_SUBEXP_DIR": sub}, start_new_session=True)
    try:
        env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
        argv = [sys.executable, "-c", KILLED_AFTER_SPAWN, "run"]
        first = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == -9, first.stderr
        wait_for(lambda: _carrying(sub) <= {stranger.pid}, 30, "the real step to end")
        second = run_mrl("run", cwd=project)
        assert "still running" not in second.stderr, second.stderr
        assert json.loads((exp.dir / "001" / ".mrl.status").read_text())["state"] == "done"
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def _carrying(subdir: str) -> set[int]:
    """Live processes whose environment names `subdir` as MRL_SUBEXP_DIR."""
    found = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and f"MRL_SUBEXP_DIR={subdir}".encode() in env:
            found.add(int(name))
    return found


def test_a_step_that_failed_while_its_runner_was_stopped_is_failed_not_cancelled(project: Path) -> None:
    # The step fails (exit 3) while its runner is stopped (Ctrl-Z, SIGSTOP); `mrl cancel`
    # then asks the runner, which on SIGCONT finds both the exit status and the request.
    # The step failed by itself before anyone asked: the record must say failed, exit 3.
    # before: `cancelled` with exit code 3 whenever the request was taken up first (about
    # half the time; five tries here)
    import signal
    import time

    from tests.backends.contract import make_experiment
    from tests.helpers.processes import start_mrl, wait_for

    exp = make_experiment(project, [{"x": 1}], "sleep 0.5; exit 3")
    status = exp.dir / "001" / ".mrl.status"
    for _ in range(5):
        status.unlink(missing_ok=True)
        runner = start_mrl("run", cwd=project)
        try:
            wait_for(lambda: status.exists() and json.loads(status.read_text()).get("pid") is not None, 30, "a step")
            step = json.loads(status.read_text())["pid"]
            os.kill(runner.pid, signal.SIGSTOP)
            wait_for(lambda step=step: _state(step) in ("Z", None), 30, "the step to end")
            cancel = start_mrl("cancel", cwd=project)
            owners = exp.dir / ".mrl.owners"
            wait_for(lambda d=owners: any(".cancel-" in p.name for p in d.iterdir()), 30, "the cancel request")
            time.sleep(0.2)
        finally:
            os.kill(runner.pid, signal.SIGCONT)
        runner.communicate(timeout=60)
        cancel.communicate(timeout=60)
        record = json.loads(status.read_text())
        assert (record["state"], record["exitCode"]) == ("failed", 3), record


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
