"""The contract every backend keeps, as a test class to subclass per backend.

    class TestSlurmContract(BackendContract):
        backend_name = "slurm"
        timeout = 120

The helpers also make experiments without `mrl makebatch`: `make_experiment` writes the
sub-experiment folders and records that docs/design.md pins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any

from metarunlog import jsonio
from metarunlog.backends.base import Backend, Job, RunOptions, get_backend
from metarunlog.execute import Command
from metarunlog.experiment import Experiment
from metarunlog.main import main
from metarunlog.project import Project
from metarunlog.records import BatchRecord, SubRecord
from metarunlog.states import JobState


def make_experiment(basedir: Path, params: list[dict[str, Any]], command: str | list[str], **run: Any) -> Experiment:
    """`mrl new`, then sub-experiments 1..N with these params and `run.command` (an
    experiment-level .mrl.cfg override, so the project's tree stays clean)."""
    cwd = os.getcwd()
    os.chdir(basedir)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["new", "-cp", "no", "made by a test"]) == 0
        project = Project.find(basedir)
        exp = project.load_exp("last")
    finally:
        os.chdir(cwd)
    jsonio.write_json(exp.dir / ".mrl.cfg", {"run": {"command": command, **run}})
    for i, p in enumerate(params, 1):
        d = exp.subexp_dir(i)
        d.mkdir()
        jsonio.write_json(d / ".mrl", SubRecord(i, p).to_json())
    exp.write_record(dataclasses.replace(exp.record, batch=BatchRecord(n=len(params))))
    return Project.find(basedir).load_exp(str(exp.id))


def jobs_for(exp: Experiment) -> list[Job]:
    command = Command.of(exp)
    jobs = [Job(sub) for sub in exp.sub_experiments()]
    for job in jobs:
        job.steps = command.render(job.sub)
        job.read_status()
    return jobs


def run_to_end(backend: Backend, jobs: list[Job], timeout: float = 60) -> list[JobState]:
    """Submit, poll until nothing is queued or running, close; the final states."""
    backend.submit(jobs)
    deadline = time.monotonic() + timeout
    try:
        while True:
            states = backend.poll(jobs)
            if not any(s.active for s in states):
                return states
            assert time.monotonic() < deadline, f"jobs still active after {timeout} s: {states}"
            backend.wait(0.05)
    finally:
        backend.close()


class BackendContract:
    """Subclass with `backend_name` set; each test needs the `project` fixture."""

    backend_name = "local"
    timeout = 60.0

    def backend(self, exp: Experiment, **options: Any) -> Backend:
        return get_backend(self.backend_name)(exp, RunOptions(**{"jobs": 2, **options}))

    def run(self, exp: Experiment, **options: Any) -> list[JobState]:
        return run_to_end(self.backend(exp, **options), jobs_for(exp), self.timeout)

    def test_a_command_that_succeeds_is_done_with_its_output_in_run_log(self, project: Path) -> None:
        exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo hello {{x}}")
        assert self.run(exp) == [JobState.DONE, JobState.DONE]
        for sub in exp.sub_experiments():
            log = sub.log_path.read_text()
            assert log.startswith("==== mrl attempt 1 step 1/1 on ")
            assert f"hello {sub.params['x']}" in log
            status = sub.read_status()
            assert status is not None
            assert status.state == "done" and status.exit_code == 0 and status.attempts == 1
            assert status.backend == self.backend_name
            assert status.command == [f"echo hello {sub.params['x']}"]

    def test_a_failing_command_is_failed_with_its_exit_code(self, project: Path) -> None:
        exp = make_experiment(project, [{"code": 0}, {"code": 3}], "exit {{code}}")
        assert self.run(exp) == [JobState.DONE, JobState.FAILED]
        status = exp.sub_experiments()[1].read_status()
        assert status is not None and status.exit_code == 3 and status.end is not None

    def test_a_command_sees_the_variables_and_environment_of_the_spec(self, project: Path) -> None:
        exp = make_experiment(
            project,
            [{"lr": 0.1}],
            'echo "{{lr}} {{expId}} {{subExpId}} {{subExpNum}} {{subExpDir}} {{codeDir}}" > vars.txt; '
            'echo "$MRL_EXP_DIR $MRL_SUBEXP_DIR $MRL_CODE_DIR $(pwd)" > env.txt',
        )
        assert self.run(exp) == [JobState.DONE]
        sub = exp.sub_experiments()[0]
        assert (sub.dir / "vars.txt").read_text().split() == [
            "0.1",
            str(exp.id),
            "001",
            "1",
            str(sub.dir),
            str(exp.code_dir),
        ]
        env = (sub.dir / "env.txt").read_text().split()
        assert env[:3] == [str(exp.dir), str(sub.dir), str(exp.code_dir)]
        assert Path(env[3]).resolve() == sub.dir.resolve()

    def test_a_rerun_resumes_a_multi_step_command_at_the_failed_step(self, project: Path) -> None:
        steps = ["echo one >> steps.txt", "echo two >> steps.txt; test -e ok", "echo three >> steps.txt"]
        exp = make_experiment(project, [{"x": 1}], steps)
        assert self.run(exp) == [JobState.FAILED]
        sub = exp.sub_experiments()[0]
        assert sub.read_status().steps_done == 1  # type: ignore[union-attr]
        (sub.dir / "ok").write_text("")
        assert self.run(exp) == [JobState.DONE]
        assert (sub.dir / "steps.txt").read_text().split() == ["one", "two", "two", "three"]
        status = sub.read_status()
        assert status is not None and status.attempts == 2 and status.steps_done == 3

    def test_a_fresh_backend_reads_the_states_another_one_left(self, project: Path) -> None:
        exp = make_experiment(project, [{"c": 0}, {"c": 1}, {"c": 0}], "exit {{c}}")
        self.run(exp)
        jobs = [Job(sub) for sub in exp.sub_experiments()]
        assert self.backend(exp).poll(jobs) == [JobState.DONE, JobState.FAILED, JobState.DONE]

    def test_cancel_stops_a_running_command_and_marks_it_cancelled(self, project: Path) -> None:
        exp = make_experiment(project, [{"x": 1}], "echo started > started.txt; sleep 60")
        backend = self.backend(exp)
        jobs = jobs_for(exp)
        backend.submit(jobs)
        sub = exp.sub_experiments()[0]
        deadline = time.monotonic() + self.timeout
        # started, and recorded so: the step may write its file before its runner writes
        # the record (a cancel that finds no record has nothing to go on)
        while not ((sub.dir / "started.txt").exists() and _recorded_running(sub)):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        other = self.backend(exp)  # like `mrl cancel`, from another process
        other.cancel([Job(sub)])
        try:
            while backend.poll(jobs)[0].active:
                assert time.monotonic() < deadline, "the job was not stopped"
                backend.wait(0.05)
        finally:
            backend.close()
        assert jobs[0].state is JobState.CANCELLED
        assert sub.read_status().state == "cancelled"  # type: ignore[union-attr]


def _recorded_running(sub: Any) -> bool:
    status = sub.read_status()
    return status is not None and status.state is JobState.RUNNING and status.pid is not None
