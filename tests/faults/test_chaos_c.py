"""Faults the ninth adversarial pass found (docs/dev-notes/wave2/chaos-c.md), each with real
mrl processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.repo import run_mrl


@pytest.mark.parametrize("args", [["tag", "1", ""], ["tag", ""], ["tag", "1", "+a", ""]])
def test_an_empty_tag_is_one_error_line_not_a_traceback(project: Path, args: list[str]) -> None:
    # before: IndexError traceback, "internal error", exit 3 ("" [:1] in "+-" is True)
    exp = make_experiment(project, [{"x": 1}], "echo ran")
    before = (exp.dir / ".mrl").read_bytes()
    proc = run_mrl(*args, cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("mrl: error: bad tag ''") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert (exp.dir / ".mrl").read_bytes() == before  # nothing written, not even +a
