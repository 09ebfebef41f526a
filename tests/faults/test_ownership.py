"""A run owns its experiment: makebatch -replace/--extend refuse while it lives, and a
runner never runs a sub-experiment whose params changed after it planned it (issue 10,
"Silent wrong results")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from metarunlog.main import main
from tests.helpers.processes import start_mrl
from tests.helpers.repo import REPO_ROOT, commit_all, run_mrl, set_cfg


def _race_project(project: Path) -> Path:
    (project / "conf.json").write_text('{"x": {{x}}}\n')
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": "echo {{x}} > ran.txt", "jobs": 1})
    commit_all(project, "race")
    assert main(["new", "race"]) == 0
    assert main(["makebatch", "--grid", "x=0,1,2"]) == 0
    return project / "output" / "0001"


def _set_run(expdir: Path, command: str) -> None:
    """The experiment's own run.command (EXPDIR/.mrl.cfg): the project's block was pinned by `mrl new`."""
    (expdir / ".mrl.cfg").write_text(json.dumps({"run": {"command": command, "jobs": 1}}))


def _mismatches(expdir: Path) -> list[str]:
    """Every folder (in place or trashed) whose ran.txt is not its own params' x."""
    bad = []
    for ran in expdir.rglob("ran.txt"):
        params = json.loads((ran.parent / ".mrl").read_text())["params"]
        if ran.read_text().strip() != str(params["x"]):
            bad.append(f"{ran.parent}: ran x={ran.read_text().strip()} but params say x={params['x']}")
    return bad


def test_makebatch_replace_racing_mrl_run_never_runs_new_params_with_old_commands(project: Path) -> None:
    expdir = _race_project(project)
    for i in range(20):
        runner = start_mrl("run", "--force", cwd=project, new_session=False)
        time.sleep(0.05 * (i % 8))
        base = 10 * (i + 1)
        replace = run_mrl("makebatch", "-replace", "--grid", f"x={base},{base + 1},{base + 2}", cwd=project)
        out, err = runner.communicate(timeout=120)
        assert "Traceback" not in err + replace.stderr, err + replace.stderr
        bad = _mismatches(expdir)
        assert not bad, f"try {i}: {bad}\nrun: {out}{err}\nreplace: {replace.stdout}{replace.stderr}"


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_makebatch_replace_and_extend_refuse_while_a_run_owns_the_experiment(project: Path) -> None:
    expdir = _race_project(project)
    _set_run(expdir, "touch started; while [ ! -e {{expDir}}/go ]; do sleep 0.05; done")
    runner = start_mrl("run", cwd=project, new_session=False)
    try:
        _wait_for(expdir / "001" / "started")
        for flag in ("-replace", "--extend"):
            proc = run_mrl("makebatch", flag, "--grid", "x=5,6,7,8", cwd=project)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            errors = [line for line in proc.stderr.splitlines() if line.startswith("mrl: error:")]
            assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert f"pid {runner.pid}" in errors[0] and flag in errors[0], errors[0]
        assert sorted(p.name for p in expdir.iterdir() if p.name.isdigit()) == ["001", "002", "003"]
    finally:
        (expdir / "go").touch()
        runner.communicate(timeout=120)
    assert runner.returncode == 0
    # once the run is over, -replace works again
    assert run_mrl("makebatch", "-replace", "--grid", "x=5,6", cwd=project).returncode == 0


def test_a_sub_experiment_whose_params_changed_after_planning_is_skipped_not_run(project: Path) -> None:
    expdir = _race_project(project)
    # 001's step rewrites 002's params while the runner (one worker) still has 002 queued
    change = (
        "python -c \"import json,pathlib; p=pathlib.Path('{{expDir}}/002/.mrl'); "
        "d=json.loads(p.read_text()); d['params']['x']=99; p.write_text(json.dumps(d))\""
    )
    _set_run(expdir, f"if [ {{{{subExpNum}}}} = 1 ]; then {change}; fi; echo {{{{x}}}} > ran.txt")
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "002" in proc.stderr and "changed after this run planned it" in proc.stderr, proc.stderr
    assert not (expdir / "002" / "ran.txt").exists()
    assert not (expdir / "002" / ".mrl.status").exists()  # nothing claims it ran
    assert (expdir / "003" / "ran.txt").read_text().strip() == "2"
    assert "1 skipped: changed after planning" in proc.stdout
    assert _mismatches(expdir) == []


def test_a_task_given_a_plan_skips_a_sub_experiment_that_changed_since(project: Path) -> None:
    from metarunlog.project import Project

    expdir = _race_project(project)
    exp = Project.find(project).load_exp("1")
    planned = {str(s.id): s.fingerprint() for s in exp.sub_experiments()}
    plan = project / "plan.json"
    plan.write_text(json.dumps(planned))
    task = [
        sys.executable,
        "-m",
        "metarunlog.backends.task",
        str(expdir),
        "1",
        "--backend",
        "local",
        "--plan",
        str(plan),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    assert subprocess.run(task, env=env, capture_output=True).returncode == 0
    assert (expdir / "001" / "ran.txt").read_text().strip() == "0"
    assert run_mrl("makebatch", "-replace", "--grid", "x=7,8,9", cwd=project).returncode == 0
    task[4] = "2"
    proc = subprocess.run(task, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "changed after this run planned it" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (expdir / "002" / "ran.txt").exists() and not (expdir / "002" / ".mrl.status").exists()


def test_makebatch_replace_refuses_while_an_orphaned_step_of_a_killed_runner_still_runs(project: Path) -> None:
    import signal

    from tests.helpers.processes import alive, start_mrl, statuses, wait_for

    expdir = _race_project(project)
    _set_run(expdir, "echo $$ > pid.txt; sleep 60")
    runner = start_mrl("run", "-j", "3", cwd=project)
    wait_for(
        lambda: [(s.get("state"), bool(s.get("pid"))) for s in statuses(expdir).values()] == [("running", True)] * 3,
        what="the records to say running",
    )
    runner.kill()  # kill -9: its claim is gone, its steps (no longer holding the lock) run on
    runner.wait()
    steps = [int((expdir / n / "pid.txt").read_text()) for n in ("001", "002", "003")]
    try:
        proc = run_mrl("makebatch", "-replace", cwd=project)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "still running" in proc.stderr and "mrl cancel" in proc.stderr, proc.stderr
        assert not (expdir / ".trash").exists()
        assert run_mrl("cancel", cwd=project).returncode == 0
        wait_for(lambda: not any(alive(p) for p in steps), what="the steps to stop")
        proc = run_mrl("makebatch", "-replace", cwd=project)
        assert proc.returncode == 0, proc.stderr
    finally:
        for p in steps:
            if alive(p):
                os.kill(p, signal.SIGKILL)
