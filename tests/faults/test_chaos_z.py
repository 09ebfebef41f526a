"""Faults the fourth adversarial pass found (docs/dev-notes/wave2/chaos-z.md): concurrent
commands, signals at each phase, hostile steps, records and metrics. Each reduced to a
deterministic case with real mrl processes."""

from __future__ import annotations

from pathlib import Path

from tests.backends.contract import make_experiment
from tests.helpers.repo import run_mrl


def test_a_job_mrl_could_not_record_is_not_counted_done_in_the_summary(project: Path, tmp_path: Path) -> None:
    # 001 and 002 done; then 002's run.log is a symlink: `run --force` runs 001 only
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran")
    assert run_mrl("run", cwd=project).returncode == 0
    log = exp.dir / "002" / "run.log"
    log.unlink()
    log.symlink_to(tmp_path / "elsewhere.txt")
    proc = run_mrl("run", "--force", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stdout.splitlines()[-1]
    # before: "finished in 0.1s: 2 done; 1 not run: ..." (002's old record counted as done by this run)
    assert ": 1 done; 1 not run: mrl could not record them" in last, proc.stdout
