"""The heartbeat: a runner refreshes its live records; another host's record that is not
refreshed for `run.stale_after` seconds is stale and runs again (issue 10)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.backends.contract import make_experiment
from tests.helpers.processes import start_mrl, statuses, wait_for
from tests.helpers.repo import run_mrl, set_cfg


def _foreign_running(path: Path, age: float) -> None:
    path.write_text(
        json.dumps(
            {
                "state": "running",
                "attempts": 1,
                "host": "crashed-node",
                "backend": "local",
                "pid": 4242,
                "runnerPid": 4241,
            }
        )
    )
    then = time.time() - age
    os.utime(path, (then, then))


def test_another_hosts_record_without_heartbeat_is_stale_and_a_plain_run_reruns_it(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran > out.txt", stale_after=60, heartbeat=5)
    _foreign_running(exp.dir / "001" / ".mrl.status", age=120)  # crashed two minutes ago
    _foreign_running(exp.dir / "002" / ".mrl.status", age=1)  # still beating
    rows = json.loads(run_mrl("status", "--json", cwd=project, check=True).stdout)
    assert [r["state"] for r in rows] == ["stale", "running"]
    proc = run_mrl("run", cwd=project)
    assert "1 running or queued elsewhere (002)" in proc.stdout, proc.stdout
    assert (exp.dir / "001" / "out.txt").exists() and not (exp.dir / "002" / "out.txt").exists()
    assert statuses(exp.dir)["001"]["state"] == "done"


def test_the_default_stale_after_is_ten_minutes(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    _foreign_running(exp.dir / "001" / ".mrl.status", age=601)
    _foreign_running(exp.dir / "002" / ".mrl.status", age=500)
    rows = json.loads(run_mrl("status", "--json", cwd=project, check=True).stdout)
    assert [r["state"] for r in rows] == ["stale", "running"]


def test_the_runner_refreshes_its_running_records_every_heartbeat(project: Path) -> None:
    exp = make_experiment(
        project, [{"x": 1}], "touch started; while [ ! -e go ]; do sleep 0.05; done", heartbeat=0.2, stale_after=5
    )
    runner = start_mrl("run", cwd=project)
    sub = exp.dir / "001"
    try:
        wait_for(lambda: (sub / "started").exists() and statuses(exp.dir).get("001", {}).get("pid"))
        status = sub / ".mrl.status"
        text, first = status.read_text(), status.stat().st_mtime_ns
        wait_for(lambda: status.stat().st_mtime_ns > first, timeout=10, what="a heartbeat")
        assert status.read_text() == text  # refreshed, not rewritten
        claims = list((exp.dir / ".mrl.owners").glob("runner-*.json"))
        assert len(claims) == 1
        beat = claims[0].stat().st_mtime_ns
        wait_for(lambda: claims[0].stat().st_mtime_ns > beat, timeout=10, what="the claim's heartbeat")
    finally:
        (sub / "go").touch()
        runner.communicate(timeout=30)
    assert runner.returncode == 0
    assert not list((exp.dir / ".mrl.owners").glob("runner-*"))  # the claim went with the run


@pytest.mark.parametrize(
    ("run_block", "needle"),
    [
        ({"heartbeat": 0}, "'run.heartbeat' must be a number of seconds above 0"),
        ({"stale_after": -1}, "'run.stale_after' must be a number of seconds above 0"),
        ({"heartbeat": "often"}, "'run.heartbeat' must be"),
        ({"heartbeat": 60, "stale_after": 30}, "'run.stale_after' (30) must be larger than 'run.heartbeat' (60)"),
    ],
)
def test_bad_heartbeat_settings_are_one_error_line(project: Path, capsys, run_block, needle) -> None:  # type: ignore[no-untyped-def]
    set_cfg(project, run={"command": "true", **run_block})
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("mrl: error:") == 1, err
