"""Faults the second randomized harness found (docs/dev-notes/wave2/chaos-u.md): the
snapshot store, full disks, long pauses, hostile values. Each reduced to a deterministic
case with real mrl processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
