"""mrl status: counts, rows, --json with the state, stale records, --watch in a pipe."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from metarunlog.main import main
from metarunlog.procs import start_id
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.processes import start_mrl, wait_for
from tests.helpers.repo import run_mrl


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_status_counts_and_lists_every_sub_experiment(project: Path, capsys) -> None:
    make_experiment(project, [{"c": 0}, {"c": 1}, {"c": 0}], "exit {{c}}")
    assert main(["run", "last", "1-2"]) == 1
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "0001: 3 sub-experiment(s): 1 done, 1 failed, 1 pending"
    assert out[1].split() == ["id", "state", "attempts", "duration", "exit", "where", "host", "start"]
    assert [line.split()[:2] for line in out[2:5]] == [["001", "done"], ["002", "failed"], ["003", "pending"]]


def test_status_json_gives_each_row_its_state_and_record(project: Path, capsys) -> None:
    make_experiment(project, [{"c": 0}, {"c": 2}], "exit {{c}}")
    main(["run"])
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = [(r["id"], r["name"], r["state"], r["exitCode"]) for r in rows]
    assert got == [(1, "001", "done", 0), (2, "002", "failed", 2)]


def test_a_running_record_whose_processes_are_gone_is_stale(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"c": 0}], "true")
    sub = exp.sub_experiments()[0]
    capsys.readouterr()
    sub.write_status(
        Status(JobState.RUNNING, attempts=1, host=socket.gethostname(), pid=dead_pid(), runner_pid=dead_pid())
    )
    main(["status", "--json"])
    row = json.loads(capsys.readouterr().out)[0]
    assert row["state"] == "stale" and row["recordedState"] == "running"
    assert main(["run", "--failed"]) == 0  # stale counts as failed: it runs again
    assert sub.read_status().state == "done"  # type: ignore[union-attr]


def test_a_running_record_of_a_live_process_is_running(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"c": 0}], "true")
    sub = exp.sub_experiments()[0]
    capsys.readouterr()
    # a step as mrl starts one: MRL_SUBEXP_DIR names its folder
    sleeper = subprocess.Popen(["sleep", "30"], env={**os.environ, "MRL_SUBEXP_DIR": str(sub.dir)})
    try:
        sub.write_status(
            Status(
                JobState.RUNNING,
                pid=sleeper.pid,
                pid_start=start_id(sleeper.pid),
                runner_pid=dead_pid(),
                host=socket.gethostname(),
            )
        )
        main(["status", "--json"])
        assert json.loads(capsys.readouterr().out)[0]["state"] == "running"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_status_marks_an_experiment_done_once_everything_is(project: Path) -> None:
    exp = make_experiment(project, [{"c": 0}], "true")
    main(["run"])
    (exp.dir / ".mrl.done").unlink()
    assert main(["status"]) == 0
    assert (exp.dir / ".mrl.done").exists()


def test_status_removes_the_done_mark_it_wrote_once_a_record_no_longer_says_done(project: Path) -> None:
    # a .mrl.status removed by hand (the sub-experiment is pending again) kept `mrl ls`
    # saying done for good: status made the mark but never removed it
    exp = make_experiment(project, [{"c": 0}, {"c": 1}], "true")
    assert main(["run"]) == 0
    assert (exp.dir / ".mrl.done").exists()
    (exp.dir / "002" / ".mrl.status").unlink()
    assert run_mrl("status", cwd=project).returncode == 0
    assert not (exp.dir / ".mrl.done").exists()
    assert run_mrl("ls", cwd=project).stdout.startswith(f"** {exp.name}")
    assert run_mrl("status", "1", cwd=project).returncode == 0  # a selection cannot tell: nothing written
    assert not (exp.dir / ".mrl.done").exists()


@pytest.mark.parametrize("text", ["", "done by hand\n"])
def test_status_keeps_a_done_mark_the_user_made(project: Path, text: str) -> None:
    # `touch EXPDIR/.mrl.done`: the original's way of marking an experiment done by hand
    exp = make_experiment(project, [{"c": 0}], "true")
    (exp.dir / ".mrl.done").write_text(text)
    assert run_mrl("status", cwd=project).returncode == 0
    assert (exp.dir / ".mrl.done").read_text() == text
    assert run_mrl("ls", cwd=project).stdout.startswith(f"   {exp.name}")


def test_status_watch_in_a_pipe_prints_the_counts_and_ends_when_nothing_runs(project: Path) -> None:
    make_experiment(project, [{"c": 0}], "true")
    res = run_mrl("status", "--watch", cwd=project, timeout=30)
    assert res.returncode == 0
    assert res.stdout == "0001: 1 sub-experiment(s): 1 pending\n"


def test_status_watch_json_waits_until_nothing_runs_then_prints_one_json_list(project: Path, tmp_path: Path) -> None:
    # it printed the counts line, which no JSON reader takes
    go = tmp_path / "go"
    make_experiment(project, [{"c": 0}, {"c": 1}], f"while [ ! -e {go} ]; do sleep 0.05; done")
    runner = start_mrl("run", "-j", "2", cwd=project)
    try:
        exp_dir = project / "output" / "0001"
        wait_for(lambda: all(_recorded(exp_dir / s) == "running" for s in ("001", "002")), what="both running")
        watcher = start_mrl("status", "--watch", "--json", cwd=project)
        go.touch()
        out, err = watcher.communicate(timeout=60)
    finally:
        runner.communicate(timeout=60)
    assert watcher.returncode == 0, err
    rows = json.loads(out)
    assert [r["state"] for r in rows] == ["done", "done"]


def _recorded(sub: Path) -> str | None:
    try:
        return json.loads((sub / ".mrl.status").read_text())["state"]
    except (OSError, ValueError):  # not yet written, or being replaced
        return None


def test_status_of_an_experiment_without_sub_experiments_says_what_to_do(project: Path, capsys) -> None:
    main(["new", "-cp", "no", "empty"])
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "makebatch" in capsys.readouterr().out


def test_a_wide_resource_name_keeps_the_status_columns_aligned_on_a_terminal(project: Path) -> None:
    # `where` 显卡0 (two terminal cells per character) shifted host and start one cell per
    # character: widths were counted in characters, not cells.
    import re
    import unicodedata

    exp = make_experiment(project, [{"c": 0}, {"c": 1}], "true")
    first, second = exp.sub_experiments()
    first.write_status(Status(JobState.DONE, attempts=1, exit_code=0, resource="显卡0", host="h1"))
    second.write_status(Status(JobState.DONE, attempts=1, exit_code=0, resource="gpu1", host="h2"))
    out = run_mrl("status", cwd=project).stdout.splitlines()

    def starts(line: str) -> list[int]:
        return [
            sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line[: m.start()])
            for m in re.finditer(r"\S+", line)
        ]

    assert starts(out[2])[-1] == starts(out[3])[-1], out  # the host column starts at one cell


def test_status_json_of_a_kill_9_gap_step_carries_only_what_is_proven_and_the_old_record_as_such(
    project: Path,
) -> None:
    """`mrl status --json` put the earlier attempt's record (failed, its exit code, its
    start and duration) at the top level of a row that said `state: running`."""
    import signal

    from tests.helpers.processes import alive, kill_runner_after_spawn, statuses

    exp = make_experiment(project, [{"x": 1}], "test -e ../again || exit 3; echo $$ > step.pid; sleep 60")
    assert run_mrl("run", cwd=project).returncode == 1
    before = statuses(exp.dir)["001"]
    (exp.dir / "again").write_text("")
    pid = kill_runner_after_spawn(project, exp.dir)
    try:
        proc = run_mrl("status", "--json", cwd=project)
        assert proc.returncode == 0, proc.stderr
        [row] = json.loads(proc.stdout)
        assert (row["state"], row["recordedState"], row["unrecorded"]) == ("running", "failed", True), row
        assert "exitCode" not in row and "start" not in row and "attempts" not in row, row
        assert isinstance(row["duration"], float) and row["duration"] != before["duration"], row
        assert row["lastRecord"] == before and row["host"] == os.uname().nodename
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)  # the test's own step, by the pid it wrote
