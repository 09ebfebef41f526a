"""Faults the second randomized harness found (docs/dev-notes/wave2/chaos-u.md): the
snapshot store, full disks, long pauses, hostile values. Each reduced to a deterministic
case with real mrl processes."""

from __future__ import annotations

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
