"""Slurm at cluster scale (issue 15): array indices decoupled from sub-experiment ids,
splitting below MaxArraySize, packing, per-group resources, requeue, run.after, dry runs;
and the Slurm cases of issue 10 (a time limit under --wait, an unreachable controller,
a symlinked outdir). Plan logic first (no cluster), then against the real Slurm.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from metarunlog.backends import slurm
from metarunlog.backends.base import Job
from metarunlog.backends.slurm import SlurmOptions, TaskPlan, plan_arrays
from metarunlog.experiment import Experiment
from metarunlog.records import Status
from metarunlog.states import JobState, recorded_state
from tests.backends.contract import make_experiment
from tests.backends.test_slurm import backend, on_slurm, wait_for
from tests.helpers.repo import run_mrl

# -- no cluster needed ----------------------------------------------------------------------


def test_ids_are_packed_k_per_task_and_split_into_arrays_below_the_limit() -> None:
    ids = list(range(1, 1006))
    arrays = plan_arrays([((), ids)], pack=100, limit=1001)
    assert len(arrays) == 1 and len(arrays[0].tasks) == 11
    assert arrays[0].tasks[0] == list(range(1, 101)) and arrays[0].tasks[-1] == [1001, 1002, 1003, 1004, 1005]
    split = plan_arrays([((), ids)], pack=1, limit=400)
    assert [len(a.tasks) for a in split] == [400, 400, 205]
    assert [i for a in split for i in a.ids] == ids  # every id once, in order


def test_a_templated_option_renders_per_sub_experiment_and_groups_them() -> None:
    opts = SlurmOptions.from_config(
        {"mem": "{{ '64G' if size == 'xl' else '16G' }}", "partition": "gpu"}, ["--gres=gpu:{{ gpus }}"]
    )
    assert opts.templated
    assert opts.lines_for({"size": "xl", "gpus": 2}) == (
        "#SBATCH --partition=gpu",
        "#SBATCH --mem=64G",
        "#SBATCH --gres=gpu:2",
    )
    assert opts.lines_for({"size": "s", "gpus": 1})[1] == "#SBATCH --mem=16G"


def test_an_undefined_variable_in_an_option_is_one_error_naming_the_key() -> None:
    opts = SlurmOptions.from_config({"mem": "{{ memory }}"}, where="/p/.mrl.cfg")
    with pytest.raises(slurm.MrlError, match=r"run.slurm.mem in /p/.mrl.cfg.*memory.*sub-experiment 003"):
        opts.lines_for({"size": "s"}, sub="003")


def test_an_option_value_with_spaces_quotes_or_backslashes_reaches_sbatch_as_one_word() -> None:
    # sbatch splits #SBATCH lines itself: unquoted, `--partition=debug other` asked for
    # partition "debug", and `it's` was a fatal unmatched quote
    opts = SlurmOptions.from_config(
        {"partition": "debug other"}, ['--comment=it\'s "q" \\ $(x)', "--mem=4G", "#SBATCH --begin now"]
    )
    assert opts.sbatch_lines() == [
        '#SBATCH --partition="debug other"',
        '#SBATCH --comment="it\'s \\"q\\" \\\\ $(x)"',
        "#SBATCH --mem=4G",  # plain values stay as they were
        "#SBATCH --begin now",  # a whole line is the user's own
    ]


@pytest.mark.parametrize("option", ["--array=0-9%2", "-a3", "--arr=1-4", "#SBATCH --array=0-3", "#SBATCH -a 1"])
def test_an_array_option_of_the_users_own_is_refused_before_anything_is_submitted(option: str) -> None:
    # a later #SBATCH line wins: the array 0-9 ran tasks the plan lacks, and with fewer
    # tasks than the plan some sub-experiments stayed queued for tasks that never existed
    with pytest.raises(slurm.SlurmError, match="is mrl's own.*--max-parallel"):
        SlurmOptions.from_config({}, [option]).sbatch_lines()
    assert SlurmOptions.from_config({}, ["--account=a1", "-A", "--acctg-freq=5"]).sbatch_lines()


@pytest.mark.parametrize("option", ["--wait", "-W"])
def test_sbatch_wait_is_refused_it_would_wait_for_the_held_array_forever(option: str) -> None:
    with pytest.raises(slurm.SlurmError, match="wait forever: use mrl run --wait"):
        SlurmOptions.from_config({}, [option]).sbatch_lines()
    assert SlurmOptions.from_config({}, ["--wait-all-nodes=1"]).sbatch_lines()


def test_the_script_escapes_slurms_percent_patterns_in_the_experiment_path(tmp_path: Path) -> None:
    head = slurm.ScriptHead(tmp_path / "a%jb", "0001")
    text = slurm.render_script(head, slurm.ArrayPlan((), [[1]]), tmp_path / "plan.json")
    assert f"#SBATCH --output={tmp_path}/a%%jb/.mrl.slurm/slurm-%A_%a.out\n" in text


@pytest.mark.parametrize(("text", "code"), [("3:0", 3), ("0:0", 0), ("0:15", None), ("", None)])
def test_slurms_exit_code_is_a_code_only_when_no_signal_ended_the_job(text: str, code: int | None) -> None:
    assert slurm._exit_code(text) == code


def test_the_plan_file_round_trips() -> None:
    plan = TaskPlan([[1, 2], [1001]], retries=2, force=True, pack_jobs=3, requeue=1, fingerprints={1: "ab"})
    assert TaskPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_dry_run_prints_the_sbatch_scripts_and_writes_nothing(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"size": s} for s in ("s", "xl", "s")],
        "echo {{size}}",
        slurm={"mem": "{{ '64G' if size == 'xl' else '16G' }}"},
        after="mrl analyze",
    )
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--dry-run", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("#!/bin/bash") == 3  # two groups, and the run.after job
    assert "#SBATCH --mem=16G" in out and "#SBATCH --mem=64G" in out
    assert "tasks 0: 1; 1: 3" in out and "--plan" in out and "mrl analyze" in out
    assert "--dependency=afterany" in out
    assert not (exp.dir / ".mrl.slurm").exists()
    assert all(s.read_status() is None for s in exp.sub_experiments())


def test_wait_keeps_polling_an_unreachable_controller_then_gives_up_after_the_timeout(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one thing not owned here: a controller that does not answer, as squeue says it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("squeue", "sacct"):
        (bin_dir / name).write_text(
            "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller "
            "(connect failure)' >&2\nexit 1\n"
        )
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    exp = make_experiment(project, [{"x": 1}], "true", slurm={"unreachable_timeout": 1})
    sub = exp.sub_experiments()[0]
    sub.write_status(Status(JobState.RUNNING, backend="slurm", job_id="4242_0", attempts=1))
    b = backend(exp, wait=True)
    b.query_interval = 0.05
    job = Job(sub)
    assert b.poll([job]) == [JobState.RUNNING]  # as last written, not stale
    assert len(b.warnings) == 1 and "unreachable" in b.warnings[0]
    time.sleep(0.3)
    assert b.poll([job]) == [JobState.RUNNING] and len(b.warnings) == 1  # said once
    time.sleep(1.0)
    with pytest.raises(slurm.SlurmError, match="unreachable for"):
        for _ in range(50):
            b.poll([job])
            time.sleep(0.05)


def test_a_cancel_that_scancel_could_not_do_leaves_no_request_behind(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the user is told it failed; a mark left behind made the packed task skip them later
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scancel").write_text(
        "#!/bin/sh\necho 'scancel: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n"
    )
    (bin_dir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    queued = Status(JobState.QUEUED, backend="slurm", job_id="4242_0", attempts=0, packed=True)
    for sub in exp.sub_experiments():
        sub.write_status(queued)
    with pytest.raises(slurm.SlurmError, match="Unable to contact"):
        backend(exp).cancel([Job(s) for s in exp.sub_experiments()])
    for sub in exp.sub_experiments():
        assert not (sub.dir / slurm.CANCEL_MARK).exists()
        assert sub.read_status() == queued


def test_a_cluster_with_job_arrays_disabled_is_one_clear_error_and_nothing_is_submitted(
    project: Path, tmp_path: Path
) -> None:
    # MaxArraySize=0 disables arrays; packing into arrays of 0 tasks was a traceback
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize            = 0'\n")
    (bin_dir / "scontrol").chmod(0o755)
    (bin_dir / "sbatch").write_text('#!/bin/sh\necho sbatch-ran >> "$0.log"; echo 1\n')
    (bin_dir / "sbatch").chmod(0o755)
    exp = make_experiment(project, [{"x": 1}], "true")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for dry in ([], ["--dry-run"]):
        proc = run_mrl("run", str(exp.id), "--backend", "slurm", *dry, env=env)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mrl: error:")]
        assert len(errors) == 1 and "job arrays disabled (MaxArraySize=0)" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (bin_dir / "sbatch.log").exists()
    assert exp.sub_experiments()[0].read_status() is None


# -- project discovery through a symlinked outdir (issue 10; no Slurm) -------------------------


def _symlinked_outdir(project: Path, tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch" / "proj-output"
    scratch.mkdir(parents=True)
    (project / "output").rmdir() if (project / "output").is_dir() else None
    (project / "output").symlink_to(scratch)
    return scratch


# -- against a real single-node Slurm ---------------------------------------------------------

TIMEOUT = 180.0


def job_over(job: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    return bool(out.strip()) and not ({"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"} & set(out.split()))


def records(exp: Experiment) -> list[Status]:
    out = [s.read_status() for s in exp.sub_experiments()]
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def many(project: Path, n: int, command: str = "true", **run: Any) -> Experiment:
    return make_experiment(project, [{"x": i} for i in range(1, n + 1)], command, **run)


@on_slurm
def test_1005_sub_experiments_packed_100_per_task_complete_on_the_default_max_array_size(project: Path) -> None:
    exp = many(project, 1005)
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--pack", "100", "--wait", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1005 done" in proc.stdout
    script = (exp.dir / ".mrl.slurm" / "submit-001.sh").read_text()
    assert "#SBATCH --array=0-10\n" in script
    recs = records(exp)
    assert {r.state for r in recs} == {JobState.DONE}
    job = recs[0].job_id.split("_")[0]  # type: ignore[union-attr]
    assert recs[0].job_id == f"{job}_0" and recs[1004].job_id == f"{job}_10" and recs[1004].packed
    assert (exp.sub_experiments()[1004].dir / "run.log").exists()  # its own log


@on_slurm
def test_a_selection_of_ids_above_1000_runs_unpacked(project: Path) -> None:
    exp = many(project, 1006, "echo {{x}}")
    proc = run_mrl("run", str(exp.id), "1001-1006", "--backend", "slurm", "--wait", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "6 done" in proc.stdout
    assert "#SBATCH --array=0-5\n" in (exp.dir / ".mrl.slurm" / "submit-001.sh").read_text()
    subs = exp.sub_experiments()
    assert subs[1005].read_status().state is JobState.DONE  # type: ignore[union-attr]
    assert "1006" in subs[1005].log_path.read_text()
    assert subs[999].read_status() is None  # not selected: untouched


@on_slurm
def test_a_submission_larger_than_max_array_size_is_split_and_status_and_cancel_see_every_array(
    project: Path,
) -> None:
    from tests.slurm_cluster import reconfigured

    exp = many(project, 12, "sleep 60")
    with reconfigured(MaxArraySize="5"):
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
        assert "MaxArraySize            = 5" in out
        proc = run_mrl("run", str(exp.id), "--backend", "slurm")
    assert proc.returncode == 0, proc.stderr
    assert "12 submitted as Slurm 3 jobs" in proc.stdout, proc.stdout
    scripts = sorted((exp.dir / ".mrl.slurm").glob("submit-*.sh"))
    arrays = [next(ln for ln in p.read_text().splitlines() if "--array" in ln) for p in scripts]
    assert arrays == ["#SBATCH --array=0-4", "#SBATCH --array=0-4", "#SBATCH --array=0-1"]
    jobs = {r.job_id.split("_")[0] for r in records(exp)}  # type: ignore[union-attr]
    assert len(jobs) == 3
    rows = json.loads(run_mrl("status", str(exp.id), "--json", check=True).stdout)
    assert {r["state"] for r in rows} <= {"queued", "running"} and len(rows) == 12
    proc = run_mrl("cancel", str(exp.id))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": cancelled") == 12
    left = subprocess.run(
        ["squeue", "-h", "-j", ",".join(sorted(jobs)), "-t", "PD,R"], capture_output=True, text=True
    ).stdout
    wait_for(
        "Slurm to let go of every array",
        lambda: (
            not subprocess.run(
                ["squeue", "-h", "-j", ",".join(sorted(jobs)), "-t", "PD,R"], capture_output=True, text=True
            ).stdout.strip()
        ),
    )
    del left


@on_slurm
def test_a_cluster_limiting_the_tasks_of_an_array_with_max_array_tasks_gets_arrays_that_fit(project: Path) -> None:
    # SchedulerParameters=max_array_tasks=3 (a site's limit below MaxArraySize): the one
    # array of 7 tasks was rejected ("Invalid job array specification") and nothing ran
    from tests.slurm_cluster import reconfigured

    exp = many(project, 7, "echo {{x}}")
    with reconfigured(SchedulerParameters="batch_sched_delay=0,max_array_tasks=3"):
        proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--wait", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "7 done" in proc.stdout, proc.stdout
    scripts = sorted((exp.dir / ".mrl.slurm").glob("submit-*.sh"))
    arrays = [next(ln for ln in p.read_text().splitlines() if "--array" in ln) for p in scripts]
    assert arrays == ["#SBATCH --array=0-2", "#SBATCH --array=0-2", "#SBATCH --array=0"], arrays


@on_slurm
def test_two_param_groups_with_different_mem_become_two_arrays_with_those_memory_requests(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"size": s} for s in ("s", "xl", "s", "xl")],
        "echo {{size}}",
        slurm={"mem": "{{ '200M' if size == 'xl' else '100M' }}"},
    )
    b = backend(exp)
    b.submit(jobs := [Job(s, steps=[f"echo {s.id}"]) for s in exp.sub_experiments()])
    assert [s.ids for s in b.submissions] == [[1, 3], [2, 4]]
    for sub, mem in zip(b.submissions, ("100M", "200M"), strict=True):
        shown = subprocess.run(["scontrol", "show", "job", sub.job], capture_output=True, text=True).stdout
        assert f"MinMemoryNode={mem}" in shown, shown
    wait_for("all four to end", lambda: not any(s.active for s in b.poll(jobs)), TIMEOUT)
    assert [j.state for j in jobs] == [JobState.DONE] * 4


@on_slurm
def test_cancel_of_one_sub_experiment_of_a_packed_task_leaves_the_others_running(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"x": i} for i in (1, 2, 3, 4)],
        "touch started; if [ {{x}} = 1 ]; then sleep 60; fi",
        slurm={"pack": 4, "pack_jobs": 1},
    )
    proc = run_mrl("run", str(exp.id), "--backend", "slurm")
    assert proc.returncode == 0, proc.stderr
    subs = exp.sub_experiments()
    wait_for("sub-experiment 1 to start", lambda: (subs[0].dir / "started").exists())
    proc = run_mrl("cancel", str(exp.id), "1,3")  # the running one, and one still waiting in the task
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "001: cancelled" in proc.stdout and "003: cancelled" in proc.stdout
    wait_for("the task to finish the others", lambda: all(r.state.finished for r in records(exp)), TIMEOUT)
    rows = json.loads(run_mrl("status", str(exp.id), "--json", check=True).stdout)
    assert [r["state"] for r in rows] == ["cancelled", "done", "cancelled", "done"]
    assert not (subs[2].dir / "started").exists()  # never started
    assert len({r["jobId"] for r in rows}) == 1  # one task ran them all


@on_slurm
def test_a_cuda_visible_devices_of_the_submitting_shell_does_not_size_a_packed_task(project: Path) -> None:
    # No GPU requested: sbatch exported the shell's CUDA_VISIBLE_DEVICES=0,1,2 into the task
    # (--export=ALL), which then ran 3 workers, one per "GPU", each step told it had GPU k.
    exp = make_experiment(
        project,
        [{"x": i} for i in (1, 2, 3)],
        'printf %s "$CUDA_VISIBLE_DEVICES" > cuda; date +%s.%N > start; sleep 1; date +%s.%N > end',
        slurm={"pack": 3},
    )
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2"}
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--wait", env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    subs = exp.sub_experiments()
    # the steps see the environment as Slurm passed it on, unchanged
    assert [(s.dir / "cuda").read_text() for s in subs] == ["0,1,2"] * 3
    spans = sorted((float((s.dir / "start").read_text()), float((s.dir / "end").read_text())) for s in subs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans  # one worker at a time


@on_slurm
def test_run_after_is_a_job_after_every_array_that_writes_the_report(project: Path) -> None:
    exp = make_experiment(
        project, [{"x": 1}, {"x": 2}], "sleep 2; echo {{x}}", after=["mrl analyze", "touch after-ran"]
    )
    proc = run_mrl("run", str(exp.id), "--backend", "slurm")
    assert proc.returncode == 0, proc.stderr
    assert "run.after as job" in proc.stdout
    after_job = proc.stdout.split("run.after as job ")[1].split(";")[0].split()[0]
    shown = subprocess.run(["scontrol", "show", "job", after_job], capture_output=True, text=True).stdout
    array_job = records(exp)[0].job_id.split("_")[0]  # type: ignore[union-attr]
    assert f"afterany:{array_job}" in shown, shown
    wait_for("run.after to end", lambda: job_over(after_job), TIMEOUT)
    out = (exp.dir / ".mrl.slurm" / f"after-{after_job}.out").read_text()
    assert (exp.dir / "after-ran").exists(), out
    report = exp.dir / "analysis" / "index.html"
    assert report.exists()
    ends = [r.end for r in records(exp)]
    assert all(r.state is JobState.DONE for r in records(exp)), ends
    assert report.stat().st_mtime >= max(s.status_path.stat().st_mtime for s in exp.sub_experiments())


def _submit_with_after(project: Path, n: int, command: str, after: list[str]) -> tuple[Experiment, str]:
    """`mrl run --backend slurm` of N sub-experiments with run.after: (exp, run.after's job id)."""
    exp = make_experiment(project, [{"x": i} for i in range(1, n + 1)], command, after=after)
    proc = run_mrl("run", str(exp.id), "--backend", "slurm")
    assert proc.returncode == 0, proc.stderr
    assert "run.after as job" in proc.stdout, proc.stdout
    return exp, proc.stdout.split("run.after as job ")[1].split(";")[0].split()[0]


def _after_line(exp: Experiment, env: dict[str, str] | None = None) -> str:
    out = run_mrl("status", str(exp.id), check=True, env=env).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("run.after: ")]
    assert len(lines) == 1, out
    return lines[0]


@on_slurm
def test_status_shows_the_run_after_job_while_the_arrays_run_and_once_it_ran(project: Path) -> None:
    exp, job = _submit_with_after(project, 2, "sleep 5", ["touch after-ran"])
    line = _after_line(exp)  # the arrays run (5 s): it waits for them
    assert line.startswith(f"run.after: Slurm job {job}: queued; pending in Slurm"), line
    assert f".mrl.slurm/after-{job}.out" in line, line
    wait_for("run.after to end", lambda: job_over(job), TIMEOUT)
    assert (exp.dir / "after-ran").exists()
    assert _after_line(exp) == f"run.after: Slurm job {job}: done (exit code 0); its output: .mrl.slurm/after-{job}.out"
    record = json.loads((exp.dir / ".mrl.slurm" / "after-001.json").read_text())
    assert record["state"] == "done" and record["exitCode"] == 0 and record["jobId"] == job, record


@on_slurm
def test_status_watch_in_a_pipe_says_how_the_run_after_job_it_waits_for_went(project: Path) -> None:
    exp, job = _submit_with_after(project, 2, "sleep 1", ["sleep 1", "exit 4"])
    proc = run_mrl("status", str(exp.id), "--watch", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith(f"run.after: Slurm job {job}: failed (exit code 4)"), proc.stdout


@on_slurm
def test_run_wait_waits_for_the_run_after_job_too_and_exits_1_when_it_failed(project: Path) -> None:
    # like a local run, which runs run.after before it exits: `--wait && open the report`
    exp = make_experiment(project, [{"x": 1}], "true", after=["sleep 2", "touch after-ran", "exit 4"])
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--wait", timeout=TIMEOUT)
    assert (exp.dir / "after-ran").exists(), proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "run.after: Slurm job " in proc.stdout and ": failed (exit code 4)" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr


@on_slurm
def test_a_failing_run_after_job_shows_failed_with_its_exit_code_from_its_record_once_slurm_is_gone(
    project: Path, tmp_path: Path
) -> None:
    exp, job = _submit_with_after(project, 1, "true", ["mrl table > table.txt", "exit 3", "touch never"])
    wait_for("run.after to end", lambda: job_over(job), TIMEOUT)
    assert (exp.dir / "table.txt").exists() and not (exp.dir / "never").exists()  # stopped at the failing one
    assert _after_line(exp).startswith(f"run.after: Slurm job {job}: failed (exit code 3)")
    # Slurm forgets finished jobs (MinJobAge); without any Slurm client here, the record tells
    no_slurm = tmp_path / "bin"
    no_slurm.mkdir()
    for tool in ("git", "sh"):
        (no_slurm / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    line = _after_line(exp, env={"PATH": str(no_slurm)})
    assert line.startswith(f"run.after: Slurm job {job}: failed (exit code 3)"), line


@on_slurm
def test_cancel_of_the_whole_experiment_cancels_its_run_after_job_and_a_selection_leaves_it(project: Path) -> None:
    exp, job = _submit_with_after(project, 2, "sleep 60", ["touch after-ran"])
    proc = run_mrl("cancel", str(exp.id), "2")  # a part of the run: its run.after still comes
    assert proc.returncode == 0 and "run.after" not in proc.stdout, proc.stdout + proc.stderr
    assert _after_line(exp).startswith(f"run.after: Slurm job {job}: queued")
    proc = run_mrl("cancel", str(exp.id))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"run.after: Slurm job {job}: cancelled" in proc.stdout, proc.stdout
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "JobState=CANCELLED" in shown, shown
    wait_for("the arrays to end", lambda: all(r.state.finished for r in records(exp)), TIMEOUT)
    time.sleep(1)
    assert not (exp.dir / "after-ran").exists()
    line = _after_line(exp)
    assert line.startswith(f"run.after: Slurm job {job}: cancelled") and "exit code" not in line, line
    assert not (exp.dir / ".mrl.slurm" / f"after-{job}.out").exists()
    assert "its output" not in line, line  # it never ran: no output file to point at
    record = json.loads((exp.dir / ".mrl.slurm" / "after-001.json").read_text())
    assert record["state"] == "cancelled" and record["slurmState"] == "CANCELLED", record
    assert "exitCode" not in record, record  # it never ran: Slurm's 0:0 is no exit code


@on_slurm
def test_a_task_scancelled_before_it_started_is_not_said_to_have_an_output_file(project: Path) -> None:
    # `002: Slurm: CANCELLED (its output: .mrl.slurm/slurm-J_1.out)`: a file that was never written
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "sleep 60")
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--max-parallel", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = exp.sub_experiments()
    wait_for("the first task to start", lambda: (first.read_status() or Status()).state is JobState.RUNNING, TIMEOUT)
    job = (second.read_status() or Status()).job_id.split("_")[0]  # type: ignore[union-attr]
    subprocess.run(["scancel", job], check=True)
    wait_for("the array to end", lambda: job_over(job), TIMEOUT)
    out = run_mrl("status", str(exp.id)).stdout
    notes = [ln for ln in out.splitlines() if ln.startswith("002: ")]
    assert notes == ["002: Slurm: CANCELLED"], out
    assert not (exp.dir / ".mrl.slurm" / f"slurm-{job}_1.out").exists()


@on_slurm
def test_cancel_of_a_running_run_after_job_waits_for_slurm_to_end_it_and_says_cancelled(project: Path) -> None:
    # it was shown `running` right after the scancel, and mrl cancel exited 1
    exp, job = _submit_with_after(project, 1, "true", ["touch after-started", "sleep 60"])
    wait_for("run.after to start", lambda: (exp.dir / "after-started").exists(), TIMEOUT)
    proc = run_mrl("cancel", str(exp.id))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"run.after: Slurm job {job}: cancelled" in proc.stdout, proc.stdout


def _step_running(sub: Any, steps_done: int) -> bool:
    st = sub.read_status()
    return st is not None and st.state is JobState.RUNNING and st.steps_done == steps_done and st.pid is not None


def _start_now(task: str) -> None:
    """Slurm holds a requeued job for ~2 minutes (BeginTime); the test has no such patience.
    Not at once, though: slurmd refuses to launch a job whose credential it revoked within
    the same second ("Job credential revoked", and the task fails). The update is repeated
    until the task leaves PENDING: one made while the requeue was still settling is
    overwritten by it."""

    def state() -> str:
        return subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", task, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()

    wait_for("the task to be pending again", lambda: state() == "PENDING")
    time.sleep(2.0)
    deadline = time.monotonic() + TIMEOUT
    while state() == "PENDING":
        assert time.monotonic() < deadline, f"{task} stayed pending"
        subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], capture_output=True)
        time.sleep(1.0)


@on_slurm
@pytest.mark.parametrize("settings", [{"requeue": 1}, {}], ids=["run.slurm.requeue", "cluster default"])
def test_scontrol_requeue_of_a_running_task_resumes_at_its_unfinished_step_and_ends_done(
    project: Path, settings: dict[str, int]
) -> None:
    exp = make_experiment(
        project,
        [{"x": 1}],
        [
            "echo once >> step1",
            'echo "attempt=$MRL_ATTEMPT requeued=${MRL_REQUEUED:-0}" >> seen; [ -n "$MRL_REQUEUED" ] || sleep 120',
        ],
        slurm=settings,
    )
    proc = run_mrl("run", str(exp.id), "--backend", "slurm")
    assert proc.returncode == 0, proc.stderr
    sub = exp.sub_experiments()[0]
    wait_for("step 2 to run", lambda: _step_running(sub, 1))
    task = sub.read_status().job_id  # type: ignore[union-attr]
    subprocess.run(["scontrol", "requeue", task], check=True, capture_output=True)
    wait_for(
        "the record to say queued (requeued, not cancelled)",
        lambda: (
            sub.read_status().state  # type: ignore[union-attr]
            is JobState.QUEUED
        ),
    )
    _start_now(task)  # type: ignore[arg-type]
    wait_for("the sub-experiment to be done", lambda: sub.read_status().state is JobState.DONE, TIMEOUT)  # type: ignore[union-attr]
    assert (sub.dir / "step1").read_text() == "once\n"  # step 1 was not run again
    assert (sub.dir / "seen").read_text().splitlines() == ["attempt=1 requeued=0", "attempt=2 requeued=1"]
    assert sub.read_status().job_id == task  # type: ignore[union-attr]


# A step whose shell outlives its command: the command dies of the requeue's SIGTERM, the
# rest of the list runs and the shell exits 0 (here deterministically: the user's list traps
# TERM itself; with a plain `;` list it happens when the shell wins the race against the
# signal Slurm sends it a moment later).
_OUTLIVES = (
    "trap 'echo saw TERM >> seen' TERM; "
    'echo "attempt=$MRL_ATTEMPT requeued=${MRL_REQUEUED:-0}" >> seen; '
    '[ -n "$MRL_REQUEUED" ] || sleep 120; echo over >> seen'
)


@on_slurm
@pytest.mark.parametrize("how", ["scontrol requeue", "scancel"])
def test_a_step_whose_shell_list_goes_on_after_slurm_killed_its_command_is_not_recorded_done(
    project: Path, how: str
) -> None:
    # The shell exited 0, and exit 0 says the step finished: it was recorded `done` at
    # attempt 1 and the requeued task skipped it (a scancel: `done` though it was cancelled).
    # Slurm sends every process of the job SIGCONT before any gets the SIGTERM: the task's
    # stopped watch process is continued, and the task asks Slurm whether the job is ending.
    exp = make_experiment(project, [{"x": 1}], _OUTLIVES, slurm={"requeue": 1})
    sub = exp.sub_experiments()[0]
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    wait_for("the step to run", lambda: (sub.dir / "seen").exists() and _step_running(sub, 0))
    task = sub.read_status().job_id  # type: ignore[union-attr]
    if how == "scancel":
        subprocess.run(["scancel", task], check=True, capture_output=True)
        wait_for("the record to say how it ended", lambda: not recorded_state(sub.read_status()).active, TIMEOUT)
        st = sub.read_status()
        assert st is not None and st.state is JobState.CANCELLED, st
        assert st.steps_done == 0 and st.exit_code is None, st
        return
    subprocess.run(["scontrol", "requeue", task], check=True, capture_output=True)
    wait_for("the record to say requeued", lambda: (st := sub.read_status()) is not None and st.requeues == 1)
    st = sub.read_status()
    assert st is not None and st.state is JobState.QUEUED and st.steps_done == 0, st
    _start_now(task)  # type: ignore[arg-type]
    wait_for("the sub-experiment to be done", lambda: sub.read_status().state is JobState.DONE, TIMEOUT)  # type: ignore[union-attr]
    st = sub.read_status()
    assert st is not None and st.attempts == 2 and st.requeues == 1, st
    assert "attempt=2 requeued=1" in (sub.dir / "seen").read_text().splitlines()


@on_slurm
def test_a_step_resumed_after_scontrol_suspend_ends_done_and_its_wait_is_not_cut_short(project: Path) -> None:
    # `scontrol resume` sends SIGCONT too: the task asks Slurm, which says RUNNING. A SIGCONT
    # trapped in the step's shell (an earlier way to see it) made `wait` return 146 at once.
    exp = make_experiment(project, [{"x": 1}], 'sleep 4 & wait; echo "wait=$?" >> seen')
    sub = exp.sub_experiments()[0]
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    wait_for("the step to run", lambda: _step_running(sub, 0))
    task = sub.read_status().job_id  # type: ignore[union-attr]
    subprocess.run(["scontrol", "suspend", task], check=True, capture_output=True)
    time.sleep(1.0)
    subprocess.run(["scontrol", "resume", task], check=True, capture_output=True)
    wait_for("the sub-experiment to end", lambda: not recorded_state(sub.read_status()).active, TIMEOUT)
    st = sub.read_status()
    assert st is not None and st.state is JobState.DONE and st.exit_code == 0, st
    assert (sub.dir / "seen").read_text() == "wait=0\n"


@on_slurm
def test_a_preemption_of_a_waiting_runs_task_is_recorded_requeued_then_resumes_and_ends_done(project: Path) -> None:
    # a real preemption (a job of a higher-tier partition needs the node's CPUs): the
    # record says queued and requeued (not failed, not cancelled), `mrl status` said only
    # "pending in Slurm (BeginTime)" as of a first run, and `mrl run --wait` printed
    # `001 done in 0.0s`: the resumed attempt's time, with no word of the one preempted
    from tests.slurm_cluster import preemptible

    exp = make_experiment(
        project,
        [{"x": 1}],
        [
            "echo once >> step1",
            'echo "attempt=$MRL_ATTEMPT requeued=${MRL_REQUEUED:-0}"; '
            '[ -n "$MRL_REQUEUED" ] || { touch started; sleep 120; }',
        ],
        slurm={"cpus_per_task": 4},  # the whole node: the preemptor needs it
    )
    sub = exp.sub_experiments()[0]
    with preemptible():
        p = _waiting_run(project, exp, {"PYTHONUNBUFFERED": "1"})
        try:
            wait_for("step 2 to run", lambda: (sub.dir / "started").exists() and _step_running(sub, 1))
            task = sub.read_status().job_id  # type: ignore[union-attr]
            subprocess.run(["sbatch", "-p", "other", "-c", "4", "-o", "/dev/null", "--wrap", "sleep 2"], check=True)
            wait_for("the record to say requeued", lambda: sub.read_status().requeues == 1)  # type: ignore[union-attr]
            st = sub.read_status()
            assert st is not None and st.state is JobState.QUEUED and st.attempts == 1 and st.steps_done == 1, st
            shown = run_mrl("status", str(exp.id), cwd=project).stdout
            assert "001: requeued after attempt 1: pending in Slurm" in shown, shown
        except BaseException:
            p.kill()
            raise
    out, err = _ended(p, lambda: _start_now(task))  # type: ignore[arg-type]
    assert p.returncode == 0, out + err
    assert "[1/1] 001 done in " in out and "(attempt 2, after 1 requeue)" in out, out
    st = sub.read_status()
    assert st is not None and st.state is JobState.DONE and st.attempts == 2 and st.requeues == 1, st
    assert (sub.dir / "step1").read_text() == "once\n"  # resumed at its unfinished step
    log = sub.log_path.read_text()  # both attempts' output kept, in order
    assert (
        log.index("attempt=1 requeued=0") < log.index("==== mrl attempt 2 step 2/2") < log.index("attempt=2 requeued=1")
    )


@on_slurm
def test_a_requeue_of_a_forced_packed_task_leaves_what_its_first_attempt_finished(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"x": 1}, {"x": 2}],
        'echo "{{x}}" >> ran; [ {{x}} = 1 ] || [ -n "$MRL_REQUEUED" ] || sleep 120',
        slurm={"pack": 2, "pack_jobs": 1},
    )
    run_mrl("run", str(exp.id), "1", "--wait", check=True)  # done once, locally
    run_mrl("run", str(exp.id), "--backend", "slurm", "--force", check=True)
    first, second = exp.sub_experiments()
    wait_for("the second to run", lambda: _step_running(second, 0))
    task = second.read_status().job_id  # type: ignore[union-attr]
    assert first.read_status().attempts == 2  # type: ignore[union-attr]
    subprocess.run(["scontrol", "requeue", task], check=True, capture_output=True)
    _start_now(task)  # type: ignore[arg-type]
    wait_for("the second to be done", lambda: second.read_status().state is JobState.DONE, TIMEOUT)  # type: ignore[union-attr]
    assert (first.dir / "ran").read_text() == "1\n1\n"  # --force ran it again once, not at the requeue
    assert first.read_status().attempts == 2  # type: ignore[union-attr]


def _two_packed_submitted(project: Path, command: str) -> tuple[Experiment, Any, Any]:
    """Two sub-experiments in one packed task that runs one at a time, with one requeue."""
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], command, slurm={"pack": 2, "pack_jobs": 1, "requeue": 1})
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    first, second = exp.sub_experiments()
    return exp, first, second


def _first_running(first: Any) -> str:
    """Once `first` runs: its task's id."""
    wait_for("the first to run", lambda: _step_running(first, 0))
    return first.read_status().job_id  # type: ignore[no-any-return]


@on_slurm
def test_after_a_requeue_only_the_sub_experiments_it_interrupted_are_told_mrl_requeued(project: Path) -> None:
    # MRL_REQUEUED=1 says "load your checkpoint": a packed sub-experiment that had not
    # started before the requeue has none (it was told so, and a script trusting it failed)
    exp, first, second = _two_packed_submitted(
        project,
        'echo "{{x}} attempt=$MRL_ATTEMPT requeued=${MRL_REQUEUED:-0}" >> seen; '
        '[ {{x}} = 2 ] || [ -n "$MRL_REQUEUED" ] || sleep 120',
    )
    try:
        task = _first_running(first)
        subprocess.run(["scontrol", "requeue", task], check=True, capture_output=True)
        _start_now(task)
        both_done = lambda: all(recorded_state(s.read_status()) is JobState.DONE for s in (first, second))  # noqa: E731
        wait_for("both to be done", both_done, TIMEOUT)
        assert (first.dir / "seen").read_text() == "1 attempt=1 requeued=0\n1 attempt=2 requeued=1\n"
        assert (second.dir / "seen").read_text() == "2 attempt=1 requeued=0\n"
    finally:
        run_mrl("cancel", str(exp.id))


@on_slurm
def test_usr1_ahead_of_the_time_limit_requeues_until_run_slurm_requeue_then_fails_with_the_reason(
    project: Path,
) -> None:
    exp = make_experiment(
        project,
        [{"x": 1}],
        'echo "$MRL_ATTEMPT" >> attempts; echo "{\\"attempt\\": $MRL_ATTEMPT}" >> metrics.jsonl; sleep 120',
        slurm={"requeue": 1},
    )
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    sub = exp.sub_experiments()[0]
    wait_for("the step to run", lambda: _step_running(sub, 0))
    task = sub.read_status().job_id  # type: ignore[union-attr]
    script = (exp.dir / ".mrl.slurm" / "submit-001.sh").read_text()
    assert "#SBATCH --requeue\n" in script and "#SBATCH --signal=B:USR1@120\n" in script
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)  # what --signal sends
    _start_now(task)  # type: ignore[arg-type]
    wait_for(
        "the second attempt to run",
        lambda: (
            (sub.dir / "attempts").exists()
            and (sub.dir / "attempts").read_text().split() == ["1", "2"]
            and _step_running(sub, 0)
        ),
        TIMEOUT,
    )
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)  # no requeue left
    wait_for("the record to end", lambda: sub.read_status().state.finished, TIMEOUT)  # type: ignore[union-attr]
    st = sub.read_status()
    assert st is not None and st.state is JobState.FAILED
    assert "run.slurm.requeue" in (st.reason or ""), st
    # its last attempt kept (it was not requeued: no requeue was left)
    assert st.start and st.duration is not None and st.exit_code == 128 + signal.SIGUSR1 and st.requeues == 1, st
    # the requeued attempt continued the first one: its metrics were not set aside
    assert (sub.dir / "metrics.jsonl").read_text().split() == ['{"attempt":', "1}", '{"attempt":', "2}"]


@on_slurm
def test_usr1_past_the_requeue_limit_keeps_the_interrupted_attempt_and_says_the_others_never_started(
    project: Path,
) -> None:
    # Past run.slurm.requeue, the sub-experiment USR1 interrupted ended `failed` without its
    # attempt's start, duration and exit code (marked requeued first, then failed), and the
    # one its packed task never started was "stopped by SIGUSR1" too, and `failed`.
    exp, first, second = _two_packed_submitted(project, 'echo "$MRL_ATTEMPT" >> attempts; sleep 120')
    try:
        task = _first_running(first)
        subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)
        wait_for("the first to be requeued", lambda: (st := first.read_status()) is not None and st.requeues == 1)
        _start_now(task)
        attempt_2 = lambda: (first.dir / "attempts").read_text().split() == ["1", "2"] and _step_running(first, 0)  # noqa: E731
        wait_for("the first's second attempt", attempt_2, TIMEOUT)
        subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)  # no requeue left
        wait_for("the first to end", lambda: first.read_status().state.finished, TIMEOUT)  # type: ignore[union-attr]
        wait_for("the task to end", lambda: job_over(task), TIMEOUT)
        st = first.read_status()
        assert st is not None and st.state is JobState.FAILED and "run.slurm.requeue" in (st.reason or ""), st
        assert st.start and st.end and st.duration is not None, st
        assert st.exit_code == 128 + signal.SIGUSR1 and st.attempts == 2 and st.requeues == 1, st
        never = second.read_status()
        assert never is not None and never.state is JobState.PENDING, never
        assert (never.reason or "").startswith(f"not started: its Slurm task {task} was stopped by SIGUSR1"), never
        assert never.start is None and never.duration is None and never.exit_code is None and never.attempts == 0
        assert not (second.dir / "attempts").exists()
        shown = run_mrl("status", str(exp.id)).stdout
        assert "1 failed, 1 pending" in shown and "002: not started: " in shown, shown
        again = run_mrl("run", str(exp.id), "--pending", "--dry-run").stdout
        assert "002: " in again and "001: " not in again, again  # a plain `mrl run` runs both
    finally:
        run_mrl("cancel", str(exp.id))


# a command that saves a checkpoint on USR1 (3 s, longer than the leftovers' grace), then says so
_SAVER = (
    "import signal, sys, time\n"
    "def save(*a):\n"
    "    print('saving', flush=True)\n"
    "    time.sleep(3)  # longer than the leftovers' grace\n"
    "    open('saved', 'w').write('ok')\n"
    "    sys.exit(128 + signal.SIGUSR1)\n"
    "signal.signal(signal.SIGUSR1, save)\n"
    "open('started', 'w').close()\n"
    "time.sleep(120)\n"
)


@on_slurm
def test_usr1_gives_a_command_behind_a_shell_list_its_time_to_save_a_checkpoint(project: Path) -> None:
    # A step is `/bin/sh -c STEP`; for a list (`cd x && python train.py`) the shell stays
    # the step's process, and it died of the forwarded USR1 at once: the python saving its
    # checkpoint was then reaped as a leftover (SIGTERM) before it could write it, and the
    # rest of the list could not be stopped from running on a half-made checkpoint.
    exp = make_experiment(project, [{"x": 1}], "true; python3 save.py; echo next >> after-list", slurm={"requeue": 1})
    sub = exp.sub_experiments()[0]
    (sub.dir / "save.py").write_text(_SAVER)
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    try:
        wait_for("the command to run", lambda: (sub.dir / "started").exists())
        task = sub.read_status().job_id  # type: ignore[union-attr]
        subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)  # what --signal sends
        wait_for("the record to say requeued", lambda: (st := sub.read_status()) is not None and st.requeues == 1)
        assert (sub.dir / "saved").read_text() == "ok"
        assert not (sub.dir / "after-list").exists()  # the list stopped where USR1 found it
        st = sub.read_status()
        assert st is not None and st.state is JobState.QUEUED, st
    finally:
        run_mrl("cancel", str(exp.id))  # the requeued task waits ~2 min in Slurm: no need


@on_slurm
def test_a_cancel_while_usr1_lets_the_commands_save_is_a_cancel_not_a_requeue(project: Path) -> None:
    # `mrl cancel EXP 1` in the grace USR1 gives: sub 1 was stopped, then recorded `queued`
    # (requeued, as its task's USR1 said), and mrl cancel answered "001: queued"
    exp = make_experiment(
        project, [{"x": 1}, {"x": 2}], "true; python3 save.py", slurm={"requeue": 1, "pack": 2, "pack_jobs": 2}
    )
    first, second = exp.sub_experiments()
    for sub in (first, second):
        (sub.dir / "save.py").write_text(_SAVER)
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    try:
        wait_for("both to run", lambda: all((s.dir / "started").exists() for s in (first, second)))
        task = first.read_status().job_id  # type: ignore[union-attr]
        subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)
        wait_for("the first to save", lambda: "saving" in first.log_path.read_text())
        proc = run_mrl("cancel", str(exp.id), "1")
        assert "001: cancelled" in proc.stdout, proc.stdout + proc.stderr
        st = first.read_status()
        assert st is not None and st.state is JobState.CANCELLED, st
        wait_for("the second to be requeued", lambda: (st := second.read_status()) is not None and st.requeues == 1)
        assert (second.dir / "saved").exists() and not (first.dir / "saved").exists()
    finally:
        run_mrl("cancel", str(exp.id))


@on_slurm
def test_a_task_killed_at_its_time_limit_is_reported_timeout_by_wait_and_what_its_pack_never_started_pending(
    project: Path,
) -> None:
    # An unpacked task, and at the same time (Slurm's shortest limit is a minute) a packed
    # one whose second sub-experiment never started: that one was shown `timeout`, with no
    # duration, a verdict on a sub-experiment that never ran.
    exp = make_experiment(project, [{"x": 1}], "sleep 300")
    packed = make_experiment(project, [{"x": 1}, {"x": 2}], "sleep 300", slurm={"pack": 2, "pack_jobs": 1})
    args = ("--backend", "slurm", "--wait", "--slurm-opt=--time=1")
    other = subprocess.Popen(
        [*_mrl(), "run", str(packed.id), *args],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc = run_mrl("run", str(exp.id), *args, timeout=TIMEOUT)
        out, err = other.communicate(timeout=TIMEOUT)
    finally:
        other.kill()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 timeout" in proc.stdout and "cancelled" not in proc.stdout, proc.stdout
    st = exp.sub_experiments()[0].read_status()
    assert st is not None and st.state is JobState.TIMEOUT
    assert other.returncode == 1 and "1 pending, 1 timeout" in out, out
    assert "cancelled" not in out, out  # between the SIGTERM and the task's `timeout`: no cancel was asked
    # each one counted once ('[1/2] 001 cancelled' then '[2/2] 001 timeout' was seen), and
    # the never-started one named with its reason, not "waiting in its packed task"
    numbered = [line.split()[0] for line in out.splitlines() if line.startswith("[")]
    assert numbered and set(numbered) == {"[1/2]"}, out
    assert "002: not started: " in err and "waiting in its packed task" not in err, err
    ran, never = (s.read_status() for s in packed.sub_experiments())
    assert ran is not None and ran.state is JobState.TIMEOUT and ran.duration is not None and ran.start, ran
    assert never is not None and never.state is JobState.PENDING and never.start is None, never
    assert (never.reason or "").startswith(f"not started: its Slurm task {ran.job_id} "), never
    shown = run_mrl("status", str(packed.id)).stdout
    assert "1 pending, 1 timeout" in shown and "002: not started: " in shown, shown


@on_slurm
def test_wait_outlives_a_stopped_controller_and_says_so_once(project: Path, tmp_path: Path) -> None:
    from tests.slurm_cluster import controller_stopped

    exp = make_experiment(project, [{"x": 1}], "touch started; sleep 15", slurm={"unreachable_timeout": 120})
    # The same cluster; its clients give up on a silent controller after 2 s, not 10 s (so
    # that a short outage is seen: the cluster is shared)
    conf = tmp_path / "slurm.conf"
    conf.write_text(Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text() + "MessageTimeout=2\n")
    env = {"PYTHONUNBUFFERED": "1", "SLURM_CONF": str(conf)}
    p = _waiting_run(project, exp, env)
    sub = exp.sub_experiments()[0]
    try:
        wait_for("the task to start", lambda: (sub.dir / "started").exists())
        with controller_stopped():
            time.sleep(6)
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out + err
    assert err.count("controller is unreachable") == 1, err
    assert "1 done" in out


def _dead_port_conf(tmp_path: Path) -> Path:
    """The cluster's slurm.conf with a controller port nobody listens on (and squeue's own
    patience: it keeps trying for ~20 s), so the shared cluster itself stays up."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    bad = tmp_path / "dead-port.conf"
    bad.write_text(conf.replace("SlurmctldHost=localhost", "SlurmctldHost=localhost\nSlurmctldPort=9"))
    return bad


@on_slurm
def test_table_info_and_status_bound_their_wait_for_an_unreachable_controller_and_say_what_they_show(
    project: Path, tmp_path: Path
) -> None:
    # they waited for squeue's own ~20 s each; table said nothing of it and info claimed `running`
    exp = make_experiment(project, [{"x": 1}], "touch started; sleep 60", slurm={"query_timeout": 1})
    run_mrl("run", str(exp.id), "--backend", "slurm", check=True)
    sub = exp.sub_experiments()[0]
    try:
        wait_for("the task to start", lambda: (sub.dir / "started").exists())
        wait_for("the record to say running", lambda: sub.read_status().state is JobState.RUNNING)  # type: ignore[union-attr]
        env = {"SLURM_CONF": str(_dead_port_conf(tmp_path))}
        table = run_mrl("table", str(exp.id), env=env)
        info = run_mrl("info", f"{exp.id}/1", env=env)
        status = run_mrl("status", str(exp.id), env=env)
        as_json = json.loads(run_mrl("info", f"{exp.id}/1", "--json", env=env).stdout)
        cancel = run_mrl("cancel", str(exp.id), env=env)  # squeue's ~20 s (twice) before it failed
        assert sub.read_status().state is JobState.RUNNING  # type: ignore[union-attr]
    finally:
        run_mrl("cancel", str(exp.id))
    unread = "squeue got no answer in 1 s (run.slurm.query_timeout; is slurmctld up?)"
    for proc in (table, info, status):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    warned = [line for line in table.stderr.splitlines() if unread in line]
    head = f"mrl: warning: could not ask Slurm for the state of {exp.name}/1: "
    assert len(warned) == 1 and warned[0].startswith(head), table.stderr
    assert warned[0].endswith("; shown is the last recorded state"), table.stderr
    assert "running" in table.stdout, table.stdout
    shown = {k.strip(): v for k, _, v in (line.partition(" : ") for line in info.stdout.splitlines())}
    assert shown["state"] == "running (last recorded)", info.stdout
    assert unread in shown["note"] and shown["note"].endswith("shown is the last recorded state"), info.stdout
    assert as_json["state"] == "running" and unread in as_json["note"]  # --json keeps the plain value
    assert f"001: could not ask Slurm: {unread}" in status.stdout, status.stdout
    errors = [line for line in cancel.stderr.splitlines() if line.startswith("mrl: error:")]
    assert cancel.returncode == 1 and len(errors) == 1 and "Traceback" not in cancel.stderr, cancel.stderr
    assert "squeue got no answer in 1 s" in errors[0] and errors[0].endswith(
        "nothing was cancelled: run `mrl cancel` again once the controller answers"
    )


@on_slurm
def test_ctrl_c_leaves_wait_with_130_and_says_the_tasks_go_on(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "touch started; sleep 3")
    p = _waiting_run(project, exp)
    sub = exp.sub_experiments()[0]
    try:
        wait_for("the task to start", lambda: (sub.dir / "started").exists())
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, out + err
    assert "they go on as Slurm job" in err and "mrl cancel" in err, err
    wait_for("the task to end by itself", lambda: sub.read_status().state is JobState.DONE, TIMEOUT)  # type: ignore[union-attr]


def _ended(p: subprocess.Popen[str], meanwhile: Any = None) -> tuple[str, str]:
    """`meanwhile()`, then the waiting run's output once it ended (killed if anything fails)."""
    try:
        if meanwhile is not None:
            meanwhile()
        return p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()


def _waiting_run(
    project: Path, exp: Experiment, env: dict[str, str] | None = None, *args: str
) -> subprocess.Popen[str]:
    """`mrl run EXP --backend slurm --wait [ARGS]`, started (pipes for its output)."""
    return subprocess.Popen(
        [*_mrl(), "run", str(exp.id), "--backend", "slurm", "--wait", *args],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**_env(), **(env or {})},
    )


@on_slurm
@pytest.mark.parametrize("theirs", ["/opt/their-lib", None], ids=["set", "unset"])
def test_steps_and_run_after_on_slurm_see_the_submitters_pythonpath_not_mrls(project: Path, theirs: str | None) -> None:
    # an installed mrl: its code is found without PYTHONPATH. The script exported mrl's own
    # root (its site-packages), which then came first for the Python of every step
    import sys

    from tests.conftest import REPO_ROOT

    show = 'echo "PP=${PYTHONPATH-unset}" >'
    exp = make_experiment(project, [{"x": 1}], f"{show} step.txt", after=[f"{show} after.txt", "mrl ls > ls.txt"])
    boot = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from metarunlog.main import main; sys.exit(main())"
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"} | ({"PYTHONPATH": theirs} if theirs else {})
    proc = subprocess.run(
        [sys.executable, "-c", boot, "run", str(exp.id), "--backend", "slurm", "--wait"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after_job = json.loads((exp.dir / ".mrl.slurm" / "submissions.jsonl").read_text().splitlines()[0])["after"]
    wait_for("run.after to end", lambda: job_over(after_job), TIMEOUT)
    expected = f"PP={theirs or 'unset'}\n"
    assert (exp.sub_experiments()[0].dir / "step.txt").read_text() == expected
    assert (exp.dir / "after.txt").read_text() == expected
    assert (exp.dir / "ls.txt").read_text().strip(), "mrl in run.after is still the submitting mrl"


def _mrl() -> list[str]:
    import sys

    return [sys.executable, "-m", "metarunlog"]


def _env() -> dict[str, str]:
    from tests.conftest import GIT_ENV, REPO_ROOT

    return {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}


@on_slurm
def test_tasks_of_an_experiment_in_a_symlinked_outdir_find_their_project(project: Path, tmp_path: Path) -> None:
    _symlinked_outdir(project, tmp_path)
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo {{x}}")
    assert exp.dir.resolve().is_relative_to(tmp_path / "scratch")
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--wait", cwd=project, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 done" in proc.stdout


@on_slurm
@pytest.mark.parametrize(
    "name",
    ["my proj %j 'q' $(touch pwned)", 'back\\slash "dq"', "new\nline"],
    ids=["percent", "backslash", "newline"],
)
def test_a_project_whose_path_has_percent_backslash_quotes_spaces_and_dollar_runs_on_slurm(
    project: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Slurm expands %j in --output's whole path and drops backslashes there; sbatch parses
    # the quotes of #SBATCH lines itself: every task failed (JobLaunchFailure) before
    odd = project.parent / name
    project.rename(odd)
    monkeypatch.chdir(odd)
    exp = make_experiment(
        odd, [{"x": 1}, {"x": 2}], "echo {{x}}", after="touch after-ran", slurm={"extra": ["--comment=a  b 'c'"]}
    )
    proc = run_mrl("run", str(exp.id), "--backend", "slurm", "--wait", cwd=odd, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 done" in proc.stdout
    job = records(exp)[0].job_id.split("_")[0]  # type: ignore[union-attr]
    shown = subprocess.run(["scontrol", "show", "job", f"{job}_0"], capture_output=True, text=True).stdout
    assert "Comment=a  b 'c'" in shown, shown
    assert (exp.dir / ".mrl.slurm" / f"slurm-{job}_0.out").exists()
    after_job = json.loads((exp.dir / ".mrl.slurm" / "submissions.jsonl").read_text().splitlines()[0])["after"]
    wait_for("run.after to end", lambda: job_over(after_job), TIMEOUT)
    assert (exp.dir / "after-ran").exists()
    assert (exp.dir / ".mrl.slurm" / f"after-{after_job}.out").exists()
    assert not list(odd.parent.rglob("pwned"))


@on_slurm
def test_status_of_a_read_only_experiment_shows_slurms_verdict_without_writing_it(
    project: Path, read_only: Any
) -> None:
    # someone else's experiment, an archive: status failed with a read-only error
    exp = make_experiment(project, [{"x": 1}], "true")
    run_mrl("run", str(exp.id), "--backend", "slurm", "--slurm-opt=--begin=now+600", check=True)
    sub = exp.sub_experiments()[0]
    task = sub.read_status().job_id  # type: ignore[union-attr]
    subprocess.run(["scancel", task.split("_")[0]], check=True)  # type: ignore[union-attr]
    wait_for("Slurm to end it", lambda: job_over(task.split("_")[0]))  # type: ignore[union-attr]
    before = sub.status_path.read_bytes()
    read_only(project)
    proc = run_mrl("status", str(exp.id), cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 cancelled" in proc.stdout and "Slurm: CANCELLED" in proc.stdout, proc.stdout
    assert sub.status_path.read_bytes() == before


# -- issue 10: a submission owns its experiment; a task never runs changed params ------------


def _makebatch_project(project: Path, command: str) -> Path:
    from tests.conftest import commit_all, main, set_cfg

    (project / "conf.json").write_text('{"x": {{x}}}\n')
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": command})
    commit_all(project, "makebatch project")
    assert main(["new", "owned"]) == 0
    assert main(["makebatch", "--grid", "x=0,1,2"]) == 0
    return project / "output" / "0001"


@on_slurm
def test_makebatch_replace_and_extend_refuse_while_slurm_tasks_are_pending_or_running(project: Path) -> None:
    expdir = _makebatch_project(project, "sleep 60")
    proc = run_mrl("run", "--backend", "slurm", "--max-parallel", "1", cwd=project)
    assert proc.returncode == 0, proc.stderr
    job = json.loads((expdir / "001" / ".mrl.status").read_text())["jobId"].split("_")[0]
    for args in (["-replace", "--grid", "x=7,8"], ["--extend", "--grid", "x=3"]):
        refused = run_mrl("makebatch", *args, cwd=project)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"slurm job(s) {job}" in refused.stderr and "pending or running" in refused.stderr, refused.stderr
        assert len([ln for ln in refused.stderr.splitlines() if ln.startswith("mrl: error:")]) == 1
    assert run_mrl("cancel", cwd=project).returncode == 0
    wait_for("Slurm to end the tasks", lambda: job_over(job))
    proc = run_mrl("makebatch", "-replace", "--grid", "x=7,8", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the submission owns nothing any more
    assert not list((expdir / ".mrl.owners").glob("slurm-*.json"))


@on_slurm
def test_a_task_skips_a_sub_experiment_whose_params_changed_after_submission_and_says_why(project: Path) -> None:
    expdir = _makebatch_project(project, "echo {{x}} > ran.txt")
    with_hold = ["--slurm-opt=--begin=now+600"]  # pending until the params changed
    proc = run_mrl("run", "--backend", "slurm", *with_hold, cwd=project)
    assert proc.returncode == 0, proc.stderr
    task = json.loads((expdir / "002" / ".mrl.status").read_text())["jobId"]
    record = json.loads((expdir / "002" / ".mrl").read_text())
    record["params"]["x"] = 99  # behind mrl's back (makebatch itself refuses while the run owns it)
    (expdir / "002" / ".mrl").write_text(json.dumps(record))
    for t in (task, task.replace("_1", "_0"), task.replace("_1", "_2")):
        subprocess.run(["scontrol", "update", f"JobId={t}", "StartTime=now"], check=True, capture_output=True)
    wait_for("the tasks to end", lambda: job_over(task.split("_")[0]), TIMEOUT)
    assert not (expdir / "002" / "ran.txt").exists()
    st = json.loads((expdir / "002" / ".mrl.status").read_text())
    assert st["state"] == "failed" and "changed after this run planned it" in st["reason"], st
    assert (expdir / "001" / "ran.txt").read_text() == "0\n" and (expdir / "003" / "ran.txt").read_text() == "2\n"


# -- info, table and the API show the state `mrl status` shows (the scheduler's word merged) --


@on_slurm
def test_info_table_and_load_table_show_a_job_cancelled_in_the_queue_as_status_does(project: Path) -> None:
    # the records say `queued`; only Slurm knows the array was scancel-ed before it started.
    # `mrl info 1/1` (and `mrl table`'s state, "as `mrl status` shows it") said queued
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "true")
    run_mrl("run", str(exp.id), "--backend", "slurm", "--slurm-opt=--begin=now+600", check=True)
    job = records(exp)[0].job_id.split("_")[0]  # type: ignore[union-attr]
    subprocess.run(["scancel", job], check=True)
    wait_for("Slurm to end it", lambda: job_over(job))
    assert {r.state for r in records(exp)} == {JobState.QUEUED}  # nobody told the records
    info = run_mrl("info", f"{exp.id}/1", "--json", cwd=project)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["state"] == "cancelled", info.stdout
    code = (
        "import sys; from metarunlog import api; "
        f"t = api.load_table('{exp.id}/2', basedir=sys.argv[1]); print(list(t['state']))"
    )
    api = subprocess.run(
        [sys.executable, "-c", code, str(project)], capture_output=True, text=True, env=_env(), cwd=project
    )
    assert api.returncode == 0, api.stderr
    assert api.stdout.strip() == "['cancelled']", api.stdout
    table = run_mrl("table", str(exp.id), "--json", cwd=project)
    assert table.returncode == 0, table.stderr
    assert [r["state"] for r in json.loads(table.stdout)] == ["cancelled"] * 3, table.stdout


# -- a --force rerun that never started a done sub-experiment leaves it done, as locally --------

_ATTEMPT_1_ONLY = """echo '{"acc": {{x}}}' > metrics.json; [ "$MRL_ATTEMPT" = 1 ] || sleep 300"""


def _done_then_forced(
    project: Path, n: int, command: str = _ATTEMPT_1_ONLY, **run: Any
) -> tuple[Experiment, list[dict[str, Any]]]:
    """An experiment run to its end locally (a rerun of `command` sleeps): the records it
    was done with (what a --force rerun that never starts must leave)."""
    exp = make_experiment(project, [{"x": i} for i in range(1, n + 1)], command, **run)
    run_mrl("run", str(exp.id), cwd=project, check=True)
    done = [s.read_status().to_json() for s in exp.sub_experiments()]  # type: ignore[union-attr]
    assert {d["state"] for d in done} == {"done"}
    return exp, done


@on_slurm
def test_a_done_sub_experiment_whose_forced_rerun_is_cancelled_in_the_queue_stays_done(project: Path) -> None:
    # it showed `cancelled` (mrl cancel, scancel) beside the metrics of the attempt that did
    # finish, with that attempt's start and duration gone; locally it stays done
    exp, done = _done_then_forced(project, 3)
    run_mrl("run", str(exp.id), "--force", "--backend", "slurm", "--slurm-opt=--begin=now+600", check=True)
    assert {r.state for r in records(exp)} == {JobState.QUEUED}
    cancel = run_mrl("cancel", f"{exp.id}/1", cwd=project)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert "001: done (cancelled before it started)" in cancel.stdout, cancel.stdout
    job = records(exp)[1].job_id.split("_")[0]  # type: ignore[union-attr]
    subprocess.run(["scancel", job], check=True)  # the others behind mrl's back
    wait_for("Slurm to end it", lambda: job_over(job))
    shown = run_mrl("status", str(exp.id), cwd=project)
    assert "3 sub-experiment(s): 3 done" in shown.stdout, shown.stdout
    said = "002: its --force rerun never started: its Slurm task "
    assert said in shown.stdout and "(Slurm: CANCELLED)" in shown.stdout, shown.stdout
    assert [s.read_status().to_json() for s in exp.sub_experiments()] == done  # type: ignore[union-attr]
    table = json.loads(run_mrl("table", str(exp.id), "--json", cwd=project, check=True).stdout)
    assert [(r["state"], r["acc"]) for r in table] == [("done", 1), ("done", 2), ("done", 3)]
    assert (exp.dir / ".mrl.done").exists()


@on_slurm
def test_a_cancel_a_waiting_run_answers_says_its_forced_done_one_was_cancelled_before_it_started(
    project: Path,
) -> None:
    # the waiting run took the cancel and said it; `mrl cancel` printed `001: done`
    exp, done = _done_then_forced(project, 2)
    p = _waiting_run(project, exp, None, "--force", "--slurm-opt=--begin=now+600")
    try:
        wait_for("both to be queued", lambda: {r.state for r in records(exp)} == {JobState.QUEUED})
        cancel = run_mrl("cancel", f"{exp.id}/1", cwd=project)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        assert cancel.stdout.splitlines() == ["001: done (cancelled before it started)"], cancel.stdout
        run_mrl("cancel", str(exp.id), cwd=project, check=True)
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
    assert "001 not run: cancelled before it started (its record says done)" in out, out + err
    assert [s.read_status().to_json() for s in exp.sub_experiments()] == done  # type: ignore[union-attr]


@on_slurm
def test_a_done_sub_experiment_a_forced_packed_task_never_started_before_its_time_limit_stays_done(
    project: Path,
) -> None:
    # it was `pending` ("not started: ...") beside its earlier attempt's metrics: a table
    # showed `pending` with acc 2, a value no run of this state made
    exp, done = _done_then_forced(project, 2, slurm={"pack": 2, "pack_jobs": 1})
    args = ("--force", "--backend", "slurm", "--wait", "--slurm-opt=--time=1")
    proc = run_mrl("run", str(exp.id), *args, cwd=project, timeout=TIMEOUT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 timeout" in proc.stdout and "pending" not in proc.stdout, proc.stdout
    assert "cancelled" not in proc.stdout, proc.stdout  # nobody cancelled it, not even for a moment
    # not counted as this run's done: its record is the earlier run's (as the local backend says)
    said = "[2/2] 002 not run: its --force rerun never started: its Slurm task "
    assert said in proc.stdout and "(its record says done)" in proc.stdout, proc.stdout
    ran, never = records(exp)
    assert ran.state is JobState.TIMEOUT and ran.attempts == 2, ran
    assert never.to_json() == done[1], never  # as it was: its rerun never started
    shown = run_mrl("status", str(exp.id), cwd=project).stdout
    assert "1 done, 1 timeout" in shown, shown


@on_slurm
def test_wait_says_a_forced_packed_sub_experiment_cancelled_before_it_started_was_not_run(project: Path) -> None:
    # `mrl cancel 1/2` while its packed task runs 001: 002's record is the done one again,
    # which `mrl run --wait` must not count as done by this run
    command = _ATTEMPT_1_ONLY.replace("sleep 300", "sleep 6")
    exp, done = _done_then_forced(project, 2, command, slurm={"pack": 2, "pack_jobs": 1})
    waiting = _waiting_run(project, exp, None, "--force")
    try:
        sub1 = exp.sub_experiments()[0]
        wait_for("001 to run", lambda: getattr(sub1.read_status(), "state", None) is JobState.RUNNING)
        assert run_mrl("cancel", f"{exp.id}/2", cwd=project).returncode == 0
        out, err = waiting.communicate(timeout=TIMEOUT)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, out + err
    assert "002 not run: cancelled before it started (its record says done)" in out, out
    assert "1 done; 1 never started again (their records say done)" in out, out
    assert exp.sub_experiments()[1].read_status().to_json() == done[1]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "refusal",
    [  # sbatch's words for a per-user/QOS job limit (accounting, which this cluster lacks)
        "sbatch: error: AssocMaxSubmitJobLimit; sbatch: error: Batch job submission failed: Job violates "
        "accounting/QOS policy (job submit limit, user's size and/or time limits)",
        "sbatch: error: QOSMaxSubmitJobPerUserLimit; sbatch: error: Batch job submission failed: Job violates "
        "accounting/QOS policy (job submit limit, user's size and/or time limits)",
    ],
)
def test_a_job_limit_refusal_says_to_pack_not_to_split_as_every_array_task_counts_as_a_job(refusal: str) -> None:
    hint = slurm._hint(refusal)
    assert "--pack K" in hint and "each array task counts" in hint, hint
    assert "array_limit" not in hint, hint  # more, smaller arrays hold as many tasks: refused all the same
