"""execute.py: one sub-experiment, its lock, its records, and the task command that runs it alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog.errors import MrlError
from metarunlog.execute import Command, ExecOptions, Locked, execute, locked, log_tail, update_done_marker
from metarunlog.jsonio import Pending
from metarunlog.locks import is_running
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT


def test_a_step_runs_in_its_own_process_group_in_the_sub_experiment_folder(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "ps -o pgid= -p $$ > pgid.txt; echo $$ > pid.txt; pwd > cwd.txt")
    sub = exp.sub_experiments()[0]
    record = execute(sub)
    assert record.state == "done"
    assert (sub.dir / "pgid.txt").read_text().strip() == (sub.dir / "pid.txt").read_text().strip()
    assert int((sub.dir / "pid.txt").read_text()) != os.getpgid(0)
    assert Path((sub.dir / "cwd.txt").read_text().strip()).resolve() == sub.dir.resolve()


def test_a_final_record_handed_over_keeps_the_sub_experiment_locked_until_it_is_in_place(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo ran > ran.txt")
    sub = exp.sub_experiments()[0]
    handed: list[tuple[Pending, object]] = []
    record = execute(sub, ExecOptions(commit=lambda pending, status: handed.append((pending, status))))
    assert record.state == "done" and (sub.dir / "ran.txt").exists()
    ((pending, status),) = handed
    assert status == record
    # not yet in place: the record still says running, and nobody else may take it over
    assert sub.read_status().state == "running"
    assert is_running(sub.dir)
    with pytest.raises(Locked):
        execute(sub)
    pending.commit()
    assert sub.read_status() == record
    assert not is_running(sub.dir)
    assert [p.name for p in sub.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_without_a_hand_over_the_final_record_is_in_place_when_execute_returns(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], ["true", "false"], retries=1)
    sub = exp.sub_experiments()[0]
    record = execute(sub, ExecOptions(retries=1))
    assert record.state == "failed" and record.attempts == 2
    assert sub.read_status() == record
    assert not is_running(sub.dir)


def test_a_held_lock_means_another_runner_has_it_and_nothing_is_written(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo ran > ran.txt")
    sub = exp.sub_experiments()[0]
    with locked(sub), pytest.raises(Locked, match="another process"):
        execute(sub)
    assert sub.read_status() is None
    assert not (sub.dir / "ran.txt").exists()


def test_resources_set_cuda_visible_devices_and_the_resource_variable(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], 'echo "{{resource}} $CUDA_VISIBLE_DEVICES" > res.txt')
    sub = exp.sub_experiments()[0]
    steps = Command.of(exp).render(sub, "3")
    assert execute(sub, ExecOptions(steps=steps, resource="3")).resource == "3"
    assert (sub.dir / "res.txt").read_text() == "3 3\n"


def test_a_changed_command_restarts_at_the_first_step(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], ["echo a >> out.txt", "false"])
    sub = exp.sub_experiments()[0]
    assert execute(sub).steps_done == 1
    assert execute(sub, ExecOptions(steps=["echo b >> out.txt", "true"])).state == "done"
    assert (sub.dir / "out.txt").read_text() == "a\nb\n"


def test_a_done_sub_experiment_is_left_alone_unless_forced(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo ran >> ran.txt")
    sub = exp.sub_experiments()[0]
    execute(sub)
    assert execute(sub).attempts == 1
    assert execute(sub, ExecOptions(force=True)).attempts == 2
    # forced, but another runner finished it since we looked: left alone
    assert execute(sub, ExecOptions(force=True, seen_attempts=1)).attempts == 2
    assert (sub.dir / "ran.txt").read_text() == "ran\nran\n"


def test_a_command_that_cannot_be_rendered_names_the_variable(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "train --lr {{lr}}")
    with pytest.raises(MrlError, match="'lr' is undefined.*params \\(x\\)"):
        Command.of(exp).render(exp.sub_experiments()[0])


def test_a_jinja_syntax_error_in_run_command_is_a_user_error(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "train {{x")
    with pytest.raises(MrlError, match="run.command"):
        Command.of(exp)


def test_log_tail_gives_the_last_lines(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "seq 1 100")
    sub = exp.sub_experiments()[0]
    execute(sub)
    assert log_tail(sub, 3) == ["98", "99", "100"]


def test_the_done_marker_follows_the_states(project: Path) -> None:
    exp = make_experiment(project, [{"c": 0}, {"c": 1}], "exit {{c}}")
    for sub in exp.sub_experiments():
        execute(sub)
    assert update_done_marker(exp) is False and not (exp.dir / ".mrl.done").exists()
    execute(exp.sub_experiments()[1], ExecOptions(steps=["true"]))
    assert update_done_marker(exp) is True and (exp.dir / ".mrl.done").exists()


# metarunlog.execute: what sbatch scripts written by earlier versions run.
@pytest.mark.parametrize("module", ["metarunlog.backends.task", "metarunlog.execute"])
def test_the_task_command_runs_one_sub_experiment_with_the_slurm_ids(project: Path, module: str) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo hello {{x}}")
    env = {
        **os.environ,
        **GIT_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        "SLURM_ARRAY_JOB_ID": "77",
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURMD_NODENAME": "node1",
    }
    res = subprocess.run(
        [sys.executable, "-m", module, str(exp.dir), "2", "--backend", "slurm"],
        env=env,
        capture_output=True,
        text=True,
        cwd=exp.dir,
    )
    assert res.returncode == 0, res.stderr
    sub = exp.sub_experiments()[1]
    record = sub.read_status()
    assert record is not None
    assert (record.state, record.backend, record.job_id, record.node) == ("done", "slurm", "77_2", "node1")
    assert "hello 2" in sub.log_path.read_text()
    assert exp.sub_experiments()[0].read_status() is None


@pytest.mark.parametrize("module", ["metarunlog.backends.task", "metarunlog.execute"])
def test_the_task_command_exits_1_on_failure(project: Path, module: str) -> None:
    exp = make_experiment(project, [{"x": 1}], "exit 5")
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", module, str(exp.dir), "1", "--backend", "local"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 1
    assert exp.sub_experiments()[0].read_status().exit_code == 5  # type: ignore[union-attr]
    assert JobState.FAILED.value in res.stderr


def test_execution_yields_each_started_step_and_is_sent_its_exit_code(project: Path) -> None:
    """The generator form of `execute` (what the local pool drives from one thread): each
    step's process is yielded once started and recorded; the caller waits for it."""
    from metarunlog.execute import execution

    exp = make_experiment(project, [{"x": 1}], ["echo one > one.txt", "exit 3"])
    sub = exp.sub_experiments()[0]
    run = execution(sub)
    proc = next(run)
    assert isinstance(proc.pid, int) and callable(proc.wait)  # a spawn.Started (a Popen where the fast path is off)
    running = sub.read_status()
    assert running.state == "running" and running.pid == proc.pid and running.pid_start
    proc2 = run.send(proc.wait())
    assert proc2.pid != proc.pid and (sub.dir / "one.txt").exists()
    assert sub.read_status().steps_done == 1
    with pytest.raises(StopIteration) as end:
        run.send(proc2.wait())
    record = end.value.value
    assert record.state == "failed" and record.exit_code == 3 and record.steps_done == 1
    assert sub.read_status() == record
    assert not is_running(sub.dir)


def test_execute_stops_what_a_step_left_behind_before_the_next_step_and_before_it_returns(project: Path) -> None:
    """`execute` (a Slurm task's path) waits for the leftovers the execution yields:
    SIGTERM ignored, SIGKILL 2 s later, then the next step; nothing is left when it returns."""
    from metarunlog.execute import Leftovers, execution
    from tests.helpers.processes import alive, wait_for

    bg = "sh -c 'trap \"\" TERM; echo $$ > bg.pid; while :; do sleep 1; done' > /dev/null 2>&1 &"
    check = "p=$(cat bg.pid); if [ -d /proc/$p ] && ! grep -q ') Z' /proc/$p/stat; then echo alive; else echo gone; fi"
    exp = make_experiment(project, [{"x": 1}], [bg + " while [ ! -s bg.pid ]; do sleep 0.01; done", check + " > seen"])
    sub = exp.sub_experiments()[0]
    record = execute(sub)
    bg_pid = int((sub.dir / "bg.pid").read_text())
    assert record.state == "done" and not alive(bg_pid)
    assert (sub.dir / "seen").read_text().strip() == "gone"
    (sub.dir / "bg.pid").unlink()
    run = execution(sub, ExecOptions(force=True))  # the pool's view: the leftovers are yielded
    proc = next(run)
    waited = run.send(proc.wait())
    assert isinstance(waited, Leftovers)
    run.close()  # closed while waiting (the pool stopped): what is left is killed
    left = int((sub.dir / "bg.pid").read_text())
    wait_for(lambda: not alive(left), what="the SIGKILLed leftover to be gone")


@pytest.mark.parametrize("final", [None, "no requeue left"], ids=["a requeue follows", "no requeue left"])
def test_a_forwarded_signal_requeues_what_it_interrupts_or_with_no_requeue_left_fails_it_keeping_its_attempt(
    project: Path, final: str | None
) -> None:
    # Past run.slurm.requeue, a Slurm task's USR1 interrupted a step, execute recorded it
    # `requeued` (start, duration, exit code cleared, requeues +1) and the task then failed
    # it: the record claimed a requeue that never came and had lost its attempt.
    import signal

    from metarunlog.execute import Stopper, execution

    exp = make_experiment(project, [{"x": 1}], "sleep 30")
    sub = exp.sub_experiments()[0]
    stop = Stopper()
    run = execution(sub, ExecOptions(stop=stop))
    proc = next(run)
    stop.forward(signal.SIGUSR1, final=final)
    with pytest.raises(StopIteration) as end:
        while True:  # the step, then what it may leave behind for a moment
            proc = run.send(proc.wait())
    rec = end.value.value
    assert sub.read_status() == rec
    if final is None:
        assert rec.state is JobState.QUEUED and rec.requeues == 1 and rec.start is None
        return
    assert rec.state is JobState.FAILED and rec.reason == final and rec.requeues == 0, rec
    assert rec.exit_code == -signal.SIGUSR1 and rec.attempts == 1
    assert rec.start and rec.end and rec.duration is not None


def test_a_step_reaped_while_stop_looks_at_the_steps_is_never_taken_for_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pool thread reaps a step that failed by itself and asks `stopped` while another
    # thread's `stop` is inside `_exited`'s waitid (the GIL is free there). `stop` had
    # already set the request, not yet the step's "ended first": the step read cancelled
    # (test_chaos_u's stopped-runner test failed so under load, now and then).
    from metarunlog import execute
    from metarunlog.execute import Stopper
    from tests.helpers.processes import wait_for

    child = subprocess.Popen(["sh", "-c", "exit 3"], start_new_session=True)
    wait_for(lambda: execute._exited(child.pid), what="the child to end")
    stop = Stopper(Stopper())  # a job's, under its runner's
    stop.add(child.pid)
    seen: list[bool] = []
    real = execute._exited

    def exited_while_the_pool_looks(pid: int) -> bool:
        ended = real(pid)
        seen.append(stop.stopped(pid))  # what the pool thread finds at this moment
        return ended

    monkeypatch.setattr(execute, "_exited", exited_while_the_pool_looks)
    stop.stop()
    assert seen == [False]
    assert not stop.stopped(child.pid)  # after the stop: it had ended first
    child.wait()
