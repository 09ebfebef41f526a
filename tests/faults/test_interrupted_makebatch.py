"""A makebatch killed while it puts its sub-experiments in place (kill -9, SIGTERM, a closed
terminal) never leaves the experiment half old, half in .trash with a record that says the
old batch is whole: the next command that takes the batch lock finishes it, and until then
every reader says so; and an `mrl new` ended by SIGTERM or SIGHUP cleans up as after Ctrl-C
(issue 10: nothing lies, nothing is lost)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.repo import GIT_ENV, REPO_ROOT, commit_all, run_mrl, set_cfg

# `mrl makebatch ...` in a real process that SIGKILLs itself at its Nth rename of a folder
# (the renames that take the old batch to .trash and the new one into place).
KILLED_AT_RENAME = """
import os, signal, sys
from metarunlog.main import main
real, count = os.rename, [0]
def rename(src, dst):
    count[0] += 1
    if count[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.rename = rename
sys.exit(main(sys.argv[2:]))
"""


def _makebatch_killed_at(project: Path, rename: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-c", KILLED_AT_RENAME, str(rename), "makebatch", *args]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)


def _params(expdir: Path) -> dict[str, int]:
    return {p.parent.name: json.loads(p.read_text())["params"]["x"] for p in sorted(expdir.glob("[0-9]*/.mrl"))}


@pytest.fixture
def ten_done(project: Path) -> Path:
    """An experiment of 10 sub-experiments x=0..9, each run once (its result in ran.txt)."""
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": "echo {{x}} > ran.txt"})
    commit_all(project, "flags")
    assert run_mrl("new", "ten", cwd=project).returncode == 0
    assert run_mrl("makebatch", "--grid", "x=" + ",".join(map(str, range(10))), cwd=project).returncode == 0
    assert run_mrl("run", cwd=project).returncode == 0
    return project / "output" / "0001"


# rename 4: 3 of the old ten are in .trash; rename 14: all old ones out, 3 new ones in
@pytest.mark.parametrize("rename", [4, 14], ids=["while-trashing-the-old", "while-placing-the-new"])
def test_a_makebatch_replace_killed_half_way_is_said_then_finished_and_loses_nothing(
    project: Path, ten_done: Path, rename: int
) -> None:
    new_grid = "x=" + ",".join(map(str, range(100, 110)))
    killed = _makebatch_killed_at(project, rename, "-replace", "--grid", new_grid)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    status = run_mrl("status", cwd=project)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "makebatch was killed" in status.stderr, status.stdout + status.stderr

    ran = run_mrl("run", cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "finished putting in place" in ran.stderr
    # the batch the user asked for, whole, and each folder ran its own params
    assert _params(ten_done) == {f"{i + 1:03d}": 100 + i for i in range(10)}
    for sub, x in _params(ten_done).items():
        assert (ten_done / sub / "ran.txt").read_text().strip() == str(x)
    record = json.loads((ten_done / ".mrl").read_text())
    assert record["batch"]["grid"] == {"x": list(range(100, 110))}
    # every old result is in the one trash folder the record names, none left behind
    trash = ten_done / record["batch"]["trash"]
    assert sorted(_params(trash).values()) == list(range(10))
    assert all((trash / f"{i + 1:03d}" / "ran.txt").read_text().strip() == str(i) for i in range(10))
    assert not list(ten_done.glob(".mrl.batch*"))
    assert "makebatch was killed" not in run_mrl("status", cwd=project).stderr


def test_a_makebatch_killed_half_way_is_finished_by_the_next_makebatch(project: Path, ten_done: Path) -> None:
    killed = _makebatch_killed_at(project, 4, "-replace", "--grid", "x=100,101")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = run_mrl("makebatch", "--extend", cwd=project)
    assert again.returncode == 0, again.stderr
    assert "finished putting in place" in again.stderr
    assert _params(ten_done) == {"001": 100, "002": 101}


# `mrl new ...` in a real process that receives SIGTERM (or SIGHUP) while it writes code/.
SIGNALLED_IN_SNAPSHOT = """
import os, signal, sys
from metarunlog import snapshot
from metarunlog.main import main
real = snapshot.take
def take(*args, **kwargs):
    os.kill(os.getpid(), int(sys.argv[1]))
    return real(*args, **kwargs)
snapshot.take = take
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_mrl_new_killed_by_a_signal_leaves_no_half_experiment(project: Path, sig: int) -> None:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-c", SIGNALLED_IN_SNAPSHOT, str(int(sig)), "new", "killed"]
    killed = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -sig, killed.stderr  # it still ends by that signal
    assert not (project / "output" / "0001").exists(), "a folder holding only code/ was left"
    made = run_mrl("new", "again", cwd=project)
    assert made.stdout.splitlines()[-1].endswith("0001")


# `mrl makebatch ...` in a real process that gets a signal while it removes its temp folder
# (the last thing it does: shutil.rmtree's rmdir of it, once the batch is in place).
SIGNALLED_IN_CLEANUP = """
import os, signal, sys
from metarunlog.main import main
real = os.rmdir
def rmdir(path, *args, **kwargs):
    if ".mrl.batch-tmp-" in os.fsdecode(path):
        os.kill(os.getpid(), int(sys.argv[1]))
    real(path, *args, **kwargs)
os.rmdir = rmdir
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_makebatch_s_temp_cleanup_leaves_no_temp_folder(project: Path, sig: int) -> None:
    set_cfg(project, confTemplFile=None, copyFiles=[])
    commit_all(project, "no template")
    assert run_mrl("new", "cleanup", cwd=project).returncode == 0
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-c", SIGNALLED_IN_CLEANUP, str(int(sig)), "makebatch", "--grid", "x=0,1"]
    killed = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in killed.stderr, killed.stderr
    assert killed.returncode == (-sig if sig == signal.SIGTERM else 130), killed.stderr  # still ended by it
    expdir = project / "output" / "0001"
    assert sorted(p.name for p in expdir.iterdir() if p.name.startswith(".mrl.batch-tmp-")) == []
    assert sorted(p.name for p in expdir.glob("0*")) == ["001", "002"]  # the batch is in place
