"""Faults the fourth adversarial pass found (docs/dev-notes/wave2/chaos-z.md): concurrent
commands, signals at each phase, hostile steps, records and metrics. Each reduced to a
deterministic case with real mrl processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.backends.contract import make_experiment
from tests.helpers.processes import wait_for
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl


def test_a_job_mrl_could_not_record_is_not_counted_done_in_the_summary(project: Path, tmp_path: Path) -> None:
    # 001 and 002 done; then 002's run.log is a symlink: `run --force` runs 001 only
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran")
    assert run_mrl("run", cwd=project).returncode == 0
    log = exp.dir / "002" / "run.log"
    log.unlink()
    log.symlink_to(tmp_path / "elsewhere.txt")
    proc = run_mrl("run", "--force", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stdout.splitlines()[-1]
    # before: "finished in 0.1s: 2 done; 1 not run: ..." (002's old record counted as done by this run)
    assert ": 1 done; 1 not run" in last, proc.stdout


def test_a_step_that_removes_its_records_is_never_started_again_beside_itself(project: Path, tmp_path: Path) -> None:
    # The step cleans its folder (its cwd) while it runs: .mrl.status and .mrl.lock go too.
    # A second `mrl run` then saw a sub-experiment never run and unlocked, and started it
    # again beside the first: two steps of one sub-experiment at once.
    started, go, second = tmp_path / "started", tmp_path / "go", tmp_path / "second"
    step = (
        f"if [ -e {started} ]; then touch {second}; exit 0; fi; "
        "while [ ! -e .mrl.status ]; do sleep 0.05; done; rm -f .mrl.status .mrl.lock; "
        f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done"
    )
    make_experiment(project, [{"x": 1}], step)
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "metarunlog", "run"]
    first = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(started.exists, what="the first step to remove its records")
        again = run_mrl("run", cwd=project)
    finally:
        go.touch()
        out, err = first.communicate(timeout=120)
    assert not second.exists(), again.stdout + again.stderr  # before: the second run started it again
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stdout + again.stderr
    assert "001 not run: its step (pid " in again.stderr and "still running" in again.stderr, again.stderr
    assert "skipping 1 running or queued elsewhere (001)" in again.stdout, again.stdout
    # (the first run, finding its .mrl.lock gone, takes the folder for one made again: a9686e7)
    assert first.returncode in (0, 1) and "Traceback" not in err, out + err
