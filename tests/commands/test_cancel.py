"""mrl cancel: stops the commands of another `mrl run`, which then marks them cancelled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.backends.contract import make_experiment
from tests.helpers.processes import alive, runner_killed_after_spawn, start_mrl, statuses, wait_for


def test_cancel_stops_running_sub_experiments_of_another_runner(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "echo $$ > pid.txt; sleep 60")
    runner = start_mrl("run", "-j", "3", cwd=project)
    pid_files = [exp.dir / f"00{i}" / "pid.txt" for i in (1, 2, 3)]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pid_files), what="the jobs to start")
    wait_for(lambda: len(statuses(exp.dir)) == 3 and all(s["pid"] for s in statuses(exp.dir).values()))
    assert main(["cancel", "last", "1-2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["001: cancelled", "002: cancelled"]
    assert not alive(int(pid_files[0].read_text()))
    assert alive(int(pid_files[2].read_text()))
    assert main(["cancel"]) == 0
    out, err = runner.communicate(timeout=30)
    # everything it had left was cancelled: it exits as a cancelled run does (issue 10)
    assert runner.returncode == 130, out + err
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled"] * 3


def test_cancel_of_a_stale_record_marks_it_cancelled(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "test -e ../again && exit 0; echo $$ > pid.txt; sleep 60")
    runner = start_mrl("run", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    wait_for(lambda: pid.exists() and pid.read_text().strip(), what="the job to start")
    runner.kill()  # kill -9: the step lives on, orphaned
    runner.wait()
    child = int(pid.read_text())
    assert alive(child)
    assert main(["cancel"]) == 0
    wait_for(lambda: not alive(child), timeout=15, what="the orphaned step to stop")
    assert statuses(exp.dir)["001"]["state"] == "cancelled"
    (exp.dir / "again").write_text("")
    assert main(["run"]) == 0  # and it runs again: the lock went with the step


def test_cancel_with_nothing_running_says_so(project: Path, capsys) -> None:
    make_experiment(project, [{"x": 1}], "true")
    assert main(["cancel"]) == 0
    assert "nothing is running" in capsys.readouterr().out


# A step that ends (exit 0) leaving a child that survives the SIGTERM its runner sends what
# a step left behind (the step ends only once the child's trap is set): `term` says that
# SIGTERM came, i.e. the step has ended and its slot waits (up to 2 s) for the leftover,
# the job still `running`.
ENDED_WITH_A_LEFTOVER = (
    "(trap 'touch term' TERM; touch ready; while :; do sleep 0.1; done) & "
    "while [ ! -e ready ]; do sleep 0.01; done; exit 0"
)


def test_cancel_of_a_job_whose_last_step_had_ended_leaves_a_run_that_finished(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": 1}], ENDED_WITH_A_LEFTOVER)
    runner = start_mrl("run", cwd=project)
    wait_for(lambda: (exp.dir / "001" / "term").exists(), what="the step to end, its leftover to stay")
    assert main(["cancel"]) == 0
    # answered while the job still ran (later it is "nothing is running"), and it ended done
    assert capsys.readouterr().out.splitlines() == ["001: done"]
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, out + err
    assert "interrupted" not in out + err and "finished" in out, out + err
    assert statuses(exp.dir)["001"]["state"] == "done"


def test_a_step_that_failed_on_its_own_is_failed_though_a_cancel_came_while_its_leftovers_ran(
    project: Path, capsys
) -> None:
    # Before: the cancel reached the job while its slot waited for the step's leftover, and
    # the record said `cancelled` for a step that had exited 3 by itself (no stop caused it).
    exp = make_experiment(project, [{"x": 1}], ENDED_WITH_A_LEFTOVER.replace("exit 0", "exit 3"))
    runner = start_mrl("run", cwd=project)
    wait_for(lambda: (exp.dir / "001" / "term").exists(), what="the step to end, its leftover to stay")
    assert main(["cancel"]) == 0
    capsys.readouterr()
    out, err = runner.communicate(timeout=30)
    st = statuses(exp.dir)["001"]
    assert st["state"] == "failed" and st["exitCode"] == 3, st
    assert runner.returncode == 1, out + err
    assert "interrupted" not in out + err and "1 failed" in out, out + err


def test_a_cancel_that_stopped_something_still_ends_the_run_interrupted(project: Path, capsys) -> None:
    command = f"if [ {{{{x}}}} = 2 ]; then sleep 60; fi; {ENDED_WITH_A_LEFTOVER}"
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], command)
    runner = start_mrl("run", "-j", "2", cwd=project)
    wait_for(lambda: (exp.dir / "001" / "term").exists(), what="job 1's step to end, its leftover to stay")
    wait_for(lambda: statuses(exp.dir).get("002", {}).get("pid"), what="job 2 to run")
    assert main(["cancel"]) == 0
    assert capsys.readouterr().out.splitlines() == ["001: done", "002: cancelled"]
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, out + err
    assert "interrupted" in out and "1 done" in out and "1 cancelled" in out, out + err


def test_a_runner_answering_a_cancel_of_a_done_one_queued_by_force_says_it_was_cancelled_before_it_started(
    project: Path, capsys
) -> None:
    # `mrl cancel` printed `002: done`, as if 002 had just run to its end
    from metarunlog import jsonio

    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    assert main(["run"]) == 0
    jsonio.write_json(exp.dir / ".mrl.cfg", {"run": {"command": "touch started; sleep 60"}})
    runner = start_mrl("run", "--force", "-j", "1", cwd=project)
    wait_for(lambda: (exp.dir / "001" / "started").exists(), what="the first to run again")
    capsys.readouterr()
    assert main(["cancel", "last", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["002: done (cancelled before it started)"]
    assert main(["cancel"]) == 0
    out, err = runner.communicate(timeout=30)
    assert "002 not run: cancelled before it started (its record says done)" in out, out + err
    assert statuses(exp.dir)["002"]["state"] == "done"


def test_cancel_of_many_prints_a_line_per_outcome_and_the_counts_not_one_per_sub_experiment(
    project: Path, capsys
) -> None:
    # 10,000 sub-experiments printed 10,000 lines
    exp = make_experiment(project, [{"x": i} for i in range(1, 31)], "sleep 60")
    runner = start_mrl("run", "-j", "1", cwd=project)
    wait_for(lambda: statuses(exp.dir).get("001", {}).get("pid"), what="the first to run")
    assert main(["cancel", "last", "1-25,27"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "cancelled: 26 (1-25,27)",
        f"mrl: 26 asked to stop in {exp.name}: 26 cancelled",
    ]
    assert main(["cancel"]) == 0  # the 4 left: one line each
    assert capsys.readouterr().out.splitlines() == [
        "026: cancelled",
        "028: cancelled",
        "029: cancelled",
        "030: cancelled",
    ]
    runner.communicate(timeout=30)
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled"] * 30


def test_cancel_waits_for_a_runner_that_took_the_request_however_long_stopping_takes(
    project: Path, capsys, monkeypatch
) -> None:
    # A run of 10,000 took longer than RUNNER_ANSWER_S to cancel its queue: mrl cancel gave
    # up on it and said "nothing is running or queued" of what the runner went on to cancel.
    import threading
    import time

    from metarunlog import ownership
    from metarunlog.commands import cancel as cancel_command
    from metarunlog.records import Status
    from metarunlog.states import JobState

    monkeypatch.setattr(cancel_command, "RUNNER_ANSWER_S", 1.0)  # it takes the request within it, loaded or not
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    with ownership.batch_lock(exp):
        runner = ownership.claim_runner(exp)
    runner.set_jobs([1, 2])

    def slow_runner() -> None:  # takes the request at once, answers after RUNNER_ANSWER_S
        requests = []
        while not requests:
            requests = runner.take_requests()
            time.sleep(0.01)
        ((request, ids),) = requests
        time.sleep(3.0)  # well past RUNNER_ANSWER_S
        for sub in exp.sub_experiments():
            sub.write_status(Status(JobState.CANCELLED))
        runner.answer(request, sorted(ids))

    with runner:
        thread = threading.Thread(target=slow_runner)
        thread.start()
        try:
            assert main(["cancel"]) == 0
        finally:
            thread.join(10)
    assert capsys.readouterr().out.splitlines() == ["001: cancelled", "002: cancelled"]


def test_the_report_of_many_names_each_outcome_as_a_selection_and_the_ones_with_a_note(project: Path) -> None:
    from metarunlog.backends.base import Job
    from metarunlog.commands.cancel import SHOWN, report
    from metarunlog.states import JobState

    exp = make_experiment(project, [{"x": i} for i in range(1, 41)], "true")
    jobs = [Job(s, state=JobState.CANCELLED) for s in exp.sub_experiments()]
    for j in jobs[30:33]:
        j.state, j.message = JobState.QUEUED, "its task did not stop it yet"
    for j in jobs[33:]:
        j.state, j.message = JobState.RUNNING, "its runner (pid 7) did not stop it; try again"
    lines = report(exp, jobs)
    assert lines[:3] == ["cancelled: 30 (1-30)", "queued: 3 (31-33)", "running: 7 (34-40)"]
    assert lines[3] == "031: queued (its task did not stop it yet)"
    assert len(lines) == 3 + 10 + 1  # the outcomes, each one with a note, the counts
    assert lines[-1] == f"mrl: 40 asked to stop in {exp.name}: 7 running, 3 queued, 30 cancelled"
    many = [Job(s, state=JobState.RUNNING, message="m") for s in exp.sub_experiments()]
    assert report(exp, many)[1 + SHOWN] == f"... and {40 - SHOWN} more with a note (`mrl status {exp.id}` shows each)"
    assert report(exp, jobs[:SHOWN]) == [f"{j.name}: cancelled" for j in jobs[:SHOWN]]


def _stopped_while_planning(project: Path, n: int) -> tuple[Path, subprocess.Popen[str]] | None:
    """A runner of a fresh experiment of `n`, SIGSTOPped after it claimed the experiment and
    before it wrote its plan (`.jobs`); None when this try missed that window."""
    exp = make_experiment(project, [{"x": i} for i in range(1, n + 1)], "sleep 30")
    owners = exp.dir / ".mrl.owners"
    runner = start_mrl("run", "-j", "1", cwd=project)
    deadline = time.monotonic() + 30
    while not (owners.is_dir() and any(p.suffix == ".json" for p in owners.iterdir())):
        assert time.monotonic() < deadline and runner.poll() is None, "the runner never claimed"
    os.kill(runner.pid, signal.SIGSTOP)
    if not any(p.suffix == ".jobs" for p in owners.iterdir()):
        return exp.dir, runner
    os.killpg(runner.pid, signal.SIGKILL)
    runner.communicate()
    return None


def test_cancel_of_a_runner_still_planning_reaches_it_when_it_starts(project: Path) -> None:
    # `mrl cancel` between the runner's claim and its plan (planning 10,000 takes seconds)
    # said "nothing is running or queued" (exit 0), and the runner then ran all of them.
    for _ in range(20):
        caught = _stopped_while_planning(project, 300)
        if caught:
            break
    else:
        pytest.skip("never caught the runner between its claim and its plan")
    exp_dir, runner = caught
    try:
        cancel = start_mrl("cancel", cwd=project)
        time.sleep(1.0)
        assert cancel.poll() is None, cancel.communicate()  # it waits for the planning runner
    finally:
        os.kill(runner.pid, signal.SIGCONT)
    out, err = cancel.communicate(timeout=60)
    assert cancel.returncode == 0, out + err
    assert "cancelled: 300 (1-300)" in out, out + err
    r_out, r_err = runner.communicate(timeout=60)
    assert runner.returncode == 130, r_out + r_err
    assert {s["state"] for s in statuses(exp_dir).values()} <= {"cancelled"}


SLOW_SUBMIT = """
import time

from metarunlog.backends.local import LocalBackend
from metarunlog.backends.registry import BackendSpec, register


class Slow(LocalBackend):
    name = "slow"

    def submit(self, jobs):
        time.sleep(7)  # a loaded machine, a scheduler: past RUNNER_ANSWER_S after the plan
        super().submit(jobs)


register(BackendSpec("slow", "mrl_slow:Slow", liveness=True))
"""


def test_a_cancel_made_while_the_runner_plans_reaches_it_however_long_its_submit_takes(
    project: Path, tmp_path: Path
) -> None:
    # before: `mrl cancel` gave the runner 5 s from its plan to take the request; a submit
    # slower than that (the plan's last step before it looks) made it give up, say "nothing
    # is running or queued" (exit 0), and the runner then ran them all
    from metarunlog.commands.cancel import RUNNER_ANSWER_S
    from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl

    assert RUNNER_ANSWER_S < 7
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "echo ran > ran.txt")
    (tmp_path / "mrl_slow.py").write_text(SLOW_SUBMIT)
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(tmp_path)])}
    code = "import mrl_slow; from metarunlog.main import main; raise SystemExit(main())"
    runner = subprocess.Popen(
        [sys.executable, "-c", code, "run", "--backend", "slow"],
        cwd=project,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: any((exp.dir / ".mrl.owners").glob("*.jobs")), 60, "the runner's plan")
        cancel = run_mrl("cancel", cwd=project)
    finally:
        out, err = runner.communicate(timeout=120)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert cancel.stdout.splitlines() == ["001: cancelled", "002: cancelled", "003: cancelled"], cancel.stdout
    assert runner.returncode == 130, out + err
    assert {s["state"] for s in statuses(exp.dir).values()} == {"cancelled"}
    assert not list(exp.dir.glob("*/ran.txt"))


def test_status_and_cancel_see_a_step_its_runner_was_killed_before_recording(project: Path) -> None:
    # the kill -9 gap: `mrl status` showed the sub-experiment pending and `mrl cancel` said
    # "nothing is running" while its step ran on (only the next `mrl run` saw it)
    import json

    from tests.helpers.repo import run_mrl

    exp, pid = runner_killed_after_spawn(project)
    try:
        rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
        assert rows[0]["state"] == "running", rows
        assert rows[0]["note"] == (
            f"its step (pid {pid}), started by an mrl run that was killed, runs with no record naming it"
        )
        res = run_mrl("cancel", cwd=project)
        said = f"001: cancelled (its step (pid {pid}), left with no record by an mrl run that was killed, was stopped)"
        said += "\n"
        assert (res.returncode, res.stdout) == (0, said), res.stderr
        wait_for(lambda: not alive(pid), what="the step gone")
        record = statuses(exp)["001"]
        assert record["state"] == "cancelled"
        ran = "its step ran with no record (the mrl run that started it was killed) until mrl cancel stopped it"
        assert record["reason"] == ran, record  # not a cancel "before it started": it ran
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)  # the test's own step, by the pid it wrote
    again = json.loads(run_mrl("status", "--json", cwd=project).stdout)
    assert (again[0]["state"], again[0].get("note")) == ("cancelled", ran), again


def _look_alike(exp: Path) -> subprocess.Popen[bytes]:
    """A session leader naming 001's folder in MRL_SUBEXP_DIR, without MRL_RUNNER (a shell
    that carries the variable, or a step of an mrl before MRL_RUNNER), started after the
    runner that was killed."""
    env = {k: v for k, v in os.environ.items() if k != "MRL_RUNNER"}
    env["MRL_SUBEXP_DIR"] = str(exp / "001")
    return subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)


def test_a_look_alike_of_a_killed_runner_s_step_blocks_nothing_and_is_never_signalled(project: Path) -> None:
    # before: it blocked every rerun of 001 for as long as it lived ("its step (pid N) ...
    # is still running"), and status showed 001 running; the killed runner gave each of its
    # steps MRL_RUNNER, so a session without it is provably none of its steps
    import json

    from tests.helpers.repo import run_mrl

    exp, pid = runner_killed_after_spawn(project)
    os.kill(pid, signal.SIGKILL)  # the real step, by the pid it wrote
    wait_for(lambda: not alive(pid), what="the step gone")
    other = _look_alike(exp)
    try:
        rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
        assert rows[0]["state"] == "pending" and "note" not in rows[0], rows
        res = run_mrl("cancel", cwd=project)
        assert (res.returncode, res.stdout) == (0, "mrl: nothing is running or queued in 0001\n"), res.stderr
        (exp / ".mrl.cfg").write_text(json.dumps({"run": {"command": "echo again > again.txt"}}))
        res = run_mrl("run", cwd=project)
        assert res.returncode == 0 and "warning" not in res.stderr, res.stdout + res.stderr
        assert (exp / "001" / "again.txt").read_text() == "again\n"
        assert other.poll() is None  # never signalled
    finally:
        other.kill()
        other.wait()


def test_a_session_an_older_mrl_s_killed_runner_may_have_left_is_shown_exactly_and_never_signalled(
    project: Path,
) -> None:
    # the claim of an mrl that gave its steps no MRL_RUNNER: a session leader naming the
    # folder, started after that runner, may be its step. It is shown, blocks a rerun and is
    # named with what it runs and what to do, and mrl never signals it
    import json

    from tests.helpers.repo import run_mrl

    exp, pid = runner_killed_after_spawn(project)
    os.kill(pid, signal.SIGKILL)  # the real step, by the pid it wrote
    wait_for(lambda: not alive(pid), what="the step gone")
    for claim in (exp / ".mrl.owners").glob("runner-*.json"):  # as an older mrl wrote it
        data = json.loads(claim.read_text())
        data.pop("stepsCarry")
        claim.write_text(json.dumps(data))
    other = _look_alike(exp)
    try:
        seen = f"pid {other.pid} (`sleep 60`) names this folder in its MRL_SUBEXP_DIR and started after the mrl run"
        rows = json.loads(run_mrl("status", "--json", cwd=project).stdout)
        assert rows[0]["state"] == "running" and rows[0]["note"].startswith(seen), rows
        assert "carries no MRL_RUNNER: mrl cannot prove it is that run's step" in rows[0]["note"], rows
        res = run_mrl("cancel", cwd=project)
        assert res.returncode == 1, res.stdout + res.stderr
        said = f"001: running (pid {other.pid} (`sleep 60`) names it in MRL_SUBEXP_DIR"
        assert res.stdout.startswith(said), res.stdout
        assert f"not signalled; if it is, stop it yourself (`kill {other.pid}`))" in res.stdout, res.stdout
        res = run_mrl("run", cwd=project)
        assert res.returncode == 0, res.stdout + res.stderr
        line = next(ln for ln in res.stderr.splitlines() if ln.startswith("mrl: warning: 001"))
        assert f"001 not run: pid {other.pid} (`sleep 60`) names its folder in MRL_SUBEXP_DIR" in line, line
        assert f"stop it yourself (`kill {other.pid}`) and run again" in line, line
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_cancel_of_an_unrecorded_step_stops_the_step_not_a_session_it_started(project: Path) -> None:
    # the step starts a session of its own (setsid, start_new_session=True) with its environment:
    # two session leaders name the folder and the dead runner; cancel stopped the one found
    # last (the child), recorded `cancelled` and left the step running
    from tests.helpers.repo import run_mrl

    command = "echo $$ > step.pid; setsid sleep 60 & echo $! > child.pid; sleep 60"
    exp, pid = runner_killed_after_spawn(project, command)
    child_file = exp / "001" / "child.pid"
    wait_for(lambda: child_file.exists() and child_file.read_text().strip().isdigit(), what="the child's pid")
    child = int(child_file.read_text())
    try:
        wait_for(lambda: os.getsid(child) == child, what="the child's own session")
        res = run_mrl("cancel", cwd=project)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"its step (pid {pid})" in res.stdout
        assert statuses(exp)["001"]["state"] == "cancelled"
        wait_for(lambda: not alive(pid), what="the step gone")
    finally:
        for p in (pid, child):
            if alive(p):
                os.kill(p, signal.SIGKILL)  # the test's own processes, by the pids they wrote


def test_cancel_of_a_dead_runner_s_recorded_step_stops_it_beside_a_session_it_started(project: Path) -> None:
    # the runner was killed after recording its step, which had started a session of its own:
    # that session leader (no record names it) was taken for an unrecorded step, stopped, and
    # `cancelled` written over the record of the step still running
    from tests.helpers.repo import run_mrl

    exp = make_experiment(project, [{"x": 1}], "echo $$ > step.pid; setsid sleep 60 & echo $! > child.pid; sleep 60")
    runner = start_mrl("run", cwd=project)
    files = [exp.dir / "001" / name for name in ("step.pid", "child.pid")]
    wait_for(lambda: all(f.exists() and f.read_text().strip().isdigit() for f in files), what="the step and child")
    pid, child = (int(f.read_text()) for f in files)
    wait_for(lambda: statuses(exp.dir).get("001", {}).get("pid") == pid, what="the record naming the step")
    runner.kill()  # kill -9 after the record: the step lives on, orphaned
    runner.wait()
    try:
        wait_for(lambda: os.getsid(child) == child, what="the child's own session")
        res = run_mrl("cancel", cwd=project)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout == "001: cancelled\n"
        wait_for(lambda: not alive(pid), what="the step gone")
        assert statuses(exp.dir)["001"]["state"] == "cancelled"
    finally:
        for p in (pid, child):
            if alive(p):
                os.kill(p, signal.SIGKILL)  # the test's own processes, by the pids they wrote


def test_a_session_a_done_step_left_is_no_unrecorded_step_of_its_killed_runner(project: Path) -> None:
    # 001 ended done and left a server in a session of its own (setsid: no leftover of its
    # group); its runner was then killed -9 running 002. The server was taken for 001's
    # unrecorded step: status said running, and cancel stopped it and wrote cancelled over done
    from tests.helpers.repo import run_mrl

    command = "if [ {{ x }} = 1 ]; then setsid sleep 60 & echo $! > child.pid; else echo $$ > step.pid; sleep 60; fi"
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], command)
    runner = start_mrl("run", "-j", "1", cwd=project)
    child_file, step_file = exp.dir / "001" / "child.pid", exp.dir / "002" / "step.pid"
    wait_for(lambda: step_file.exists() and step_file.read_text().strip().isdigit(), what="002 running")
    wait_for(lambda: statuses(exp.dir).get("002", {}).get("pid") is not None, what="002's record")
    assert statuses(exp.dir)["001"]["state"] == "done"
    runner.kill()  # kill -9: its claim stays while 002's step lives
    runner.wait()
    child, step = int(child_file.read_text()), int(step_file.read_text())
    try:
        res = run_mrl("status", "1", "1", cwd=project)
        assert res.stdout.splitlines()[2].split()[1] == "done", res.stdout
        res = run_mrl("cancel", cwd=project)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout == "002: cancelled\n"
        assert statuses(exp.dir)["001"]["state"] == "done"
        wait_for(lambda: not alive(step), what="002's step gone")
    finally:
        for p in (step, child):
            if alive(p):
                os.kill(p, signal.SIGKILL)  # the test's own processes, by the pids they wrote
