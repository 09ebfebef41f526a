"""Ordinary faults are one `mrl: error:` line (or a warning), never a traceback; configured
paths never leave the project (issue 10, "Tracebacks", "Unbounded memory or time")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT, commit_all, run_mrl, set_cfg


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mrl: error:")]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]


def _done_experiment(project: Path) -> Path:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ok")
    assert run_mrl("run", cwd=project).returncode == 0
    (exp.dir / ".mrl.done").unlink()  # as a Slurm run that finished after `mrl run` returned
    return exp.dir


def test_status_on_a_read_only_experiment_works_and_writes_nothing(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    expdir = read_only(_done_experiment(project))
    proc = run_mrl("status", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "2 done" in proc.stdout
    assert not (expdir / ".mrl.done").exists()


def test_run_force_and_analyze_on_a_read_only_experiment_are_one_error_line(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    expdir = read_only(_done_experiment(project))
    _one_error_line(run_mrl("run", "--force", cwd=project), "read-only file system", str(expdir))
    _one_error_line(run_mrl("analyze", cwd=project), "read-only file system")


def test_a_read_only_experiment_is_said_by_the_file_mrl_meant_to_write_not_its_temp(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    expdir = _done_experiment(project)
    assert run_mrl("analyze", cwd=project).returncode == 0  # analysis/ exists: only the file is new
    read_only(expdir)
    analyze = run_mrl("analyze", cwd=project)
    _one_error_line(analyze, f"{expdir}/analysis/index.html (", "`mrl ls`, `status` and `table` still work")
    tag = run_mrl("tag", "+paper", cwd=project)
    _one_error_line(tag, f"{expdir}/.mrl (")
    assert ".tmp" not in analyze.stderr + tag.stderr


def test_a_sub_experiment_that_cannot_be_written_is_named_not_dropped_silently(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "echo ran > out.txt")
    sub = read_only(exp.dir / "002")  # its .mrl.lock cannot even be made: it never starts
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("mrl: 002: ")]
    assert len(said) == 1 and "read-only file system" in said[0] and str(sub) in said[0], proc.stderr
    assert "2 done, 1 pending" in proc.stdout
    assert (exp.dir / "001" / "out.txt").exists() and (exp.dir / "003" / "out.txt").exists()


def test_two_force_runs_racing_on_the_done_mark_never_crash(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "true")
    env = {**__import__("os").environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    for _ in range(8):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "metarunlog", "run", "--force"],
                cwd=project,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert "Traceback" not in err, err
            assert p.returncode in (0, 1), out + err


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_last_of_the_users_in_the_basedir_is_left_alone_with_a_warning(project: Path, kind: str) -> None:
    last = project / "last"
    if kind == "folder":
        last.mkdir()
        (last / "mine.txt").write_text("keep me")
    else:
        last.write_text("keep me")
    proc = run_mrl("new", "x", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "mrl: warning:" in proc.stderr and str(last) in proc.stderr
    assert (last / "mine.txt" if kind == "folder" else last).read_text() == "keep me"
    assert not last.is_symlink()
    assert not list(project.glob(".last.*.tmp"))
    assert (project / "output" / "0001" / ".mrl").exists()


def test_note_fn_through_a_file_is_one_error_line_and_leaves_no_experiment(project: Path) -> None:
    set_cfg(project, note_fn="conf.lua/x")
    commit_all(project, "note_fn")
    _one_error_line(run_mrl("new", "x", cwd=project), "note_fn", "conf.lua/x")
    assert not (project / "output" / "0001").exists()


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("note_fn", "../../../../../etc/x", "'note_fn'"),
        ("subExpFormat", "/tmp/mrl-outside-{subExpId}", "'subExpFormat'"),
        ("subExpFormat", "../{subExpId:03d}", "'subExpFormat'"),
        ("singleExpFormat", "../../{expId}", "'singleExpFormat'"),
        ("analysis_outdir", "/tmp", "'analysis_outdir'"),
        ("confTemplFile", "../x.lua", "confTemplFile entry '../x.lua'"),
        ("copyFiles", ["/etc/passwd"], "copyFiles entry '/etc/passwd'"),
    ],
)
def test_a_configured_path_leaving_the_project_is_refused(project: Path, key: str, value: object, needle: str) -> None:
    set_cfg(project, **{key: value})
    commit_all(project, key)
    _one_error_line(run_mrl("new", "x", cwd=project), needle, "inside")
    assert not Path("/tmp/mrl-outside-1").exists()


@pytest.mark.parametrize(
    ("key", "value", "command"), [("note_fn", "notes/n.md", "new"), ("analysis_outfn", "a/b.html", "analyze")]
)
def test_a_configured_file_name_in_a_subfolder_is_refused_not_an_internal_error(
    project: Path, key: str, value: str, command: str
) -> None:
    # before: FileNotFoundError tracebacks (exit 3): `mrl new` wrote the note into a folder
    # it never made, `mrl analyze` the report likewise
    assert run_mrl("new", "x", cwd=project).returncode == 0
    set_cfg(project, **{key: value})
    commit_all(project, key)
    _one_error_line(run_mrl(command, cwd=project), f"'{key}'", "one file name")
    assert [p.name for p in (project / "output").iterdir() if p.name.isdigit()] == ["0001"]


def test_a_null_resource_is_refused_not_cuda_visible_devices_none(project: Path) -> None:
    set_cfg(project, run={"command": "echo $CUDA_VISIBLE_DEVICES > gpu.txt", "resources": [None]})
    _one_error_line(run_mrl("ls", cwd=project), "'run.resources'", "null")
    data = json.loads((project / ".mrl.cfg").read_text())
    assert data["run"]["resources"] == [None]  # the file is the user's: not rewritten
