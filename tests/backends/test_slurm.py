"""The Slurm backend: script generation and state merging (no cluster), then Slurm-only
behaviour against a real single-node Slurm (the `slurm` fixture of conftest.py).

The behaviour both backends share (same experiment, same results and records) is in
tests/backends/contract.py, run against Slurm by test_contract_slurm.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metarunlog.backends import slurm
from metarunlog.backends.slurm import SlurmOptions, TaskInfo, array_spec, merged_state
from metarunlog.states import JobState

# -- no cluster needed ----------------------------------------------------------------------


def test_array_spec_compresses_consecutive_ids_into_ranges_and_adds_the_throttle() -> None:
    assert array_spec([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    assert array_spec([4]) == "4"
    assert array_spec([3, 1, 2], max_parallel=2) == "1-3%2"


def test_sbatch_lines_come_from_the_config_then_extra_lines_then_slurm_opt() -> None:
    cfg = {"partition": "gpu", "time": 30, "mem": "4G", "cpus_per_task": 2, "gpus": 1, "account": None,
           "qos": "", "extra": ["--constraint=a100", "#SBATCH --exclusive"], "max_parallel": 3}
    opts = SlurmOptions.from_config(cfg, ["--partition=debug"])
    assert opts.sbatch_lines() == [
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --mem=4G",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --gpus=1",
        "#SBATCH --constraint=a100",
        "#SBATCH --exclusive",
        "#SBATCH --partition=debug",  # later lines win in sbatch
    ]
    assert opts.max_parallel == 3
    assert SlurmOptions.from_config(cfg, [], max_parallel=5).max_parallel == 5


def test_an_option_that_is_not_an_option_is_refused_before_anything_is_submitted() -> None:
    with pytest.raises(slurm.SlurmError, match="must start with '-'"):
        SlurmOptions.from_config({}, ["partition=gpu"]).sbatch_lines()


def test_the_script_runs_each_array_task_through_the_same_mrl_and_interpreter(tmp_path: Path) -> None:
    import sys

    import metarunlog

    text = slurm.render_script(tmp_path, "0003", [1, 2, 4], SlurmOptions(max_parallel=2))
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=1-2,4%2\n" in text
    assert f"#SBATCH --output={tmp_path}/.mrl.slurm/slurm-%A_%a.out" in text
    assert f"{sys.executable} -m metarunlog.execute {tmp_path} $SLURM_ARRAY_TASK_ID --backend slurm" in text
    assert str(Path(metarunlog.__file__).resolve().parent.parent) in text


def test_scripts_are_numbered_and_never_overwritten(tmp_path: Path) -> None:
    a = slurm.write_script(tmp_path, "one\n")
    b = slurm.write_script(tmp_path, "two\n")
    assert (a.name, b.name) == ("submit-001.sh", "submit-002.sh")
    assert a.read_text() == "one\n"


@pytest.mark.parametrize(
    ("recorded", "scheduler", "shown"),
    [
        ("queued", None, "stale"),  # the scheduler forgot the job
        ("running", None, "stale"),
        ("done", None, "done"),
        ("queued", "PENDING", "queued"),
        ("queued", "RUNNING", "running"),
        ("running", "RUNNING", "running"),
        ("done", "COMPLETING", "done"),
        ("running", "CANCELLED by 0", "cancelled"),  # scancel behind mrl's back
        ("running", "FAILED", "failed"),
        ("cancelled", "TIMEOUT", "timeout"),  # the task saw SIGTERM; Slurm knows why
        ("running", "OUT_OF_MEMORY", "oom"),
        ("queued", "NODE_FAIL", "node_fail"),
        ("running", "COMPLETED", "stale"),  # ended without writing its end
        ("failed", "FAILED", "failed"),
    ],
)
def test_merged_state_combines_the_record_with_what_slurm_says(
    recorded: str, scheduler: str | None, shown: str
) -> None:
    info = None if scheduler is None else TaskInfo("12_3", scheduler)
    assert merged_state({"state": recorded, "backend": "slurm", "jobId": "12_3"}, info) is JobState(shown)


def test_a_missing_sbatch_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(slurm.SlurmError, match="sbatch not found on PATH"):
        slurm.sbatch(tmp_path / "x.sh")
