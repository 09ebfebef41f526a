"""A sub-experiment's run.log that is not a plain file (issue 10: nothing outside harmed,
nothing hangs): a symlink made mrl append to the file it points to, anywhere; a FIFO
blocked the run for good, SIGTERM included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT


def test_a_run_log_that_is_a_symlink_or_a_fifo_is_refused_and_nothing_outside_is_written(
    project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file\n")
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "echo step-output")
    (exp.dir / "001" / "run.log").symlink_to(outside)
    os.mkfifo(exp.dir / "002" / "run.log")
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "metarunlog", "run"]
    p = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        err, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # before: blocked opening the FIFO, deaf to SIGTERM
        p.send_signal(signal.SIGKILL)
        p.communicate()
        raise AssertionError("mrl run hung on a FIFO run.log") from None
    text = err.decode()
    assert p.returncode == 1, text
    assert outside.read_text() == "someone else's file\n"  # before: mrl's header and the step's output
    assert "001: mrl could not record it: not a plain file" in text and "002: mrl could not record it" in text, text
    assert "Traceback" not in text
    assert (exp.dir / "003" / "run.log").read_text().endswith("step-output\n")


def test_analyze_of_a_run_log_that_is_a_fifo_or_a_device_neither_hangs_nor_reads_it_whole(project: Path) -> None:
    # before: the report's log tail opened the FIFO and waited for a writer for good, and
    # read /dev/zero until a MemoryError (an internal error)
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "echo step-output")
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    assert subprocess.run([sys.executable, "-m", "metarunlog", "run"], cwd=project, env=env).returncode == 0
    for sub in ("001", "002"):
        (exp.dir / sub / "run.log").unlink()
    os.mkfifo(exp.dir / "001" / "run.log")
    (exp.dir / "002" / "run.log").symlink_to("/dev/zero")
    argv = [
        sys.executable,
        "-c",
        "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30,) * 2);"
        " sys.argv = ['mrl', 'analyze']; runpy.run_module('metarunlog', run_name='__main__')",
    ]
    p = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.communicate()
        raise AssertionError("mrl analyze hung on a FIFO run.log") from None
    text = out.decode()
    assert p.returncode == 0 and "Traceback" not in text, text
    assert "step-output" in (exp.dir / "analysis" / "index.html").read_text()  # 003's tail is still shown
