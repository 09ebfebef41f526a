"""A file-size limit (`ulimit -f`, or a file system's largest file): EFBIG is the user's
environment, like a full disk: one `mrl: error:` line naming the file, exit 1 (issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl


@pytest.mark.parametrize("args", [["analyze", "1"], ["analyze", "--index"]], ids=["report", "index"])
def test_a_report_past_the_file_size_limit_is_one_error_line_naming_it(tmp_path: Path, args: list[str]) -> None:
    # Before: OSError [Errno 27] File too large, an internal-error traceback (exit 3).
    r = run_mrl("quickstart", str(tmp_path / "q"), cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    line = " ".join([sys.executable, "-m", "metarunlog", *args])
    r = subprocess.run(
        ["bash", "-c", f"ulimit -f 4; exec {line}"], cwd=tmp_path / "q", capture_output=True, text=True, env=env
    )
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1 and r.stderr.startswith("mrl: error: file too large: "), r.stderr
    assert "index.html" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not [p for p in (tmp_path / "q" / "output").rglob("*.tmp*")]
