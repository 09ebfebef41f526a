"""mrl on a real filesystem that keeps whole-second modification times (loop-mounted ext2
with 128-byte inodes): the whole flow runs, `mrl verify` still sees an in-place edit of the
snapshot, and the index never serves a card older than the files it shows."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.helpers.repo import run_mrl


def _card(project: Path) -> tuple[float, str]:
    card = json.loads((project / "output" / ".mrl.index.json").read_text())["experiments"]["0001"]["card"]
    return card["best"], card["best_run"]


def test_the_flow_verify_and_the_index_on_a_whole_second_filesystem(whole_second_fs: Path) -> None:
    project = whole_second_fs / "q"
    proc = run_mrl("quickstart", str(project), timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    table = run_mrl("table", "--summary", "best", cwd=project)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 7, table.stdout

    # root writes through the snapshot's read-only bits, in place, same size, same second
    code = project / "output" / "0001" / "code"
    target = next(p for p in sorted(code.rglob("*.py")) if p.stat().st_size > 10)
    text = target.read_text()
    target.write_text(("#" if text[0] != "#" else " ") + text[1:])
    verify = run_mrl("verify", "1", cwd=project)
    assert verify.returncode == 1 and target.name in verify.stdout + verify.stderr, verify.stdout + verify.stderr
    target.write_text(text)

    # a metrics file written again in the second the index read it: the index must not keep
    # the card it made before that write (same mtime: only the second is kept)
    series = project / "output" / "0001" / "003" / "metrics.jsonl"
    before = series.read_text()
    for _ in range(8):
        time.sleep(1.02 - time.time() % 1)  # the start of a second
        second = int(time.time())
        series.write_text(before)
        assert run_mrl("analyze", "--index", cwd=project).returncode == 0
        with series.open("a") as f:
            f.write('{"step": 410, "loss": 1e-05, "acc": 0.99}\n')
        if int(time.time()) == second and series.stat().st_mtime == second:
            break
    else:
        pytest.skip("this machine could not make the index within one second")
    assert run_mrl("analyze", "--index", cwd=project).returncode == 0
    assert _card(project) == (1e-05, "003")
    assert os.stat(series).st_mtime_ns % 10**9 == 0
