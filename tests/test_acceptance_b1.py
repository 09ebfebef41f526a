"""Acceptance checks of issues 9-11 as a user meets them (accept-b1): the CLI in a real
subprocess, in a real git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.repo import commit_all, run_mrl, set_cfg


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (("status", "1/1,x"), "'1,x'"),
        (("table", "1/abc"), "'abc'"),
        (("info", "1/1-"), "'1-'"),
        (("status", "last/2,"), None),
    ],
)
def test_exp_slash_a_bad_selection_says_the_selection_is_bad_not_that_there_is_no_experiment(
    project: Path, args: tuple[str, ...], bad: str | None
) -> None:
    for step in (("new", "q"), ("makebatch",)):
        run_mrl(*step, cwd=project, check=True)
    res = run_mrl(*args, cwd=project)
    if bad is None:  # a trailing comma is a selection (`2,`), as in `mrl status 1 2,`
        assert res.returncode == 0, res.stderr
        return
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrl: error: "), res.stderr
    assert f"bad selection {bad}" in lines[0] and "is not an experiment" not in lines[0], lines[0]


PROC_BACKEND = '''
import subprocess

from metarunlog import jsonio
from metarunlog.backends.base import Backend
from metarunlog.backends.registry import BackendSpec, register
from metarunlog.backends.task import task_command
from metarunlog.records import Status

QUEUED_AT_SUBMIT = {queued}


class Proc(Backend):
    """docs/running.md, "For backend authors": each job a task process of its own."""

    name = "proc"
    waits = True

    def submit(self, jobs):
        self.procs = []
        for job in jobs:
            if QUEUED_AT_SUBMIT:
                job.sub.write_status((job.read_status() or Status()).queued(self.name, "", jsonio.now()))
            argv = task_command(job.sub.exp.dir, job.sub.name, self.name, force=self.options.force)
            self.procs.append(subprocess.Popen(argv, start_new_session=True))

    def poll(self, jobs):
        return [job.observe() for job in jobs]

    def cancel(self, jobs):
        pass

    def close(self):
        for p in self.procs:
            p.wait()


register(BackendSpec("proc", "acme_proc:Proc"))
'''


@pytest.mark.parametrize("queued", [True, False], ids=["queued at submit", "no record at submit"])
def test_a_task_process_backend_written_as_docs_running_md_says_is_waited_for(project: Path, queued: bool) -> None:
    # the recipe of "For backend authors": poll as `[job.observe() for job in jobs]`, and a
    # job submitted but not started reads `queued` (its record written at submit). Without
    # that record the run cannot wait for it: it ends saying pending, exit 1, as documented.
    (project / "acme_proc.py").write_text(PROC_BACKEND.format(queued=queued))
    (project / "conf.lua").write_text("x = {{x}}\n-- MRL:grid['x'] = [1, 2, 3]\n")
    set_cfg(project, plugins=["acme_proc"], run={"command": "sleep 0.5; echo {{x}} > out.txt"})
    commit_all(project, "proc backend")
    for step in (("new", "q"), ("makebatch",)):
        run_mrl(*step, cwd=project, check=True)
    res = run_mrl("run", "--backend", "proc", cwd=project)
    if queued:
        assert res.returncode == 0 and "3 done" in res.stdout, (res.stdout, res.stderr)
    else:
        assert res.returncode == 1 and "3 pending" in res.stdout, (res.stdout, res.stderr)
    exp = project / "output" / "0001"
    assert sorted((exp / s / "out.txt").read_text() for s in ("001", "002", "003")) == ["1\n", "2\n", "3\n"]
