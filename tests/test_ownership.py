"""metarunlog/ownership.py: claim files of `mrl run` processes and backends, who is alive, cancel
requests, the batch lock. Claims are taken by real processes (killed with SIGKILL, leaving an
orphaned step); the makebatch/run races are in tests/faults/test_ownership.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metarunlog import ownership
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.locks import is_flocked
from metarunlog.procs import HOST
from metarunlog.project import Project
from tests.helpers.records import make_exp
from tests.helpers.repo import REPO_ROOT

HOLDER = """
import subprocess, sys, time
from metarunlog import ownership
from metarunlog.project import Project
exp = Project.find(sys.argv[1]).load_exp(sys.argv[2])
if sys.argv[3] == "lock":
    with ownership.batch_lock(exp):
        print("held", flush=True)
        time.sleep(60)
with ownership.batch_lock(exp):
    claim = ownership.claim_runner(exp)
step = subprocess.Popen(["sleep", "60"], close_fds=False)  # a step that would inherit a plain fd
print(step.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def exp(project: Path) -> Experiment:
    return make_exp(project, [{"params": {"lr": 0.1}}, {"params": {"lr": 0.2}}])


@pytest.fixture
def holder(exp: Experiment) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A real process that claimed `exp` and started a step: (the process, the step's pid)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(exp.dir.parent.parent), str(exp.id), "claim"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    step = proc.stdout.readline().strip()
    try:
        yield proc, step
    finally:
        for pid in (proc.pid, int(step)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_runner_s_claim_names_it_and_is_held_until_released(exp: Experiment) -> None:
    with ownership.batch_lock(exp):
        claim = ownership.claim_runner(exp)
    path = exp.dir / ".mrl.owners" / f"runner-{HOST}-{os.getpid()}.json"
    assert claim.path == path and is_flocked(path)
    data = json.loads(path.read_text())
    assert (data["backend"], data["host"], data["pid"]) == ("runner", HOST, os.getpid()) and data["started"]
    (found,) = ownership.live_runners(exp)
    assert found.describe() == f"mrl run (pid {os.getpid()} on {HOST}, since {data['started']})"
    assert ownership.owners(exp) == [found.describe()]
    claim.release()
    claim.release()  # twice is harmless
    assert not is_flocked(path) and ownership.live_runners(exp) == [] and ownership.owners(exp) == []


def test_a_claim_of_a_killed_runner_owns_nothing_even_while_its_orphaned_step_lives(
    exp: Experiment, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, step = holder
    (claim,) = ownership.claims(exp)
    assert claim.pid == proc.pid and ownership.runner_alive(claim)
    with pytest.raises(MrlError, match=rf"is being run by mrl run \(pid {proc.pid} .*`mrl cancel {exp.id}`"):
        ownership.check_not_owned(exp, "makebatch -replace")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert Path(f"/proc/{step}").exists()  # the step lives on, and never held the claim (O_CLOEXEC)
    assert not ownership.runner_alive(claim) and ownership.owners(exp) == []
    ownership.check_not_owned(exp, "makebatch -replace")  # no error
    assert claim.path is not None
    stem = claim.path.name[: -len(".json")]
    (claim.path.parent / f"{stem}.jobs").write_text("[1, 2]")  # what it had planned
    (claim.path.parent / f"{stem}.cancel-5-5.req").write_text("[1]")  # a request it never answered
    with ownership.batch_lock(exp):
        mine = ownership.claim_runner(exp)  # the next run drops the dead claim, and its files
    with mine:
        assert [c.pid for c in ownership.claims(exp)] == [os.getpid()]
        assert not [n for n in os.listdir(claim.path.parent) if n.startswith(stem + ".")]


def test_another_host_s_claim_owns_while_its_heartbeat_is_younger_than_stale_after(exp: Experiment) -> None:
    claim = ownership.Claim("runner", "other-node", 4242, "2024-01-01T00:00:00")
    path = ownership.write_claim(exp, claim, "runner-other-node-4242")
    (read,) = ownership.claims(exp)
    assert ownership.runner_alive(read, stale_after=600)
    old = time.time() - 700
    os.utime(path, (old, old))
    assert not ownership.runner_alive(read, stale_after=600) and ownership.runner_alive(read, stale_after=800)
    assert ownership.live_runners(exp) == []  # live_runners: this machine's only


def test_the_heartbeat_refreshes_the_claim_s_mtime(exp: Experiment) -> None:
    with ownership.batch_lock(exp):
        claim = ownership.claim_runner(exp)
    with claim:
        os.utime(claim.path, (1, 1))
        claim.touch()
        assert time.time() - claim.path.stat().st_mtime < 3600


def test_claims_skip_what_proves_nothing_and_keep_what_they_do_not_know(exp: Experiment) -> None:
    folder = exp.dir / ".mrl.owners"
    folder.mkdir()
    (folder / "corrupt.json").write_text('{"backend": "runn')
    (folder / "list.json").write_text("[1, 2]")
    (folder / ".hidden.json").write_text('{"backend": "runner"}')
    (folder / "runner-x.jobs").write_text("[1]")
    (folder / "slurm-7.json").write_text(
        json.dumps({"backend": "acme", "host": "h", "pid": "not a pid", "started": "t", "jobIds": [7, "8_1"], "q": 1})
    )
    (claim,) = ownership.claims(exp)
    assert (claim.backend, claim.pid, claim.job_ids, claim.extra) == ("acme", None, ["7", "8_1"], {"q": 1})
    assert claim.to_json() == {
        "backend": "acme",
        "host": "h",
        "pid": None,
        "started": "t",
        "jobIds": ["7", "8_1"],
        "q": 1,
    }
    assert claim.describe() == "acme job(s) 7, 8_1"
    assert ownership.Claim.from_json({}, folder / "x.json").backend == "runner"


def test_no_owners_folder_is_no_claims(exp: Experiment) -> None:
    assert ownership.claims(exp) == [] and ownership.owners(exp) == []


def test_a_cancel_request_is_answered_with_the_ids_the_runner_stopped(exp: Experiment) -> None:
    with ownership.batch_lock(exp):
        runner = ownership.claim_runner(exp)
    with runner:
        runner.set_jobs([1, 2])
        (claim,) = ownership.claims(exp)
        assert ownership.runner_jobs(claim) == {1, 2}
        request = ownership.request_cancel(claim, {2, 1})
        (asked,) = runner.take_requests()
        assert asked == (request, {1, 2})
        assert ownership.answer_with_notes(request) is None  # not answered yet
        runner.answer(request, [2])
        assert runner.take_requests() == [] and not request.exists()
        assert ownership.answer_with_notes(request) == {2: ""}
        assert ownership.answer_with_notes(request) is None  # an answer is read once
        noted = ownership.request_cancel(claim, {1, 2})
        runner.take_requests()
        runner.answer(noted, [1, 2], {2: "cancelled before it started"})
        assert ownership.answer_with_notes(noted) == {1: "", 2: "cancelled before it started"}


def test_an_answer_written_in_place_keeps_the_runner_s_notes_in_the_room_the_request_holds(tmp_path: Path) -> None:
    # on a full disk the answer is written over the taken request: it held the ids alone,
    # and `mrl cancel` printed a done one cancelled before it started as just `done`
    for asked, noted in ([2], [2]), (list(range(1, 3001)), list(range(2, 3001))):
        request = tmp_path / f"r{len(asked)}.req"
        taken = request.with_suffix(".taken")
        taken.write_text(json.dumps(asked))
        room = max(taken.stat().st_size, taken.stat().st_blocks * 512)
        notes = dict.fromkeys(noted, "cancelled before it started")
        ownership._answer_in_place(request, asked, notes)
        assert request.with_suffix(".done").stat().st_size <= room  # no new space
        assert ownership.answer_with_notes(request) == {i: notes.get(i, "") for i in asked}


def test_a_request_holding_other_than_ids_asks_for_nothing(exp: Experiment) -> None:
    with ownership.batch_lock(exp):
        runner = ownership.claim_runner(exp)
    with runner:
        folder = runner.path.parent
        (folder / f"{runner.stem}.cancel-1-1.req").write_text('[1, "2", true, 3.0]')
        (folder / f"{runner.stem}.cancel-1-2.req").write_text('{"ids": [1]}')
        (folder / f"{runner.stem}.cancel-1-3.req").write_text("[1, 2")  # half-written: wait for it
        assert sorted(ids for _, ids in runner.take_requests()) == [set(), {1}]


def test_a_withdrawn_request_leaves_nothing_behind_and_release_keeps_only_answers(exp: Experiment) -> None:
    with ownership.batch_lock(exp):
        runner = ownership.claim_runner(exp)
    runner.set_jobs([1])
    (claim,) = ownership.claims(exp)
    withdrawn = ownership.request_cancel(claim, {1})
    ownership.withdraw(withdrawn)
    answered = ownership.request_cancel(claim, {1})
    runner.answer(answered, [1])
    ownership.request_cancel(claim, {1})  # left unanswered at the end
    runner.release()
    left = sorted(p.name for p in (exp.dir / ".mrl.owners").iterdir())
    assert left == [answered.with_suffix(".done").name]  # the asker still reads it


def test_a_runner_that_planned_nothing_yet_has_no_jobs(exp: Experiment) -> None:
    with ownership.batch_lock(exp):
        runner = ownership.claim_runner(exp)
    with runner:
        (claim,) = ownership.claims(exp)
        assert ownership.runner_jobs(claim) == set()


def test_the_batch_lock_is_one_holder_at_a_time_across_processes(exp: Experiment) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(exp.dir.parent.parent), str(exp.id), "lock"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with (
            pytest.raises(MrlError, match="^makebatch in progress$"),
            ownership.batch_lock(exp, busy="makebatch in progress"),
        ):
            pass
        busy = f"another mrl command is changing {exp.dir}: wait for it"
        with pytest.raises(MrlError, match=busy), ownership.batch_lock(exp, wait=0.1):
            pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    with ownership.batch_lock(exp, wait=5):  # the kernel dropped the dead holder's lock
        pass


def test_the_batch_lock_waits_for_a_holder_that_lets_go(exp: Experiment) -> None:
    import threading

    fd = os.open(exp.dir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.2, os.close, [fd]).start()
    with ownership.batch_lock(Project.find(exp.dir).load_exp(str(exp.id)), wait=30):
        pass


def test_release_leaves_the_files_of_a_runner_whose_pid_starts_with_ours(exp: Experiment) -> None:
    other = f"runner-{HOST}-{os.getpid()}7"  # pid 1234 vs 12347: same prefix, another runner
    path = ownership.write_claim(exp, ownership.Claim("runner", HOST, os.getpid() * 10 + 7, "t"), other)
    held = os.open(path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # alive: the next claim does not drop it as dead
    folder = exp.dir / ".mrl.owners"
    (folder / f"{other}.jobs").write_text("[1]")
    (folder / f"{other}.cancel-9-9.req").write_text("[1]")
    with ownership.batch_lock(exp):
        mine = ownership.claim_runner(exp)
    mine.set_jobs([2])
    mine.release()
    os.close(held)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{other}.json", f"{other}.jobs", f"{other}.cancel-9-9.req"]
    )


@pytest.mark.parametrize("jobs", ["[1, 2", "{}", '["001", null, 1e999]', "\x00"])
def test_a_dead_runner_s_unreadable_plan_is_dropped_with_its_claim(exp: Experiment, jobs: str) -> None:
    # its .jobs says which steps of it may still run unrecorded; one that cannot be read
    # proves nothing and must not stop the next run (it was a corrupt-record error)
    folder = exp.dir / ".mrl.owners"
    folder.mkdir(exist_ok=True)
    dead = folder / f"runner-{HOST}-999999999.json"
    dead.write_text(json.dumps({"backend": "runner", "host": HOST, "pid": 999999999, "started": "x"}))
    (folder / f"runner-{HOST}-999999999.jobs").write_text(jobs)
    with ownership.batch_lock(exp):
        mine = ownership.claim_runner(exp)
    with mine:
        assert mine.orphans == {}
        assert sorted(os.listdir(folder)) == [mine.path.name]
