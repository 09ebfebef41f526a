"""A sub-experiment folder removed while `mrl run` runs it (or before its slot takes it),
perhaps made again under its name with other params: the run says what happened, exits 1,
and writes nothing of its own into the folder that is there now."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.processes import start_mrl, wait_for
from tests.helpers.repo import commit_all, run_mrl, set_cfg

WAITS = "touch started; while [ ! -e {{expDir}}/go ]; do sleep 0.05; done; echo {{x}} > ran.txt"


def _exp(project: Path) -> Path:
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": WAITS, "jobs": 1})
    commit_all(project, "waits")
    assert main(["new", "removed"]) == 0
    assert main(["makebatch", "--grid", "x=0,1,2"]) == 0
    return project / "output" / "0001"


def test_a_folder_removed_and_made_again_while_it_runs_gets_nothing_of_that_run(project: Path, tmp_path: Path) -> None:
    expdir = _exp(project)
    spare = tmp_path / "spare"
    shutil.copytree(expdir / "003", spare)  # x=2: "other params" under the old name
    runner = start_mrl("run", cwd=project)
    try:
        wait_for(lambda: (expdir / "001" / "started").exists(), 60, "001's step")
        shutil.rmtree(expdir / "001")
        shutil.copytree(spare, expdir / "001")
        shutil.rmtree(expdir / "002")  # not started yet: its slot finds it gone
    finally:
        (expdir / "go").touch()
        out, err = runner.communicate(timeout=120)
    assert runner.returncode == 1, out + err
    assert "Traceback" not in err, err
    # nothing of this run's x=0 in the folder that has x=2 now: no record, no log, no step
    assert sorted(p.name for p in (expdir / "001").iterdir()) == [".mrl"], list((expdir / "001").iterdir())
    assert json.loads((expdir / "001" / ".mrl").read_text())["params"] == {"x": 2}
    summary = out.strip().splitlines()[-1]
    assert "pending" not in summary and "failed" not in summary, summary
    assert "1 done" in summary and "2 removed during the run" in summary, summary
    assert "001: its folder" in err and "removed and made again while this run ran it" in err, err
    assert "002: its folder" in err and "removed after this run planned it" in err, err
    assert not (expdir / "002").exists()


def test_a_folder_removed_while_it_runs_is_not_counted_pending(project: Path) -> None:
    expdir = _exp(project)
    runner = start_mrl("run", "1", "1", cwd=project)
    try:
        wait_for(lambda: (expdir / "001" / "started").exists(), 60, "001's step")
        shutil.rmtree(expdir / "001")
    finally:
        (expdir / "go").touch()
        out, err = runner.communicate(timeout=120)
    assert runner.returncode == 1, out + err
    summary = out.strip().splitlines()[-1]
    assert "pending" not in summary and "1 removed during the run" in summary, summary
    assert "was removed while this run ran it: nothing of it is left; what this run knew of it is kept in" in err, err
    assert not (expdir / "001").exists()
    assert json.loads((expdir / ".mrl.gone" / "001.json").read_text())["subExpId"] == 1


def test_a_step_that_removes_its_lock_and_record_in_its_folder_still_gets_its_record(project: Path) -> None:
    # cleaning its cwd (`rm -f .mrl.*`) is no folder made again: the folder is the same one
    set_cfg(
        project, confTemplFile=None, copyFiles=[], run={"command": "rm -f .mrl.lock .mrl.status; echo {{x}} > ran.txt"}
    )
    commit_all(project, "cleans")
    assert main(["new", "cleans"]) == 0
    assert main(["makebatch", "--grid", "x=0,1"]) == 0
    expdir = project / "output" / "0001"
    assert main(["run"]) == 0
    for name in ("001", "002"):
        assert json.loads((expdir / name / ".mrl.status").read_text())["state"] == "done"


def test_a_folder_restored_from_a_backup_while_a_rerun_runs_keeps_its_metrics(project: Path, tmp_path: Path) -> None:
    # A rerun sets the last attempt's metrics aside; when its folder is removed and made
    # again (a backup restored) before the next step, that execution moves nothing in the
    # new folder: before, its put-back moved the restored metrics.json into .mrl.attempts/2.
    waits = "touch started; while [ ! -e {{expDir}}/go ]; do sleep 0.05; done"
    steps = [waits, "echo '{\"acc\": {{x}}}' > metrics.json"]
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": steps, "jobs": 1})
    commit_all(project, "two steps")
    assert main(["new", "restored"]) == 0
    assert main(["makebatch", "--grid", "x=0"]) == 0
    expdir = project / "output" / "0001"
    (expdir / "go").touch()
    assert main(["run"]) == 0
    (expdir / "go").unlink()
    backup = tmp_path / "backup"
    shutil.copytree(expdir / "001", backup, symlinks=True)
    (backup / "started").unlink()
    (expdir / "001" / "started").unlink()
    before = sorted(str(p.relative_to(backup)) for p in backup.rglob("*"))
    assert "metrics.json" in before
    runner = start_mrl("run", "--force", cwd=project)
    try:
        wait_for(lambda: (expdir / "001" / "started").exists(), 60, "001's first step")
        shutil.rmtree(expdir / "001")
        shutil.copytree(backup, expdir / "001", symlinks=True)
    finally:
        (expdir / "go").touch()
        out, err = runner.communicate(timeout=120)
    assert runner.returncode == 1, out + err
    assert "Traceback" not in err, err
    assert sorted(str(p.relative_to(expdir / "001")) for p in (expdir / "001").rglob("*")) == before


def _two_subs(project: Path, command: str, **run: object) -> Path:
    """An experiment of x=0,1 whose run.command is `command`; its folder."""
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": command, **run})
    commit_all(project, "its command")
    assert main(["new", "two"]) == 0
    assert main(["makebatch", "--grid", "x=0,1"]) == 0
    return project / "output" / "0001"


@pytest.mark.parametrize(
    "wipe",
    ['rm -rf "$MRL_SUBEXP_DIR"; mkdir "$MRL_SUBEXP_DIR"', "rm -f .mrl.status .mrl.lock"],
    ids=["folder made again", "records removed"],
)
def test_status_of_a_step_that_wiped_its_own_folder_says_running_never_pending(project: Path, wipe: str) -> None:
    # after its runner wrote its `running` record: a wipe before it left that record in place
    first = "while [ ! -e .mrl.status ]; do sleep 0.01; done"
    waits = f'{first}; {wipe}; touch "$MRL_SUBEXP_DIR/wiped"; while [ ! -e {{{{expDir}}}}/go ]; do sleep 0.05; done'
    expdir = _two_subs(project, waits)
    runner = start_mrl("run", "1", "1", cwd=project)
    try:
        wait_for(lambda: (expdir / "001" / "wiped").exists(), 60, "001's step to wipe its folder")
        shown = run_mrl("status", cwd=project)
        rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    finally:
        (expdir / "go").touch()
        runner.communicate(timeout=120)
    assert shown.returncode == 0, shown.stderr
    line = next(row for row in shown.stdout.splitlines() if row.startswith("001 "))
    assert line.split()[1] == "running", shown.stdout
    assert "001: its step (pid" in shown.stdout and "removed" in shown.stdout, shown.stdout
    assert rows[0]["state"] == "running" and "removed" in rows[0]["note"], rows
    assert rows[1]["state"] == "pending", rows  # 002 was never run


def test_a_step_that_removes_its_own_folder_for_good_has_a_status_row_and_run_and_table_say_what_to_do(
    project: Path,
) -> None:
    # the record lives in the folder: `mrl status` had no row for 001 at all, while its step
    # ran and after, `mrl run 1` said "no sub-experiment 1", and `mrl table` looked whole
    removes = 'if [ {{x}} = 0 ]; then rm -rf "$MRL_SUBEXP_DIR"; fi; touch {{expDir}}/started-{{x}}'
    waits = f"{removes}; while [ ! -e {{{{expDir}}}}/go ]; do sleep 0.05; done"
    expdir = _two_subs(project, waits, jobs=2)
    runner = start_mrl("run", cwd=project)
    try:
        try:
            wait_for(lambda: (expdir / "started-0").exists() and (expdir / "started-1").exists(), 60, "both steps")
        except AssertionError:
            (expdir / "go").touch()
            raise AssertionError(runner.communicate(timeout=60)) from None
        shown = run_mrl("status", cwd=project)
        rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    finally:
        (expdir / "go").touch()
        out, err = runner.communicate(timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[:2] for line in shown.stdout.splitlines()[2:4]] == [["001", "running"], ["002", "running"]]
    assert "001: its step (pid" in shown.stdout and "its folder was removed as it ran" in shown.stdout, shown.stdout
    assert [r["state"] for r in rows] == ["running", "running"], rows
    assert runner.returncode == 1 and "Traceback" not in err, out + err
    assert "what this run knew of it is kept in" in err and "makebatch --extend" in err, err

    shown = run_mrl("status", cwd=project)
    assert shown.stdout.splitlines()[0].endswith("2 sub-experiment(s): 1 done, 1 gone"), shown.stdout
    line = next(row for row in shown.stdout.splitlines() if row.startswith("001 "))
    assert line.split()[1] == "gone", shown.stdout
    assert "001: its folder was removed while mrl (pid" in shown.stdout, shown.stdout
    assert "its step then ended done, exit 0" in shown.stdout and "makebatch --extend" in shown.stdout, shown.stdout
    (row, _) = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    assert (row["id"], row["state"], row["recordedState"], row["exitCode"]) == (1, "gone", "done", 0), row
    assert not (expdir / ".mrl.done").exists()  # not every one is done

    for args in (["run"], ["run", "1"]):
        proc = run_mrl(*args, cwd=project)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        assert "mrl: warning: 001: its folder was removed while mrl ran it: not run;" in proc.stderr
        assert "makebatch --extend" in proc.stderr and "no sub-experiment" not in proc.stderr, proc.stderr
    table = run_mrl("table", "--json", cwd=project)
    assert table.returncode == 0, table.stderr
    assert [r["id"] for r in json.loads(table.stdout)] == ["002"], table.stdout
    assert "mrl: warning: 001: its folder was removed while mrl ran it: no row for it" in table.stderr

    assert run_mrl("makebatch", "--extend", cwd=project).returncode == 0
    assert json.loads((expdir / "003" / ".mrl").read_text())["params"] == {"x": 0}
    rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    assert [(r["id"], r["state"]) for r in rows] == [(2, "done"), (3, "pending")], rows


def test_mrl_cancel_stops_a_step_that_removed_its_own_folder(project: Path) -> None:
    # status showed it running, but `mrl cancel` picked from the folders: `mrl cancel 1` said
    # "no sub-experiment 1" and `mrl cancel` left it running
    waits = 'rm -rf "$MRL_SUBEXP_DIR"; touch {{expDir}}/started; while [ ! -e {{expDir}}/go ]; do sleep 0.05; done'
    expdir = _two_subs(project, waits)
    runner = start_mrl("run", "1", "1", cwd=project)
    try:
        wait_for(lambda: (expdir / "started").exists(), 60, "the step")
        proc = run_mrl("cancel", "1", "1", cwd=project, timeout=60)
    finally:
        (expdir / "go").touch()
        out, err = runner.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "001: cancelled (its folder was removed as it ran; its runner stopped its step)"
    assert runner.returncode == 1 and "1 removed during the run" in out, out + err  # no record of it: not 130
    rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    assert [(r["id"], r["state"], r.get("recordedState")) for r in rows] == [
        (1, "gone", "cancelled"),
        (2, "pending", None),
    ]


# `mrl run` whose step removes its folder before the runner writes its `running` record
# (the race a step that removes it first thing wins now and then, made sure of)
LATE_RECORD = """
import os, sys, time
from metarunlog import execute
from metarunlog.main import main
real = execute.spawned_start_id
def late(*args):
    while not os.path.exists(os.environ["REMOVED"]):
        time.sleep(0.01)
    return real(*args)
execute.spawned_start_id = late
sys.exit(main(sys.argv[1:]))
"""


def test_a_step_that_removes_its_folder_before_its_running_record_is_not_stopped(project: Path) -> None:
    # the `running` record's write found no folder: mrl stopped the step as on a full disk
    # ("mrl could not record it"), and nothing was kept of it
    waits = 'rm -rf "$MRL_SUBEXP_DIR"; touch {{expDir}}/removed; while [ ! -e {{expDir}}/go ]; do sleep 0.05; done'
    expdir = _two_subs(project, waits)
    runner = start_mrl("run", "1", "1", cwd=project, script=LATE_RECORD, env={"REMOVED": str(expdir / "removed")})
    try:
        wait_for(lambda: (expdir / "removed").exists(), 60, "the step")
        shown = run_mrl("status", "--json", cwd=project)
    finally:
        (expdir / "go").touch()
        out, err = runner.communicate(timeout=120)
    assert runner.returncode == 1 and "could not record it" not in err, out + err
    assert json.loads(shown.stdout)[0]["state"] == "running", shown.stdout
    rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    assert (rows[0]["state"], rows[0]["recordedState"], rows[0]["exitCode"]) == ("gone", "done", 0), rows
