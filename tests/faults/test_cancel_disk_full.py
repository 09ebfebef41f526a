"""`mrl cancel` of a runner whose claim folder is full (ENOSPC, a real tmpfs): the runner
could not write `<claim>.serving` when it began serving, nor the answer to the request it
took; the cancel waited its 120 s pre-serving wait and gave up, although the runner had
taken the request and stopped the step. Now the runner answers without new space (the
taken request becomes the answer) and the cancel learns at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from metarunlog.ownership import OWNERS
from tests.backends.contract import make_experiment
from tests.helpers.processes import alive, start_mrl, statuses, wait_for
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl

# `mrl run` whose claim folder fills up (a real ENOSPC) just as it begins serving cancel
# requests.
FULL_WHEN_SERVING = """
import os, sys
from pathlib import Path
from metarunlog import ownership
from metarunlog.main import main
sys.path.insert(0, {root!r})
from tests.faults.conftest import fill
real = ownership.RunnerClaim.serve
def serve(self):
    fill(self.path.parent)
    real(self)
    Path(os.environ["SERVED"]).write_text("yes")
ownership.RunnerClaim.serve = serve
sys.exit(main(sys.argv[1:]))
"""


def _serving_on_a_full_disk(
    project: Path, exp_dir: Path, served: Path, pids: tuple[Path, ...], *args: str
) -> subprocess.Popen[str]:
    """`mrl run ARGS` whose claim folder filled up as it began serving, once the steps
    wrote `pids`; then one page is freed: a request fits, the runner's answer not."""
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT), "SERVED": str(served)}
    runner = subprocess.Popen(
        [sys.executable, "-c", FULL_WHEN_SERVING.format(root=str(REPO_ROOT)), "run", *args],
        cwd=project,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(lambda: served.exists() and all(p.exists() and p.read_text().strip() for p in pids), what="steps")
    except AssertionError:
        runner.kill()
        raise AssertionError(runner.communicate()) from None
    filler = exp_dir / OWNERS / ".filler"
    os.truncate(filler, filler.stat().st_size - 4096)
    return runner


def test_cancel_of_a_runner_that_cannot_write_its_answer_learns_at_once(
    project: Path, full_disk, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo $$ > pid.txt; sleep 60")
    full_disk(exp.dir / OWNERS, size="64k")
    pid, other = exp.dir / "001" / "pid.txt", exp.dir / "002" / "pid.txt"
    runner = _serving_on_a_full_disk(project, exp.dir, tmp_path / "served", (pid, other), "-j", "2")
    # the runner lives on (002 runs): the cancel waited 120 s for an answer it could not write
    proc = run_mrl("cancel", "last", "1", cwd=project, timeout=60)
    assert proc.stdout.strip() == "001: cancelled", proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert alive(int(other.read_text())) and statuses(exp.dir)["002"]["state"] == "running"
    # the runner's last one: it ends with it (the cancel said "nothing is running" of it)
    proc = run_mrl("cancel", cwd=project, timeout=60)
    assert proc.stdout.strip() == "002: cancelled", proc.stdout + proc.stderr
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, out + err
    assert not alive(int(pid.read_text()))
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled"] * 2


def test_cancel_of_a_runner_that_answers_in_place_keeps_its_note(project: Path, full_disk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the answer written over the taken request held the ids alone: a done one queued by
    # --force and cancelled before it started read "002: done", the runner's "cancelled
    # before it started" lost (the full answer needs no more than the page the request has)
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo $$ > pid.txt; [ -e {{expDir}}/go ] || sleep 60")
    (exp.dir / "go").touch()
    assert run_mrl("run", cwd=project).returncode == 0
    (exp.dir / "go").unlink()
    full_disk(exp.dir / OWNERS, size="64k")
    pid = exp.dir / "001" / "pid.txt"
    pid.unlink()
    runner = _serving_on_a_full_disk(project, exp.dir, tmp_path / "served", (pid,), "--force", "-j", "1")
    proc = run_mrl("cancel", "last", "2", cwd=project, timeout=60)
    assert proc.stdout.strip() == "002: done (cancelled before it started)", proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    proc = run_mrl("cancel", "last", "1", cwd=project, timeout=60)
    assert proc.stdout.strip() == "001: cancelled", proc.stdout + proc.stderr
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, out + err
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled", "done"]


def test_cancel_of_a_runner_whose_claim_folder_is_read_only_says_what_to_do(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    exp = make_experiment(project, [{"x": 1}], "echo $$ > pid.txt; sleep 60")
    runner = start_mrl("run", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    try:
        wait_for(lambda: pid.exists() and pid.read_text().strip(), what="the step")
        read_only(exp.dir / OWNERS)
        proc = run_mrl("cancel", cwd=project, timeout=60)
    finally:
        os.kill(runner.pid, signal.SIGTERM)
        runner.communicate(timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(
        f"mrl: error: cannot ask the mrl run (pid {runner.pid}) running it to cancel: read-only"
    )
    assert f"`kill {runner.pid}`" in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert statuses(exp.dir)["001"]["state"] == "cancelled"  # what that kill did
