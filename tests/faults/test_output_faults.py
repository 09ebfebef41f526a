"""Output errors never drop work: a closed pipe, a closed terminal, a full disk during a
run (issue 10, "State that lies" and "Tracebacks")."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import subprocess
import sys
import termios
from pathlib import Path

from tests.backends.contract import make_experiment
from tests.helpers.processes import alive, statuses, wait_for
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl

ENV = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}


def test_mrl_run_piped_into_head_still_runs_every_job(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 5)], "sleep 0.2; echo ran > out.txt")
    script = f"set -o pipefail; {sys.executable} -m metarunlog run -j 1 | head -1"
    proc = subprocess.run(["bash", "-c", script], cwd=project, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("mrl: running 4 of 4"), proc.stdout
    assert proc.returncode == 0, proc.stderr  # all done: the run went on without its reader
    assert "Traceback" not in proc.stderr
    assert [s["state"] for s in statuses(exp.dir).values()] == ["done"] * 4
    assert all((exp.dir / f"00{i}" / "out.txt").exists() for i in range(1, 5))


def _in_terminal(slave: int) -> None:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


def test_closing_the_terminal_of_a_live_run_cancels_its_children_without_a_traceback(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo $$ > pid.txt; sleep 60")
    master, slave = pty.openpty()
    err = project / "stderr.txt"
    with open(err, "w") as err_file:
        runner = subprocess.Popen(
            [sys.executable, "-m", "metarunlog", "run", "-j", "2"],
            cwd=project,
            env=ENV,
            stdin=slave,
            stdout=slave,
            stderr=err_file,
            preexec_fn=lambda: _in_terminal(slave),
        )  # noqa: PLW1509
    os.close(slave)
    pids = [exp.dir / n / "pid.txt" for n in ("001", "002")]
    try:
        wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pids), what="the jobs to start")
        os.read(master, 65536)
        os.close(master)  # the terminal window closes: SIGHUP, then EIO on every write
        code = runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert code in (129, 130), err.read_text()
    assert "Traceback" not in err.read_text(), err.read_text()
    assert not any(alive(int(p.read_text())) for p in pids)
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled"] * 2


def test_a_disk_filling_up_during_a_run_gives_the_same_counts_as_status(project: Path, full_disk) -> None:  # type: ignore[no-untyped-def]
    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3)], "true")
    out = full_disk(project / "output", "4m")
    # the first job fills the disk; nothing can be recorded from then on
    (exp.dir / ".mrl.cfg").write_text(
        json.dumps(
            {
                "run": {
                    "command": "if [ {{subExpNum}} = 1 ]; then cat /dev/zero > {{expDir}}/filler 2>/dev/null; fi; true"
                }
            }
        )
    )
    proc = run_mrl("run", "-j", "1", cwd=project)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    summary = proc.stdout.strip().splitlines()[-1]
    status = run_mrl("status", cwd=project)
    assert "Traceback" not in status.stderr
    counts = status.stdout.splitlines()[0].split(": ", 2)[-1]
    assert summary.endswith(counts), (summary, status.stdout)
    assert "no space left on device" in proc.stderr
    print(summary, "|", counts)
    (out / exp.dir.name / "filler").unlink()


def _closed(fd: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mrl ARGS` started with descriptor `fd` closed (`mrl run >&-` in a shell, cron, a
    daemon): Python then has no sys.stdout (or sys.stderr); the other streams are captured."""
    streams = {1: "stdout", 2: "stderr"}
    kwargs = {name: subprocess.PIPE for n, name in streams.items() if n != fd}
    return subprocess.run(
        [sys.executable, "-m", "metarunlog", *args],
        cwd=cwd,
        env=ENV,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(fd),
        **kwargs,
    )  # noqa: PLW1509


def test_mrl_run_with_its_stdout_closed_runs_every_job_without_a_traceback(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "echo ran > out.txt")
    proc = _closed(1, "run", "-j", "2", cwd=project)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert [s["state"] for s in statuses(exp.dir).values()] == ["done"] * 3


def test_mrl_run_with_its_stderr_closed_exits_with_the_runs_code(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "test {{x}} = 1")
    proc = _closed(2, "run", cwd=project)
    assert proc.returncode == 1, proc.stdout  # one failed: the run's code, not Python's 120
    assert [s["state"] for s in statuses(exp.dir).values()] == ["done", "failed"]
    assert _closed(2, "run", "1/1", cwd=project).returncode == 0  # done already: nothing to run


def test_read_commands_with_their_stdout_closed_are_not_a_bug(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "true")
    for args in (["status"], ["ls"], ["table"], ["status", "--json"]):
        proc = _closed(1, *args, cwd=project)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.returncode == 0, (args, proc.stderr)


def _to_dev_full(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mrl ARGS > /dev/full`: every write to stdout fails with ENOSPC."""
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    with open("/dev/full", "w") as full:
        cmd = [sys.executable, "-m", "metarunlog", *args]
        return subprocess.run(cmd, cwd=cwd, env=env, stdout=full, stderr=subprocess.PIPE, text=True)


def test_a_lost_output_is_said_as_the_outputs_not_as_a_full_disk_to_rerun_on(project: Path) -> None:
    """`mrl new > /dev/full` made the experiment, then said "no space left on device (free some
    disk space and rerun)": rerunning made a second experiment."""
    new = _to_dev_full("new", "x", cwd=project)
    assert new.returncode == 1, new.stderr
    assert new.stderr.splitlines() == [
        "mrl: error: no space left on device: <stdout> (only the output is lost; "
        "`mrl ls` and `mrl status` show what the command did)"
    ]
    assert (project / "output" / "0001" / ".mrl").exists()
    made = _to_dev_full("makebatch", "--grid", "x=1,2", cwd=project)
    assert "<stdout> (only the output is lost" in made.stderr and "Traceback" not in made.stderr
    assert (project / "output" / "0001" / "001" / ".mrl").exists()  # made, though its line was lost


def test_help_into_a_full_disk_is_not_a_success(project: Path) -> None:
    """`mrl --help > /dev/full` exited 0 with nothing written: argparse's exit came before
    the flush that fails."""
    for args in (["--help"], ["run", "--help"]):
        proc = _to_dev_full(*args, cwd=project)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith("mrl: error: no space left on device: <stdout>"), (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_dry_run_whose_output_is_lost_fails_and_never_says_a_run_goes_on(project: Path) -> None:
    """`mrl run --dry-run > /dev/full` warned "lost the output ...; the run goes on" and
    exited 0: a dry run runs nothing, its output is all it makes."""
    make_experiment(project, [{"x": 1}, {"x": 2}], "echo {{x}}")
    proc = _to_dev_full("run", "--dry-run", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("mrl: error: no space left on device: <stdout>"), proc.stderr
    assert "the run goes on" not in proc.stderr and "Traceback" not in proc.stderr
    piped = subprocess.run(
        f"{sys.executable} -m metarunlog run --dry-run | head -c 1",
        shell=True,
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    assert not (project / "output" / "0001" / "001" / ".mrl.status").exists()
