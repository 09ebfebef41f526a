"""metarunlog/backends/task.py: one sub-experiment executed in a process of its own, as a
scheduler's array task runs it (real subprocesses: exit codes and signals matter)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarunlog import jsonio
from metarunlog.backends.task import find_sub, planned_fingerprint, task_command
from metarunlog.errors import CorruptRecord, MrlError
from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT

ENV = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}


def task(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "metarunlog.backends.task", *args]
    return subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that still run (zombies left for an init that never reaps
    them in a container do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def status(sub_dir: Path) -> dict:
    return json.loads((sub_dir / ".mrl.status").read_text())


def test_task_command_runs_this_interpreter_with_only_the_options_given(tmp_path: Path) -> None:
    base = [
        sys.executable,
        "-m",
        "metarunlog.backends.task",
        str(tmp_path),
        "$SLURM_ARRAY_TASK_ID",
        "--backend",
        "slurm",
    ]
    assert task_command(tmp_path, "$SLURM_ARRAY_TASK_ID", "slurm") == base
    plan = tmp_path / "plan.json"
    assert task_command(tmp_path, "3", "local", retries=2, plan=plan)[-4:] == ["--retries", "2", "--plan", str(plan)]


def test_the_planned_fingerprint_is_the_plans_entry_or_one_that_matches_nothing(tmp_path: Path) -> None:
    assert planned_fingerprint(None, 1) is None
    plan = tmp_path / "plan.json"
    jsonio.write_json(plan, {"1": "abc", "2": 7})
    assert planned_fingerprint(plan, 1) == "abc"
    assert planned_fingerprint(plan, 2) == ""  # not a fingerprint
    assert planned_fingerprint(plan, 3) == ""
    plan.write_text("{")
    with pytest.raises(CorruptRecord):
        planned_fingerprint(plan, 1)


def test_find_sub_names_a_missing_sub_experiment(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    assert find_sub(exp.dir, 2).dir == exp.dir / "002"
    with pytest.raises(MrlError, match=f"experiment {exp.dir} has no sub-experiment 3"):
        find_sub(exp.dir, 3)


def test_a_task_runs_its_sub_experiment_and_exits_0_when_it_is_done(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo value {{x}} > out.txt")
    proc = task(str(exp.dir), "2", "--backend", "local", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("mrl: sub-experiment 002: done")
    assert (exp.dir / "002" / "out.txt").read_text() == "value 2\n"
    assert status(exp.dir / "002")["backend"] == "local"
    assert not (exp.dir / "001" / ".mrl.status").exists()


def test_task_command_with_force_reruns_a_done_sub_experiment(project: Path, tmp_path: Path) -> None:
    # a backend honouring `mrl run --force` through the documented task command had no way
    # to: the task skipped the done sub-experiment, and the run reported its old record
    exp = make_experiment(project, [{"x": 1}], "echo run >> runs.txt")
    for force in (False, False, True):
        argv = task_command(exp.dir, "1", "local", force=force)
        proc = subprocess.run(argv, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert task_command(exp.dir, "1", "local", force=True)[-1] == "--force"
    assert (exp.dir / "001" / "runs.txt").read_text() == "run\nrun\n"
    assert status(exp.dir / "001")["attempts"] == 2


def test_a_failing_command_exits_1_and_is_recorded_failed(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "exit 3")
    proc = task(str(exp.dir), "1", "--backend", "local", cwd=tmp_path)
    assert proc.returncode == 1
    assert (status(exp.dir / "001")["state"], status(exp.dir / "001")["exitCode"]) == ("failed", 3)


def test_retries_rerun_a_failure_until_it_passes(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo x >> tries; test $(wc -l < tries) -ge 2")
    proc = task(str(exp.dir), "1", "--backend", "local", "--retries", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert status(exp.dir / "001")["attempts"] == 2


def test_a_task_for_a_missing_sub_experiment_is_one_error_line_exit_1(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    proc = task(str(exp.dir), "5", "--backend", "local", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == f"mrl: error: experiment {exp.dir} has no sub-experiment 5\n"


def test_a_task_whose_sub_experiment_changed_since_its_plan_runs_nothing(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch ran")
    plan = tmp_path / "plan.json"
    jsonio.write_json(plan, {"1": "a fingerprint of what was there before"})
    proc = task(str(exp.dir), "1", "--backend", "local", "--plan", str(plan), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("mrl: error: ") and proc.stderr.count("\n") == 1
    assert not (exp.dir / "001" / "ran").exists()
    assert not (exp.dir / "001" / ".mrl.status").exists()


def test_a_task_whose_plan_matches_runs(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch ran")
    plan = tmp_path / "plan.json"
    jsonio.write_json(plan, {"1": exp.sub_experiments()[0].fingerprint()})
    proc = task(str(exp.dir), "1", "--backend", "local", "--plan", str(plan), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (exp.dir / "001" / "ran").exists()


def test_an_unknown_backend_is_refused_by_the_argument_parser(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    proc = task(str(exp.dir), "1", "--backend", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_step_records_it_cancelled_and_exits_130(project: Path, tmp_path: Path, sig) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo $$ > started.tmp; mv started.tmp started; sleep 60")
    argv = [sys.executable, "-m", "metarunlog.backends.task", str(exp.dir), "1", "--backend", "local"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not (exp.dir / "001" / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the step never started"
        time.sleep(0.05)
    group = int((exp.dir / "001" / "started").read_text())  # the step's shell leads its process group
    assert live_members(group)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    st = status(exp.dir / "001")
    assert st["state"] == "cancelled"
    assert live_members(group) == []  # the step and its sleep are gone too


OWN_BACKEND = """
import os
from metarunlog.backends.base import Backend
from metarunlog.backends.registry import BackendSpec, register

class Acme(Backend):
    name = "acme"

    @staticmethod
    def task_ids():
        return os.environ.get("ACME_JOB"), "acme-node"

register(BackendSpec("acme", "acme_backend:Acme"))
"""


def test_a_backend_from_outside_mrl_runs_its_tasks_through_the_task_command(project: Path, tmp_path: Path) -> None:
    """Its task processes import the module that registers it (`--import`, which
    task_command adds for a backend whose module is not mrl's), so `--backend acme` is known there."""
    from metarunlog.backends import registry

    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "acme_backend.py").write_text(OWN_BACKEND)
    sys.path.insert(0, str(tmp_path / "plugin"))
    try:
        import acme_backend  # noqa: F401

        argv = task_command(tmp_path, "1", "acme")
    finally:
        sys.path.remove(str(tmp_path / "plugin"))
        sys.modules.pop("acme_backend", None)
        registry.unregister("acme")
    assert argv[-4:] == ["--backend", "acme", "--import", "acme_backend"]
    exp = make_experiment(project, [{"x": 1}], "touch ran")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(tmp_path / "plugin")]), "ACME_JOB": "42_0"}
    proc = subprocess.run(
        [*argv[:3], str(exp.dir), *argv[4:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert (exp.dir / "001" / "ran").exists()
    record = status(exp.dir / "001")
    assert (record["state"], record["backend"], record["jobId"], record["node"]) == (
        "done",
        "acme",
        "42_0",
        "acme-node",
    )


def test_a_module_the_task_cannot_import_is_one_error_line(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch ran")
    proc = task(str(exp.dir), "1", "--backend", "acme", "--import", "acme_nowhere", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "mrl: error: --import acme_nowhere: No module named 'acme_nowhere'" in proc.stderr
    assert not (exp.dir / "001" / "ran").exists()
