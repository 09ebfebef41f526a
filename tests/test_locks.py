"""locks.py: the run lock, held by whoever executes a sub-experiment, probed by the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog.locks import RUN_LOCK, Locked, is_running, run_lock


def test_a_folder_never_run_is_not_running(tmp_path: Path) -> None:
    assert not is_running(tmp_path)
    assert not (tmp_path / RUN_LOCK).exists()  # the probe creates nothing


def test_a_lock_held_by_another_process_is_seen_and_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from metarunlog.locks import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert is_running(tmp_path)
        with pytest.raises(Locked, match="another process"), run_lock(tmp_path):
            pass
    finally:
        holder.communicate("")
    assert not is_running(tmp_path)  # the kernel dropped it with the process
    with run_lock(tmp_path):
        pass
