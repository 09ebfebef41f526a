"""A `.mrl.status` whose `state` this mrl does not know (a newer mrl wrote it).

It read as `failed`: `mrl table` said failed, `mrl run` (and `--failed`) ran it again and
wrote over the newer record. It now reads as `unknown`, with a note naming the state as
written, in status, table, info, ls and the API; `mrl run` leaves it alone, saying why,
unless `--force` asks for it; a record written back keeps the state it had.
"""

from __future__ import annotations

import json
from pathlib import Path

from metarunlog import api
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.records import done
from tests.helpers.repo import run_mrl


def newer_exp(project: Path):  # type: ignore[no-untyped-def]
    """001 done, 002 `paused` (a newer mrl's state, with a key of its own), 003 garbage."""
    exp = make_experiment(project, [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}], "echo ran >> ran.txt")
    (exp.dir / "001" / ".mrl.status").write_text(json.dumps(done().to_json()))
    newer = {**done().to_json(), "state": "paused", "pausedAt": "2026-12-01T10:00:00+00:00", "exitCode": None}
    (exp.dir / "002" / ".mrl.status").write_text(json.dumps(newer))
    (exp.dir / "003" / ".mrl.status").write_text(json.dumps({**done().to_json(), "state": 5}))
    return exp


def ok(project: Path, *args: str) -> str:
    proc = run_mrl(*args, cwd=project)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_state_this_mrl_does_not_know_reads_unknown_never_failed(project: Path) -> None:
    exp = newer_exp(project)
    rows = json.loads(ok(project, "status", "--json"))
    assert [(r["name"], r["state"], r["recordedState"]) for r in rows] == [
        ("001", "done", "done"),
        ("002", "unknown", "paused"),
        ("003", "unknown", 5),
    ]
    assert "its .mrl.status says state paused, which this mrl does not know" in rows[1]["note"]
    text = ok(project, "status")
    assert text.splitlines()[0] == f"{exp.name}: 3 sub-experiment(s): 1 done, 2 unknown"
    assert "failed" not in text and "002: its .mrl.status says state paused" in text
    assert [r["state"] for r in json.loads(ok(project, "table", "--json"))] == ["done", "unknown", "unknown"]
    info = json.loads(ok(project, "info", f"{exp.id}/2", "--json"))
    assert info["state"] == "unknown" and "state paused" in info["note"] and info["pausedAt"]
    assert "state paused, which this mrl does not know" in ok(project, "info", f"{exp.id}/2")
    assert ok(project, "ls").splitlines()[0].startswith(f"** {exp.name}")  # not done, not failed
    assert list(api.load_table(exp.id)["state"]) == ["done", "unknown", "unknown"]


def test_mrl_run_leaves_a_newer_record_alone_unless_forced(project: Path) -> None:
    exp = newer_exp(project)
    before = (exp.dir / "002" / ".mrl.status").read_bytes()
    for args in ((), ("--failed",)):
        proc = run_mrl("run", *args, cwd=project)
        assert "Traceback" not in proc.stderr
        assert (exp.dir / "002" / ".mrl.status").read_bytes() == before, args
        assert not (exp.dir / "002" / "ran.txt").exists()
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1
    assert "skipping 1 done (--force reruns them), 2 in a state this mrl does not know (002, 003)" in proc.stdout
    assert (
        "mrl: warning: 002 not run: its .mrl.status says state paused, which this mrl does not know (a newer mrl "
        "wrote it?): shown as unknown and left as it is (upgrade mrl, or `mrl run --force` runs it again)"
    ) in proc.stderr
    forced = run_mrl("run", "--force", f"{exp.id}/2", cwd=project)  # asked for: run, as any --force
    assert forced.returncode == 0, forced.stderr
    assert json.loads((exp.dir / "002" / ".mrl.status").read_text())["state"] == "done"
    assert (exp.dir / "002" / "ran.txt").read_text() == "ran\n"


def test_a_record_in_an_unknown_state_is_written_back_as_it_was() -> None:
    raw = {**done().to_json(), "state": "paused", "pausedAt": "x"}
    st = Status.from_json(raw)
    assert st.state is JobState.UNKNOWN and st.unknown_state == "paused"
    assert st.to_json() == raw  # a record rewritten (a Slurm settle, a hook) keeps the newer state
    assert Status.from_json({"state": "done"}).unknown_state == ""
    assert JobState.UNKNOWN not in (JobState.FAILED, JobState.DONE) and not JobState.UNKNOWN.finished
