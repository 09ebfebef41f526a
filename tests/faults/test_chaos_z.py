"""Faults the fourth adversarial pass found (docs/dev-notes/wave2/chaos-z.md): concurrent
commands, signals at each phase, hostile steps, records and metrics. Each reduced to a
deterministic case with real mrl processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.processes import wait_for
from tests.helpers.repo import GIT_ENV, REPO_ROOT, commit_all, run_mrl, set_cfg


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


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("record", ["001/.mrl", "001/.mrl.status", ".mrl.done"])
def test_a_record_that_is_no_plain_file_is_one_error_line_never_a_traceback_or_a_hang(
    project: Path, kind: str, record: str
) -> None:
    # before: a folder was an IsADirectoryError traceback ("internal error", exit 3), a FIFO
    # blocked every reader for good (open() waits for a writer), /dev/zero read without end
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran")
    assert run_mrl("run", cwd=project).returncode == 0
    path = exp.dir / record
    path.unlink()
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    for args in (["status"], ["table"], ["info", "1/1"], ["run", "--force"]):
        proc = run_mrl(*args, cwd=project, timeout=60)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, (args, proc.stderr)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mrl: error:")]
        assert len(errors) <= 1, (args, proc.stderr)
        if errors:
            said = ("not a plain file", "a folder stands where mrl keeps a file")
            assert str(path) in errors[0] and any(s in errors[0] for s in said), (args, errors)


@pytest.mark.parametrize(
    ("fifo", "args"),
    [("001/run.log", ["analyze"]), (".mrl.note", ["analyze"]), ("001/conf.lua", ["diff", "1/1", "1/2"])],
)
def test_a_fifo_in_place_of_a_file_mrl_reads_never_hangs_a_reader(project: Path, fifo: str, args: list[str]) -> None:
    # before: open() of the FIFO waited for a writer that never came: the command hung
    set_cfg(project, run={"command": "echo ran"})
    commit_all(project, "run block")
    for step in (["new", "fifo"], ["makebatch"], ["run"]):
        assert run_mrl(*step, cwd=project).returncode == 0
    path = project / "output" / "0001" / fifo
    path.unlink()
    os.mkfifo(path)
    proc = run_mrl(*args, cwd=project, timeout=60)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr


def test_a_file_in_place_of_the_owners_folder_is_one_error_line(project: Path) -> None:
    # before: `mkdir(exist_ok=True)` raised FileExistsError: a traceback, "internal error", exit 3
    exp = make_experiment(project, [{"x": 1}], "echo ran")
    (exp.dir / ".mrl.owners").write_text("")
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("mrl: error: not a directory: ") and str(exp.dir / ".mrl.owners") in line, line
    assert "a file stands where mrl keeps a folder" in line and len(line.splitlines()) == 1, line


def test_a_folder_in_place_of_run_log_is_no_log_tail_never_a_crash_of_the_error_handler(project: Path) -> None:
    # before: open(fd) of the folder raised IsADirectoryError naming descriptor 3, and the
    # error handler's own os.fsdecode(3) was a TypeError traceback
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran")
    assert run_mrl("run", cwd=project).returncode == 0
    log = exp.dir / "001" / "run.log"
    log.unlink()
    log.mkdir()
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
