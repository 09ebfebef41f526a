"""Ordinary environment faults (read-only, disk full, permissions) are one `mrl: error:`
line naming the path, exit 1, never a traceback (issue 10, "Tracebacks")."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from metarunlog.error_handler import environment_message
from tests.faults.conftest import fill
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg


def _one_error_line(proc, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mrl: error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], proc.stderr


def test_mrl_new_on_a_read_only_outdir_is_one_line_naming_the_path(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    read_only(project / "output")
    proc = run_mrl("new", "x", cwd=project)
    _one_error_line(proc, "read-only file system", str(project / "output"))


def test_mrl_analyze_on_a_full_disk_is_one_line_saying_to_free_space(project: Path, full_disk) -> None:  # type: ignore[no-untyped-def]
    out = full_disk(project / "output", "4m")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    fill(out)
    proc = run_mrl("analyze", cwd=project)
    _one_error_line(proc, "no space left on device", "free some disk space", str(out / "0001" / "analysis"))


def test_a_full_disk_under_a_record_names_the_file_that_could_not_be_written(project: Path, full_disk) -> None:  # type: ignore[no-untyped-def]
    out = full_disk(project / "output", "4m")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    fill(out)
    # the write itself fails (not the open): the errno alone names no file
    _one_error_line(run_mrl("tag", "1", "+a", cwd=project), "no space left on device", str(out / "0001" / ".mrl"))
    _one_error_line(run_mrl("run", cwd=project), "no space left on device", str(out / "0001" / ".mrl.owners"))


def test_a_disk_filling_up_during_a_run_names_the_file_of_each_sub_experiment(project: Path, full_disk) -> None:  # type: ignore[no-untyped-def]
    # Each step writes 0.9 MB to its run.log; the disk fills on the 4th. The run.log header
    # of the next ones could not be written, and they said "mrl could not record it: no space
    # left on device (free some disk space and rerun)": no file named (a write to a descriptor).
    out = full_disk(project / "output", "3m")
    set_cfg(project, run={"command": "head -c 900000 /dev/zero | tr '\\0' x; echo"})
    commit_all(project, "big logs")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    assert run_mrl("makebatch", "--grid", "x=1,2,3,4,5", cwd=project).returncode == 0
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    full = [line for line in proc.stderr.splitlines() if "no space left on device" in line]
    assert full and all(str(out / "0001") in line for line in full), proc.stderr


def test_the_message_names_the_path_and_the_fix() -> None:
    assert environment_message(OSError(errno.ENOSPC, "No space left on device", "/x/y")) == (
        "no space left on device: /x/y (free some disk space and rerun)"
    )


def test_a_repository_git_refuses_as_another_users_is_said_not_misread_as_empty(project: Path) -> None:
    # A colleague's (or root's) checkout: git refuses it ("dubious ownership"); mrl said
    # "has no commit yet" and, for verify, "commit ... not in the repository (history rewritten?)".
    assert run_mrl("new", "x", cwd=project).returncode == 0
    other_owner = {"GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"}  # git's own switch for this check
    for args in (["new", "y"], ["verify", "1"]):
        proc = run_mrl(*args, cwd=project, env=other_owner)
        _one_error_line(proc, "dubious ownership", "safe.directory", str(project))
        assert "no commit yet" not in proc.stderr and "history rewritten" not in proc.stderr


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_mrl_new_on_a_full_disk_is_one_line_and_leaves_no_experiment(project: Path, full_disk, mode: str) -> None:  # type: ignore[no-untyped-def]
    set_cfg(project, snapshot=mode)
    (project / "weights.bin").write_bytes(os.urandom(3 << 20))  # more than the 2 MiB disk
    commit_all(project, "big file")
    out = full_disk(project / "output")
    proc = run_mrl("new", "x", cwd=project)
    _one_error_line(proc, "no space left on device", str(out), "free some disk space")
    assert "git -c" not in proc.stderr
    assert not [p for p in out.iterdir() if p.name.isdigit()]


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_mrl_new_on_a_disk_out_of_inodes_is_one_line_not_one_per_file(project: Path, full_disk, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Many small files on a filesystem with bytes to spare but no inodes left: git printed
    one "failed to open file" line for each file it could not write (hundreds)."""
    set_cfg(project, snapshot=mode)
    (project / "src").mkdir()
    for n in range(300):
        (project / "src" / f"m{n}.py").write_text(f"N = {n}\n")
    commit_all(project, "many files")
    out = full_disk(project / "output", "50m", inodes=200)
    proc = run_mrl("new", "x", cwd=project)
    _one_error_line(proc, "no space left on device", "inodes", str(out))
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert not [p for p in out.iterdir() if p.name.isdigit()]


def test_a_store_on_a_bind_mount_is_said_to_be_on_another_mount(project: Path, bind_mount) -> None:  # type: ignore[no-untyped-def]
    """The same filesystem mounted twice: link(2) says EXDEV, and mrl said the outdir's
    filesystem "has no hardlinks", which it has."""
    store = project / "output" / ".mrl.objects"
    store.mkdir(parents=True)
    bind_mount(store)
    set_cfg(project, snapshot="link")
    commit_all(project, "link")
    proc = run_mrl("new", "x", cwd=project)
    _one_error_line(proc, "another mount", str(store), '"auto" or "copy"')
    assert "has no hardlinks" not in proc.stderr
    set_cfg(project, snapshot="auto")
    commit_all(project, "auto")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    assert _record(project / "output" / "0001")["snapshot"]["mode"] == "copy"


def _record(exp: Path) -> dict:
    import json

    return json.loads((exp / ".mrl").read_text())


def test_a_read_only_store_makes_auto_copy_and_link_say_why_it_cannot(project: Path, read_only) -> None:  # type: ignore[no-untyped-def]
    assert run_mrl("new", "first", cwd=project).returncode == 0
    read_only(project / "output" / ".mrl.objects")
    proc = run_mrl("new", "second", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert _record(project / "output" / "0002")["snapshot"]["mode"] == "copy"
    assert run_mrl("verify", "2", cwd=project).returncode == 0
    set_cfg(project, snapshot="link")
    commit_all(project, "link")
    proc = run_mrl("new", "third", cwd=project)
    _one_error_line(proc, "snapshot: link is impossible here", "not writable", str(project / "output" / ".mrl.objects"))
    assert ".probe" not in proc.stderr


def test_a_store_folder_another_user_owns_leaves_the_new_file_private(project: Path) -> None:
    assert run_mrl("new", "first", cwd=project).returncode == 0
    (project / "new.py").write_text("print('new')\n")
    commit_all(project, "a file whose blob goes to a new store folder")
    sha = git(project, "rev-parse", "HEAD:new.py").strip()
    prefix = project / "output" / ".mrl.objects" / sha[:2]
    prefix.mkdir(exist_ok=True)
    # An immutable folder refuses new entries even to root (EPERM), as another user's does (EACCES).
    if subprocess.run(["chattr", "+i", str(prefix)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not possible here")
    try:
        proc = run_mrl("new", "second", cwd=project)
    finally:
        subprocess.run(["chattr", "-i", str(prefix)], check=True)
    assert proc.returncode == 0, proc.stderr
    fresh = project / "output" / "0002" / "code" / "new.py"
    assert fresh.read_text() == "print('new')\n" and os.stat(fresh).st_nlink == 1
    assert run_mrl("verify", "2", cwd=project).returncode == 0
