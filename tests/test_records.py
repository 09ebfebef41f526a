"""records.py: the JSON records as dataclasses, kept lossless and never crashing a reader."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarunlog import jsonio
from metarunlog.main import main
from metarunlog.project import Project
from metarunlog.records import BatchRecord, ExperimentRecord, Status, SubRecord, valid_pid
from metarunlog.states import JobState, observed_state
from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def test_a_status_survives_the_json_round_trip() -> None:
    status = Status(
        JobState.RUNNING,
        attempts=2,
        steps_done=1,
        steps=3,
        host="h",
        pid=42,
        runner_pid=41,
        backend="slurm",
        job_id="7_3",
        command=["a", "b", "c"],
        submitted="t",
        slurm_state="X",
    )
    assert Status.from_json(json.loads(json.dumps(status.to_json()))) == status


def test_the_status_json_has_every_key_of_the_documented_schema() -> None:
    keys = set(Status().to_json())
    assert keys == {
        "state",
        "exitCode",
        "attempts",
        "stepsDone",
        "steps",
        "start",
        "end",
        "duration",
        "host",
        "pid",
        "runnerPid",
        "resource",
        "backend",
        "jobId",
        "node",
        "command",
    }


@pytest.mark.parametrize(
    ("field", "value", "read_as"),
    [
        ("duration", "fast", None),
        ("duration", float("nan"), None),
        ("duration", -3, None),
        ("pid", 10**30, None),
        ("pid", "123", None),
        ("pid", 0, None),  # os.killpg(0) would signal our own process group
        ("pid", -1, None),  # os.kill(-1) signals every process we may signal
        ("pid", True, None),
        ("runnerPid", 2.5, None),
        ("attempts", "two", 0),
        ("stepsDone", -1, 0),
        ("exitCode", "1", None),
        ("command", "python train.py", []),
        ("jobId", 12, "12"),
        ("state", "exploded", "exploded"),  # read as unknown (never failed), written back as it was
        ("state", ["running"], ["running"]),
        ("backend", 3, "local"),
    ],
)
def test_a_wrong_typed_status_field_reads_as_nothing_instead_of_crashing(field: str, value: Any, read_as: Any) -> None:
    status = Status.from_json({"state": "running", field: value})
    assert status.to_json()[field] == (read_as.value if isinstance(read_as, JobState) else read_as)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(Status().to_json()) + ["other"]), JSON))
def test_reading_any_json_object_as_a_status_never_raises(data: dict[str, Any]) -> None:
    status = Status.from_json(data)
    json.dumps(status.to_json())
    assert status.pid is None or valid_pid(status.pid) == status.pid


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), JSON))
def test_reading_any_json_object_as_an_experiment_record_never_raises_and_loses_nothing(
    data: dict[str, Any],
) -> None:
    rec = ExperimentRecord.from_json(data)
    out = rec.to_json()
    assert {k: v for k, v in out.items() if k != "batch"} == {k: v for k, v in data.items() if k != "batch"}


def test_unknown_status_keys_are_kept_through_every_transition() -> None:
    status = Status.from_json({"state": "queued", "backend": "slurm", "jobId": "1_1", "newerField": {"a": 1}})
    for step in (
        lambda s: s.begin(
            ["x"], first=0, host="h", runner_pid=1, resource=None, backend="slurm", job_id="1_1", node=None
        ),
        lambda s: s.attempt_started("t0"),
        lambda s: s.step_started(5),
        lambda s: s.step_done(0),
        lambda s: s.finished(JobState.DONE, 0, "t1", 1.0),
        lambda s: s.queued("slurm", "2_1", "t2"),
    ):
        status = step(status)
        assert status.to_json()["newerField"] == {"a": 1}


def test_transitions_leave_the_record_they_start_from_as_it_was() -> None:
    running = Status(JobState.RUNNING, pid=7, runner_pid=6, attempts=1)
    done = running.finished(JobState.DONE, 0, "t", 2.0)
    assert (running.state, running.pid) == (JobState.RUNNING, 7)
    assert (done.state, done.pid, done.exit_code, done.end, done.duration) == (JobState.DONE, None, 0, "t", 2.0)


def test_queueing_a_done_one_again_runs_every_step_and_forgets_the_scheduler_verdict() -> None:
    old = Status(JobState.DONE, steps_done=3, steps=3, attempts=1, slurm_state="COMPLETED", backend="slurm")
    queued = old.queued("slurm", "9_1", "t")
    assert (queued.state, queued.steps_done, queued.attempts, queued.job_id, queued.slurm_state) == (
        JobState.QUEUED,
        0,
        1,
        "9_1",
        None,
    )
    failed = Status(JobState.FAILED, steps_done=2, steps=3)
    assert failed.queued("slurm", "9_2", "t").steps_done == 2  # resumes at the failed step


def test_a_cancel_keeps_an_end_already_written() -> None:
    assert Status(JobState.RUNNING, pid=3).cancelled("now") == Status(JobState.CANCELLED, end="now")
    assert Status(JobState.CANCELLED, end="before").cancelled("now", slurm_state="CANCELLED").end == "before"


def test_a_batch_record_writes_the_one_job_keys_only_for_a_one_job_experiment() -> None:
    assert "params" not in BatchRecord(n=3).to_json()
    single = BatchRecord(n=1, single=True, params={"a": 1}, rendered={"conf": "sha"})
    assert BatchRecord.from_json(single.to_json()) == single


def test_a_sub_record_keeps_keys_it_does_not_know() -> None:
    rec = SubRecord.from_json({"subExpId": 2, "params": {"lr": 1}, "tag": "x"})
    assert rec.to_json() == {"subExpId": 2, "params": {"lr": 1}, "tag": "x"}


def test_an_experiment_record_reads_like_the_json_it_is_stored_as() -> None:
    rec = ExperimentRecord.from_json({"expId": 3, "gitHash": "abc", "dirty": "yes", "mine": 1})
    assert rec["gitHash"] == "abc" and rec.get("mine") == 1 and rec.get("nope") is None
    assert rec.dirty is False and rec["dirty"] == "yes"  # an older tool's value, written back as found
    assert {**rec}["expId"] == 3


# -- on disk, through the commands -----------------------------------------------------------------


def test_makebatch_keeps_keys_of_the_experiment_record_it_does_not_know(project: Path, capsys) -> None:
    assert main(["new", "x"]) == 0
    exp = Project.find(project).load_exp("last")
    data = json.loads((exp.dir / ".mrl").read_text())
    jsonio.write_json(exp.dir / ".mrl", {**data, "fromANewerMrl": {"tags": ["a"]}})
    assert main(["makebatch"]) == 0
    data = json.loads((exp.dir / ".mrl").read_text())
    assert data["fromANewerMrl"] == {"tags": ["a"]} and data["batch"]["n"] == 9


def test_run_keeps_keys_of_the_status_record_it_does_not_know(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"c": 1}], "exit {{c}}")
    sub = exp.sub_experiments()[0]
    jsonio.write_json(sub.status_path, {"state": "failed", "exitCode": 1, "attempts": 1, "note": "keep me"})
    assert main(["run", "--failed"]) == 1
    data = json.loads(sub.status_path.read_text())
    assert data["note"] == "keep me" and data["attempts"] == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"pid": 0},
        {"pid": -1},
        {"pid": "123"},
        {"pid": 10**30},
        {"duration": "fast"},
        {"duration": float("nan")},
        {"runnerPid": 10**30},
    ],
)
def test_status_table_and_cancel_read_a_wrong_typed_record_without_crashing_or_signalling(
    project: Path, bad: dict[str, Any]
) -> None:
    exp = make_experiment(project, [{"c": 0}], "true")
    sub = exp.sub_experiments()[0]
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = {"state": "running", "host": socket.gethostname(), "runnerPid": gone.pid, "backend": "local", **bad}
    sub.status_path.write_text(json.dumps(record))  # json.dumps writes NaN as the JSON readers accept
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    for cmd in (["status"], ["status", "--json"], ["table"], ["cancel"]):
        # Its own session: a pid 0 that reached killpg would stop only that mrl.
        res = subprocess.run(
            [sys.executable, "-m", "metarunlog", *cmd],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert res.returncode in (0, 1), (cmd, res.returncode, res.stderr)
        assert res.returncode != -signal.SIGTERM and "Traceback" not in res.stderr, res.stderr
    assert observed_state(sub.read_status()) in (JobState.STALE, JobState.CANCELLED)


def test_a_status_reads_like_the_json_it_is_stored_as() -> None:
    status = Status(JobState.DONE, exit_code=0, extra={"note": "x"})
    assert status["state"] == "done" and status.get("exitCode") == 0 and status.get("note") == "x"
    assert dict(status)["backend"] == "local" and "slurmState" not in status
    assert Status() and ExperimentRecord()  # truthy without building the JSON (`status or default`)


def test_a_requeued_task_keeps_its_job_id_and_attempts_and_forgets_where_it_ran() -> None:
    running = Status(
        JobState.RUNNING,
        attempts=1,
        steps_done=1,
        host="n1",
        node="n1",
        pid=5,
        runner_pid=4,
        backend="slurm",
        job_id="3_1",
        start="t0",
    )
    queued = running.requeued("t1")
    assert (queued.state, queued.job_id, queued.attempts, queued.steps_done) == (JobState.QUEUED, "3_1", 1, 1)
    assert (queued.host, queued.node, queued.pid, queued.runner_pid, queued.start) == (None,) * 5
    assert queued.submitted == "t1"


def test_a_reason_shows_while_the_state_shown_is_the_records_own() -> None:
    # the one rule mrl status, mrl info and the report's summary/facts table follow
    st = Status().not_started("not started: its Slurm task 9 ended first")
    assert st.reason_shown(JobState.PENDING) == "not started: its Slurm task 9 ended first"
    assert st.reason_shown(JobState.CANCELLED) == ""  # a later word is about something else
    assert Status().reason_shown(JobState.PENDING) == ""
