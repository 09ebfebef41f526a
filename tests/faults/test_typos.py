"""Unbounded memory or time on typos (issue 10): a range typo, `-j 10000000`, counts in .mrl.cfg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from metarunlog.backends.base import Job, RunOptions
from metarunlog.backends.local import LocalBackend
from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl, set_cfg


def test_a_huge_j_starts_no_more_workers_than_jobs(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "true")
    # A subprocess first: without the cap it starts 10^7 threads and never ends.
    r = run_mrl("run", "-j", "10000000", cwd=project, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "on 3 worker(s)" in r.stdout, r.stdout  # says what it starts, not what was asked
    backend = LocalBackend(exp, RunOptions(jobs=10_000_000))
    before = threading.active_count()
    try:
        backend.submit([Job(sub) for sub in exp.sub_experiments()])
        assert len(backend.slots) == 3  # three slots, driven by one pool thread
        assert threading.active_count() <= before + 3
        while backend.busy:
            backend.wait(0.1)
    finally:
        backend.close()


def test_run_jobs_0_in_the_config_is_refused_like_j_0(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "true")
    set_cfg(project, run={"command": "true", "jobs": 0})
    r = run_mrl("run", cwd=project)
    assert r.returncode == 1 and "'run.jobs' must be at least 1, not 0" in r.stderr
    r = run_mrl("run", "-j", "0", cwd=project)
    assert r.returncode == 1 and "at least 1" in r.stderr


def test_an_absurd_j_is_bounded_in_memory_too(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "true")
    # 10^12 workers would be an 8 TB slot list before the cap to the number of jobs applies.
    r = run_mrl("run", "-j", "1000000000000", cwd=project, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_more_workers_than_open_files_allow_run_fewer_at_a_time_and_say_so(project: Path) -> None:
    # Before: with `ulimit -n 160`, -j 100 of steps that overlap failed jobs with EMFILE
    # (too many open files) part way through; each running job holds ~4 descriptors.
    exp = make_experiment(project, [{"x": i} for i in range(1, 101)], "sleep 0.3")
    r = subprocess.run(
        ["bash", "-c", 'ulimit -n 160 && exec "$0" -m metarunlog run -j 100', sys.executable],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "100 done" in r.stderr + r.stdout
    assert "open files" in r.stderr and "ulimit -n" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("mrl: warning:") == 1
    states = {json.loads((sub.dir / ".mrl.status").read_text())["state"] for sub in exp.sub_experiments()}
    assert states == {"done"}


def test_an_open_file_limit_too_low_for_one_job_is_refused_up_front_in_one_line(project: Path) -> None:
    # Before: with `ulimit -n 10`..`12` every job failed ("could not start its step: too
    # many open files"), each with its record and its log, and the run said "3 failed".
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "true")
    for limit in (10, 11, 12):
        r = subprocess.run(
            ["bash", "-c", f'ulimit -n {limit} && exec "$0" -m metarunlog run -j 2', sys.executable],
            cwd=project,
            capture_output=True,
            text=True,
            env={**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)},
            timeout=120,
        )
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stdout + r.stderr
        line = r.stderr.strip()
        assert line.startswith("mrl: error: mrl run needs at least "), line
        assert f"this process may open {limit} (`ulimit -n {limit}`)" in line and "e.g. `ulimit -n 64`" in line, line
        assert not any(
            (sub.dir / ".mrl.status").exists() or (sub.dir / "run.log").exists() for sub in exp.sub_experiments()
        )
        owners = exp.dir / ".mrl.owners"
        assert not owners.exists() or not list(owners.glob("*.json")), list(owners.iterdir())


def test_a_query_timeout_past_what_a_wait_can_take_is_refused_in_the_config(project: Path) -> None:
    # Infinity (JSON's, or 1e400) or a month of seconds passed the check and reached
    # subprocess.run(timeout=...) of squeue: an OverflowError traceback in mrl status
    make_experiment(project, [{"x": 1}], "true")
    for value in (float("inf"), 1e7):
        set_cfg(project, run={"command": "true", "backend": "slurm", "slurm": {"query_timeout": value}})
        r = run_mrl("run", "--dry-run", cwd=project)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"'run.slurm.query_timeout' must be at most 86400, not {value}" in r.stderr
        assert "Traceback" not in r.stderr
