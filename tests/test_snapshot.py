"""Deduplicated, read-only code snapshots (`snapshot: link|copy|auto`) and `mrl info --verify`."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.processes import start_mrl
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg

OUT = Path("output")


def code(project: Path, name: str) -> Path:
    return project / OUT / name / "code"


def record(project: Path, name: str) -> dict:
    return json.loads((project / OUT / name / ".mrl").read_text())


def inode(p: Path) -> int:
    return os.lstat(p).st_ino


def is_writable(p: Path) -> bool:
    return bool(os.lstat(p).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def link_to_the_limit(src: Path, links: Path) -> Path:
    """Hardlink `src` into the new folder `links` until the filesystem refuses (EMLINK)."""
    import errno

    links.mkdir()
    for n in range(70_000):
        try:
            os.link(src, links / str(n))
        except OSError as e:
            if e.errno != errno.EMLINK:
                raise
            return links
    shutil.rmtree(links)
    pytest.skip("this filesystem allows more than 70,000 hardlinks per file")


@pytest.fixture
def two_commits(project: Path) -> Path:
    """Experiment 0001 at one commit and 0002 at the next, which changed only model.py."""
    (project / "pkg").mkdir()
    (project / "pkg" / "model.py").write_text("LAYERS = 3\n")
    (project / "pkg" / "data.py").write_text("DATA = 'mnist'\n")
    (project / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(project / "run.sh", 0o755)
    commit_all(project, "model")
    assert main(["new", "one"]) == 0
    (project / "pkg" / "model.py").write_text("LAYERS = 4\n")
    commit_all(project, "more layers")
    assert main(["new", "two"]) == 0
    return project


def test_consecutive_experiments_share_unchanged_files_through_the_store(two_commits: Path) -> None:
    a, b = code(two_commits, "0001"), code(two_commits, "0002")
    assert inode(a / "pkg" / "data.py") == inode(b / "pkg" / "data.py")
    assert inode(a / "train.py") == inode(b / "train.py")
    assert inode(a / "pkg" / "model.py") != inode(b / "pkg" / "model.py")
    assert (a / "pkg" / "model.py").read_text() == "LAYERS = 3\n"
    assert (b / "pkg" / "model.py").read_text() == "LAYERS = 4\n"
    sha = git(two_commits, "rev-parse", "HEAD:pkg/data.py").strip()
    stored = two_commits / OUT / ".mrl.objects" / sha[:2] / sha[2:]
    assert inode(stored) == inode(a / "pkg" / "data.py")
    assert record(two_commits, "0001")["snapshot"]["mode"] == "link"
    snap2 = record(two_commits, "0002")["snapshot"]
    assert snap2["stored"] == 1 and snap2["linked"] == snap2["files"] - 1


def test_one_blob_at_many_paths_is_stored_once_in_the_first_experiment(project: Path) -> None:
    """Empty __init__.py files, a data file kept twice: git names their content once, so
    the first experiment holds it once too, not one private copy per extra path."""
    for d in ("a", "b", "c"):
        (project / d).mkdir()
        (project / d / "__init__.py").write_text("")
        (project / d / "table.csv").write_bytes(b"x,y\n" * 10_000)
    (project / "tool.sh").write_text("#!/bin/sh\n")
    (project / "tool2.sh").write_text("#!/bin/sh\n")
    os.chmod(project / "tool.sh", 0o755)  # the same blob, once executable and once not: two files
    commit_all(project, "duplicates")
    assert main(["new"]) == 0
    c = code(project, "0001")
    for name in ("__init__.py", "table.csv"):
        assert len({inode(c / d / name) for d in ("a", "b", "c")}) == 1
    assert inode(c / "tool.sh") != inode(c / "tool2.sh")
    assert os.stat(c / "tool.sh").st_mode & stat.S_IXUSR and not os.stat(c / "tool2.sh").st_mode & stat.S_IXUSR
    sha = git(project, "rev-parse", "HEAD:a/table.csv").strip()
    assert inode(project / OUT / ".mrl.objects" / sha[:2] / sha[2:]) == inode(c / "a" / "table.csv")
    snap = record(project, "0001")["snapshot"]
    tracked = len(git(project, "ls-files").split())
    assert snap["files"] == tracked and snap["stored"] == tracked - 4 and snap["linked"] == 4
    assert main(["verify", "1"]) == 0


def test_a_path_of_a_blob_at_its_hardlink_limit_gets_a_read_only_copy(tmp_path: Path) -> None:
    from metarunlog.snapshot import _link_or_copy

    src = tmp_path / "held"
    src.write_text("")
    os.chmod(src, 0o444)
    links = link_to_the_limit(src, tmp_path / "links")
    assert _link_or_copy(str(src), str(tmp_path / "one_more")) is False  # not counted as linked in the record
    assert inode(tmp_path / "one_more") != inode(src) and not is_writable(tmp_path / "one_more")
    shutil.rmtree(links)


def test_snapshot_files_are_read_only_and_executables_stay_executable(two_commits: Path) -> None:
    for name in ("0001", "0002"):
        c = code(two_commits, name)
        files = [p for p in c.rglob("*") if p.is_file()]
        assert files and not any(is_writable(p) for p in files)
        assert os.access(c / "run.sh", os.X_OK) and os.stat(c / "run.sh").st_mode & stat.S_IXUSR
        assert not os.stat(c / "train.py").st_mode & stat.S_IXUSR
        assert all(os.access(d, os.W_OK) for d in [c, *(p for p in c.rglob("*") if p.is_dir())])
    out = subprocess.run(["sh", str(code(two_commits, "0002") / "run.sh")], capture_output=True, text=True)
    assert out.stdout == "hi\n"


def test_deleting_an_experiment_or_the_store_never_breaks_another(two_commits: Path) -> None:
    shutil.rmtree(two_commits / OUT / "0001")  # plain rmtree: read-only files in writable folders
    assert not (two_commits / OUT / "0001").exists()
    shutil.rmtree(two_commits / OUT / ".mrl.objects")
    b = code(two_commits, "0002")
    assert (b / "pkg" / "data.py").read_text() == "DATA = 'mnist'\n"
    assert run_mrl("info", "--verify", "2", cwd=two_commits).returncode == 0
    assert main(["new", "three"]) == 0  # the store is rebuilt
    assert inode(code(two_commits, "0003") / "pkg" / "data.py") != inode(b / "pkg" / "data.py")
    assert (code(two_commits, "0003") / "pkg" / "data.py").read_text() == "DATA = 'mnist'\n"


def test_a_copied_experiment_folder_is_self_contained(two_commits: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(two_commits / OUT / "0002", elsewhere, symlinks=True)
    shutil.rmtree(two_commits / OUT)
    assert (elsewhere / "code" / "pkg" / "data.py").read_text() == "DATA = 'mnist'\n"
    out = subprocess.run(
        [sys.executable, "-c", "import pkg.model as m; print(m.LAYERS)"],
        cwd=elsewhere / "code",
        capture_output=True,
        text=True,
    )
    assert out.stdout == "4\n"
    shutil.rmtree(elsewhere)


def test_a_notclean_diff_patches_a_private_copy_and_leaves_other_experiments_alone(two_commits: Path) -> None:
    (two_commits / "pkg" / "data.py").write_text("DATA = 'cifar'\n")
    (two_commits / "train.py").unlink()
    assert main(["new", "--notclean", "dirty"]) == 0
    c1, c2, c3 = (code(two_commits, n) for n in ("0001", "0002", "0003"))
    assert (c3 / "pkg" / "data.py").read_text() == "DATA = 'cifar'\n"
    assert not (c3 / "train.py").exists()
    for other in (c1, c2):
        assert (other / "pkg" / "data.py").read_text() == "DATA = 'mnist'\n"
        assert (other / "train.py").is_file()
    assert os.stat(c3 / "pkg" / "data.py").st_nlink == 1
    assert not is_writable(c3 / "pkg" / "data.py")
    assert inode(c3 / "pkg" / "model.py") == inode(c2 / "pkg" / "model.py")
    r = run_mrl("info", "--verify", "3", cwd=two_commits)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "+ .mrl.diff" in r.stdout


def test_snapshot_copy_writes_private_read_only_files(project: Path) -> None:
    set_cfg(project, snapshot="copy")
    commit_all(project, "copy")
    assert main(["new"]) == 0
    assert main(["new"]) == 0
    a, b = code(project, "0001"), code(project, "0002")
    assert inode(a / "train.py") != inode(b / "train.py")
    assert os.stat(a / "train.py").st_nlink == 1 and not is_writable(a / "train.py")
    assert record(project, "0002")["snapshot"]["mode"] == "copy"
    assert not (project / OUT / ".mrl.objects").exists()


def test_a_bad_snapshot_value_in_the_config_is_refused(project: Path) -> None:
    set_cfg(project, snapshot="hardlink")
    r = run_mrl("new", cwd=project)
    assert r.returncode == 1
    assert r.stderr.startswith("mrl: error:") and "'snapshot'" in r.stderr and "'auto'" in r.stderr


def _other_filesystem() -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.stat(shm).st_dev != os.stat(tempfile.gettempdir()).st_dev:
        return Path(tempfile.mkdtemp(dir=shm, prefix="mrl-store-"))
    return None


def test_auto_copies_when_the_store_is_on_another_filesystem_and_link_refuses(project: Path) -> None:
    other = _other_filesystem()
    if other is None:
        pytest.skip("no second writable filesystem (/dev/shm) here")
    try:
        (project / OUT).mkdir(exist_ok=True)
        (project / OUT / ".mrl.objects").symlink_to(other)
        assert main(["new"]) == 0
        assert record(project, "0001")["snapshot"]["mode"] == "copy"
        set_cfg(project, snapshot="link")
        commit_all(project, "link")
        r = run_mrl("new", cwd=project)
        assert r.returncode == 1 and "another filesystem" in r.stderr and '"copy"' in r.stderr
        assert sorted(p.name for p in (project / OUT).iterdir() if not p.name.startswith(".")) == ["0001"]
    finally:
        shutil.rmtree(other)


def test_symlinks_stay_symlinks_and_submodules_empty_folders(project: Path) -> None:
    os.symlink("train.py", project / "main.py")
    os.symlink("../nowhere", project / "dangling")
    git(
        project,
        "update-index",
        "--add",
        "--cacheinfo",
        f"160000,{git(project, 'rev-parse', 'HEAD').strip()},vendor/lib",
    )
    git(project, "add", "main.py", "dangling")
    git(project, "commit", "-qm", "links and a submodule")
    (project / "vendor" / "lib").mkdir(parents=True)  # an uninitialised submodule, as after a clone
    assert main(["new"]) == 0
    c = code(project, "0001")
    assert os.readlink(c / "main.py") == "train.py" and (c / "main.py").read_text() == "print('training')\n"
    assert os.readlink(c / "dangling") == "../nowhere"
    assert (c / "vendor" / "lib").is_dir() and not any((c / "vendor" / "lib").iterdir())
    assert not list((project / OUT / ".mrl.objects").rglob("*main*"))
    assert run_mrl("info", "--verify", cwd=project).returncode == 0


def test_files_converted_by_gitattributes_get_a_private_copy_that_verifies(project: Path) -> None:
    (project / ".gitattributes").write_text("*.bat eol=crlf\n")
    (project / "run.bat").write_text("echo one\necho two\n")
    commit_all(project, "crlf")
    assert main(["new"]) == 0
    assert main(["new"]) == 0
    a, b = code(project, "0001"), code(project, "0002")
    assert (a / "run.bat").read_bytes() == b"echo one\r\necho two\r\n"
    assert inode(a / "run.bat") != inode(b / "run.bat")
    assert inode(a / "train.py") == inode(b / "train.py")
    r = run_mrl("info", "--verify", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("mode", ["link", "copy"])
def test_a_failing_required_smudge_filter_is_one_line_with_gits_reason(project: Path, mode: str) -> None:
    """git-lfs not installed, or its server gone: git printed three lines and mrl passed
    them all on, the reason (`fatal: ... smudge filter lfs failed`) last."""
    set_cfg(project, snapshot=mode)
    (project / ".gitattributes").write_text("*.bin filter=lfs\n")
    (project / "weights.bin").write_text("version https://git-lfs.github.com/spec/v1\n")
    commit_all(project, "lfs pointer")
    git(project, "config", "filter.lfs.clean", "cat")
    git(project, "config", "filter.lfs.smudge", "false")
    git(project, "config", "filter.lfs.required", "true")
    r = run_mrl("new", "x", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("mrl: error: "), r.stderr
    assert "weights.bin: smudge filter lfs failed" in r.stderr
    assert not [p for p in (project / OUT).iterdir() if p.name.isdigit()]


def test_verify_reports_each_file_changed_missing_or_added_and_exits_1(two_commits: Path) -> None:
    c = code(two_commits, "0002")
    r = run_mrl("info", "--verify", "2", cwd=two_commits)
    assert r.returncode == 0 and "0002: code/ matches commit" in r.stdout
    target = c / "pkg" / "model.py"
    os.unlink(target)  # an edit that replaced the file (as editors do)
    target.write_text("LAYERS = 5\n")
    (c / "train.py").unlink()
    (c / "notes.txt").write_text("scratch\n")
    (c / "pkg" / "__pycache__").mkdir()
    (c / "pkg" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    shutil.copyfile(c / "run.sh", c / "run.sh.new")  # same content, no executable bit
    os.replace(c / "run.sh.new", c / "run.sh")
    r = run_mrl("info", "--verify", "2", cwd=two_commits)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "changed  pkg/model.py" in lines
    assert "missing  train.py" in lines
    assert "added    notes.txt" in lines
    assert "changed  run.sh  (executable bit)" in lines
    assert "pycache" not in r.stdout
    assert "mrl: 0002: code/ differs from commit" in r.stderr and "2 changed, 1 missing, 1 added" in r.stderr
    assert run_mrl("verify", "1", cwd=two_commits).returncode == 0  # 0001 shares files, untouched


def test_verify_sees_a_write_through_a_shared_link(two_commits: Path) -> None:
    # Root ignores the read-only bit: an in-place write changes every experiment sharing
    # the file, and verify is how that is found.
    shared = code(two_commits, "0001") / "pkg" / "data.py"
    os.chmod(shared, 0o644)
    shared.write_text("DATA = 'oops'\n")
    for exp in ("1", "2"):
        r = run_mrl("verify", exp, cwd=two_commits)
        assert r.returncode == 1 and "changed  pkg/data.py" in r.stdout


def test_verify_ignores_executable_bits_when_core_filemode_is_false(two_commits: Path) -> None:
    os.chmod(code(two_commits, "0002") / "run.sh", 0o444)
    git(two_commits, "config", "core.fileMode", "false")
    r = run_mrl("info", "--verify", cwd=two_commits)
    assert r.returncode == 0, r.stdout


def test_verify_reports_a_retargeted_symlink(project: Path) -> None:
    os.symlink("train.py", project / "main.py")
    commit_all(project, "link")
    assert main(["new"]) == 0
    link = code(project, "0001") / "main.py"
    link.unlink()
    link.symlink_to("conf.lua")
    r = run_mrl("verify", cwd=project)
    assert r.returncode == 1 and "changed  main.py  (symlink target)" in r.stdout


def test_makebatch_replace_works_with_a_read_only_snapshot(project: Path) -> None:
    assert main(["new"]) == 0
    assert main(["makebatch"]) == 0
    assert main(["makebatch", "-replace"]) == 0
    assert run_mrl("verify", cwd=project).returncode == 0


def test_verify_covers_the_whole_repository_for_a_project_in_a_subfolder(git_repo: Path) -> None:
    sub = git_repo / "projA"
    sub.mkdir()
    (sub / "model.py").write_text("X = 1\n")
    commit_all(git_repo, "a project in a subfolder")
    assert run_mrl("init", cwd=sub).returncode == 0
    commit_all(git_repo, "mrl init")
    assert run_mrl("new", cwd=sub).returncode == 0
    snap = sub / OUT / "0001" / "code"
    assert (snap / "train.py").is_file() and (snap / "projA" / "model.py").is_file()
    r = run_mrl("verify", cwd=sub)
    assert r.returncode == 0, r.stdout + r.stderr
    os.unlink(snap / "train.py")
    r = run_mrl("verify", cwd=sub)
    assert r.returncode == 1 and "missing  train.py" in r.stdout


def test_a_store_file_at_the_hardlink_limit_is_replaced_by_a_fresh_copy(project: Path, tmp_path: Path) -> None:

    assert main(["new"]) == 0
    sha = git(project, "rev-parse", "HEAD:train.py").strip()
    stored = project / OUT / ".mrl.objects" / sha[:2] / sha[2:]
    links = link_to_the_limit(stored, tmp_path / "links")
    old = inode(stored)
    assert main(["new"]) == 0
    fresh = code(project, "0002") / "train.py"
    assert fresh.read_text() == "print('training')\n" and not is_writable(fresh)
    assert inode(fresh) != old and inode(stored) == inode(fresh)
    assert (code(project, "0001") / "train.py").read_text() == "print('training')\n"
    shutil.rmtree(links)


def test_a_blob_stored_by_a_concurrent_mrl_new_between_mkdir_and_link_is_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metarunlog import snapshot

    src, other = tmp_path / "mine", tmp_path / "theirs"
    src.write_text("x\n")
    other.write_text("x\n")
    key = tmp_path / "store" / "ab" / "cdef"
    key.parent.parent.mkdir()
    real_makedirs = os.makedirs

    def makedirs_then_the_other_process_stores(path: str, exist_ok: bool = False) -> None:
        real_makedirs(path, exist_ok=exist_ok)
        os.link(other, key)  # the other `mrl new`, between our mkdir and our link

    monkeypatch.setattr(os, "makedirs", makedirs_then_the_other_process_stores)
    snapshot._store(str(src), str(key))
    assert os.path.samefile(key, other) and src.read_text() == "x\n"


def test_concurrent_mrl_new_filling_one_store_all_succeed_and_verify(project: Path) -> None:
    for d in range(20):
        (project / f"d{d}").mkdir()
        for f in range(15):
            (project / f"d{d}" / f"f{f}.py").write_text(f"X = {d * 100 + f}\n")
    commit_all(project, "many files in many prefixes")
    procs = [start_mrl("new", f"p{i}", cwd=project) for i in range(6)]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert [rc for rc, _ in results] == [0] * 6, results
    for name in sorted(p.name for p in (project / OUT).iterdir() if p.name.isdigit()):
        assert run_mrl("verify", name, cwd=project).returncode == 0


def test_a_notclean_change_to_a_file_converted_by_gitattributes_is_applied_and_verifies(project: Path) -> None:
    (project / ".gitattributes").write_text("*.bat eol=crlf\n*.txt ident\n")
    (project / "run.bat").write_text("echo one\necho two\necho three\n")
    (project / "id.txt").write_text("$Id$\nfirst\n")
    commit_all(project, "converted files")
    assert main(["new", "clean"]) == 0
    (project / "run.bat").write_text("echo one\necho TWO\necho three\n")
    (project / "id.txt").write_text("$Id$\nsecond\n")
    r = run_mrl("new", "--notclean", "dirty", cwd=project)
    assert r.returncode == 0, r.stderr
    dirty = code(project, "0002")
    assert (dirty / "run.bat").read_bytes() == b"echo one\r\necho TWO\r\necho three\r\n"
    assert (dirty / "id.txt").read_text().endswith("$\nsecond\n")
    assert not is_writable(dirty / "run.bat")
    assert (code(project, "0001") / "run.bat").read_bytes() == b"echo one\r\necho two\r\necho three\r\n"
    r = run_mrl("verify", "2", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_notclean_diff_of_every_kind_leaves_a_read_only_tree_that_verifies(two_commits: Path) -> None:
    p = two_commits
    (p / "blob.bin").write_bytes(b"\x00\x01\x02\xff")
    os.symlink("train.py", p / "link.py")
    commit_all(p, "a binary file and a symlink")
    assert main(["new", "clean"]) == 0
    (p / "blob.bin").write_bytes(b"\xfe\x00changed")
    git(p, "mv", "pkg/data.py", "pkg/dataset.py")  # a rename
    (p / "pkg" / "model.py").unlink()
    (p / "pkg" / "dataset.py").unlink()  # pkg/ left empty: gone from the patched tree
    os.chmod(p / "run.sh", 0o644)  # a mode change only
    (p / "link.py").unlink()
    os.symlink("run.sh", p / "link.py")
    (p / "added.txt").write_text("staged\n")
    git(p, "add", "added.txt")
    (p / "train.py").unlink()
    (p / "train.py").mkdir()  # a file that became a folder
    (p / "train.py" / "main.py").write_text("print('main')\n")
    r = run_mrl("new", "--notclean", "-gfut", "yes", "dirty", cwd=p)
    assert r.returncode == 0, r.stderr
    clean, dirty = code(p, "0003"), code(p, "0004")
    assert (dirty / "blob.bin").read_bytes() == b"\xfe\x00changed"
    assert not (dirty / "pkg").exists()
    assert os.stat(dirty / "run.sh").st_mode & stat.S_IXUSR == 0
    assert os.readlink(dirty / "link.py") == "run.sh"
    assert (dirty / "train.py" / "main.py").read_text() == "print('main')\n"
    for f in ("blob.bin", "run.sh", "added.txt", "train.py/main.py"):
        assert not is_writable(dirty / f), f
    assert (clean / "blob.bin").read_bytes() == b"\x00\x01\x02\xff"
    assert os.stat(clean / "run.sh").st_mode & stat.S_IXUSR
    assert (clean / "pkg" / "data.py").read_text() == "DATA = 'mnist'\n"
    for n in ("3", "4"):
        r = run_mrl("verify", n, cwd=p)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("store", ["a dangling symlink", "a file"])
def test_a_store_that_is_not_a_folder_makes_auto_copy_and_link_one_error_line(project: Path, store: str) -> None:
    objects = project / OUT / ".mrl.objects"
    (project / OUT).mkdir(exist_ok=True)
    if store == "a file":
        objects.write_text("")
    else:
        objects.symlink_to(project / "scratch-that-is-gone")
    r = run_mrl("new", cwd=project)
    assert r.returncode == 0, r.stderr
    assert record(project, "0001")["snapshot"]["mode"] == "copy"
    set_cfg(project, snapshot="link")
    commit_all(project, "link")
    r = run_mrl("new", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr == (
        f"mrl: error: snapshot: link is impossible here (the store {objects} is not a folder): "
        'set "snapshot" to "auto" or "copy" in .mrl.cfg\n'
    )


@pytest.mark.parametrize("mode", ["link", "copy"])
def test_an_untracked_gitattributes_in_the_working_tree_converts_nothing_in_code(project: Path, mode: str) -> None:
    set_cfg(project, snapshot=mode)
    (project / "run.bat").write_text("echo one\necho two\n")
    commit_all(project, "a .bat file, no attributes")
    (project / ".gitattributes").write_text("*.bat eol=crlf\n")  # not committed
    r = run_mrl("new", "with the untracked attributes", cwd=project)
    assert r.returncode == 0, r.stderr
    (project / ".gitattributes").unlink()
    assert main(["new", "without"]) == 0
    for name in ("0001", "0002"):
        assert (code(project, name) / "run.bat").read_bytes() == b"echo one\necho two\n", name  # as committed
        r = run_mrl("verify", name, cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr


def test_a_commit_whose_gitattributes_are_gone_from_the_working_tree_converts_as_it_says(project: Path) -> None:
    (project / "sub").mkdir()
    (project / "sub" / ".gitattributes").write_text("*.bat eol=crlf\n")
    (project / "sub" / "run.bat").write_text("echo one\necho two\n")
    old = commit_all(project, "a .bat file converted to CRLF")
    assert main(["new", "old"]) == 0
    git(project, "rm", "-q", "sub/.gitattributes")
    commit_all(project, "no more CRLF")
    shutil.rmtree(project / OUT / ".mrl.objects")
    shutil.rmtree(code(project, "0001"))
    (project / OUT / "0001" / "code").mkdir()
    from metarunlog import snapshot

    # what `mrl reproduce 1` does: the old commit, snapshotted while HEAD lacks its attributes
    snapshot.take(project, old, code(project, "0001"), project / OUT / ".mrl.objects")
    assert (code(project, "0001") / "sub" / "run.bat").read_bytes() == b"echo one\r\necho two\r\n"
    assert main(["new", "at head"]) == 0  # must not link a CRLF copy stored under the LF blob's id
    assert (code(project, "0002") / "sub" / "run.bat").read_bytes() == b"echo one\necho two\n"
    for name in ("0001", "0002"):
        r = run_mrl("verify", name, cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr


def test_a_chmod_through_one_experiment_does_not_reach_the_next_ones(two_commits: Path) -> None:
    c1 = code(two_commits, "0001")
    os.chmod(c1 / "train.py", 0o755)  # the owner may chmod a read-only file: every link changes
    os.chmod(c1 / "pkg" / "data.py", 0o644)
    assert main(["new", "after the chmods"]) == 0
    c3 = code(two_commits, "0003")
    for f in ("train.py", "pkg/data.py"):
        assert not is_writable(c3 / f) and not os.stat(c3 / f).st_mode & stat.S_IXUSR, f
        assert inode(c3 / f) != inode(c1 / f)
    assert inode(c3 / "conf.lua") == inode(c1 / "conf.lua")  # untouched files still shared
    assert record(two_commits, "0003")["snapshot"]["stored"] == 2
    assert run_mrl("verify", "3", cwd=two_commits).returncode == 0
    assert main(["new", "again"]) == 0  # the store holds the fresh copies now
    assert inode(code(two_commits, "0004") / "train.py") == inode(c3 / "train.py")


def test_a_file_written_in_place_through_one_experiment_is_not_linked_into_the_next(two_commits: Path) -> None:
    shared = code(two_commits, "0002") / "pkg" / "data.py"
    mode = os.stat(shared).st_mode
    os.chmod(shared, mode | stat.S_IWUSR)  # what root (or an editor, after chmod u+w) does
    with open(shared, "w") as f:
        f.write("DATA = 'edited in place'\n")
    os.chmod(shared, mode)  # and the mode put back as it was
    assert main(["new", "after the edit"]) == 0
    fresh = code(two_commits, "0003") / "pkg" / "data.py"
    assert fresh.read_text() == "DATA = 'mnist'\n"  # as committed, not as edited
    assert inode(fresh) != inode(shared) and not is_writable(fresh)
    assert run_mrl("verify", "3", cwd=two_commits).returncode == 0
    r = run_mrl("verify", "1", cwd=two_commits)  # the edit itself shows where it was shared
    assert r.returncode == 1 and r.stdout == "changed  pkg/data.py\n"


def test_a_notclean_diff_that_removes_a_submodule_removes_its_empty_folder(project: Path) -> None:
    head = git(project, "rev-parse", "HEAD").strip()
    git(project, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib")
    git(project, "commit", "-qm", "a submodule")
    (project / "vendor" / "lib").mkdir(parents=True)  # an uninitialised submodule, as after a clone
    assert main(["new", "with it"]) == 0
    assert (code(project, "0001") / "vendor" / "lib").is_dir()
    git(project, "rm", "-q", "--cached", "vendor/lib")  # staged, not committed
    r = run_mrl("new", "--notclean", "without it", cwd=project)
    assert r.returncode == 0, r.stderr
    assert not (code(project, "0002") / "vendor").exists()
    assert (code(project, "0001") / "vendor" / "lib").is_dir()
    assert run_mrl("verify", "2", cwd=project).returncode == 0


def test_verify_compares_converted_files_with_gits_checkout_of_them(project: Path) -> None:
    (project / ".gitattributes").write_text("*.bat eol=crlf\n")
    for n in range(3):
        (project / f"run{n}.bat").write_text(f"echo {n}\necho again\n")
    commit_all(project, "converted files")
    assert main(["new"]) == 0
    c = code(project, "0001")
    os.unlink(c / "run0.bat")
    (c / "run0.bat").write_bytes(b"echo 0\r\necho edited\r\n")
    os.chmod(c / "run1.bat", 0o555)
    os.unlink(c / "run2.bat")
    (c / "run2.bat").write_bytes(b"echo 2\necho again\n")  # the blob's own bytes: what the commit holds
    r = run_mrl("verify", cwd=project)
    assert r.returncode == 1
    assert r.stdout == "changed  run0.bat\nchanged  run1.bat  (executable bit)\n"


def test_the_hardlink_probe_never_removes_another_processes_probe(tmp_path: Path) -> None:
    """Two hosts sharing a store over NFS can run `mrl new` with the same pid at once: a
    probe named by the pid alone was the other's too, and its cleanup removed the other's
    probe under it (whose own link then failed). Each probe is its own file."""
    from metarunlog import snapshot

    store, dest = tmp_path / "store", tmp_path / "exp"
    store.mkdir()
    dest.mkdir()
    theirs = store / f".probe.{os.getpid()}"
    theirs.write_text("another host's probe")
    assert snapshot._cannot_link(store, dest, "ours") is None
    assert theirs.read_text() == "another host's probe"
    assert sorted(p.name for p in store.iterdir()) == [theirs.name]  # ours is gone
    assert list(dest.iterdir()) == []


@pytest.fixture
def lfs_project(project: Path) -> Path:
    """`project` with model.bin tracked by a real git-lfs (configured in the repository only)."""
    if shutil.which("git-lfs") is None:
        pytest.skip("git-lfs is not installed")
    git(project, "lfs", "install", "--local")
    git(project, "lfs", "track", "*.bin")
    (project / "model.bin").write_bytes(bytes(range(256)) * 8)
    # an hour old: not "racily clean" in the index, so no `git status` runs the clean
    # filter on it again (which would store its object anew)
    past = os.stat(project / "model.bin").st_mtime - 3600
    os.utime(project / "model.bin", (past, past))
    commit_all(project, "an lfs file")
    return project


def _record(project: Path, made: subprocess.CompletedProcess[str]) -> dict:
    return json.loads((Path(made.stdout.splitlines()[-1]) / ".mrl").read_text())  # type: ignore[no-any-return]


def test_a_git_lfs_file_is_its_content_in_code_when_its_object_is_here(lfs_project: Path) -> None:
    made = run_mrl("new", "-cp", "no", "x", cwd=lfs_project)
    assert made.returncode == 0 and made.stderr == "", made.stderr
    assert (Path(made.stdout.splitlines()[-1]) / "code" / "model.bin").read_bytes() == bytes(range(256)) * 8
    assert "lfsPointers" not in _record(lfs_project, made)["snapshot"]
    assert run_mrl("verify", cwd=lfs_project).returncode == 0


def test_a_git_lfs_file_snapshot_as_its_pointer_is_said_and_recorded(lfs_project: Path) -> None:
    # GIT_LFS_SKIP_SMUDGE (or objects never fetched): code/ held the pointer file where the
    # code expects a model, and nothing said so
    made = run_mrl("new", "-cp", "no", "x", cwd=lfs_project, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert made.returncode == 0, made.stderr
    assert made.stderr == (
        "mrl: warning: 1 git-lfs file(s) are pointer files in code/, not their content (their objects are not "
        "fetched, or GIT_LFS_SKIP_SMUDGE is set): model.bin; run `git lfs pull` and make a new experiment to pin "
        "the content (the record lists them: snapshot.lfsPointers)\n"
    )
    pointer = Path(made.stdout.splitlines()[-1]) / "code" / "model.bin"
    assert pointer.read_bytes().startswith(b"version https://git-lfs.github.com/spec/v1\n")
    assert _record(lfs_project, made)["snapshot"]["lfsPointers"] == ["model.bin"]


def test_a_git_lfs_object_missing_is_one_line_saying_to_pull_it(lfs_project: Path, tmp_path: Path) -> None:
    objects = Path(git(lfs_project, "rev-parse", "--git-path", "lfs/objects").strip())
    shutil.move(lfs_project / objects, tmp_path / "lfs-objects")  # as in a clone that never fetched them
    made = run_mrl("new", "-cp", "no", "x", cwd=lfs_project)
    assert made.returncode == 1 and made.stderr.count("\n") == 1 and "Traceback" not in made.stderr
    assert made.stderr.startswith("mrl: error: git checkout-index failed in ")
    assert "fatal: model.bin: smudge filter lfs failed (git printed " in made.stderr
    assert made.stderr.endswith(
        " more line(s)); its object is not in this repository and could not be downloaded: run `git lfs pull`, "
        "or set GIT_LFS_SKIP_SMUDGE=1 to snapshot the pointer files instead\n"
    )
    assert not [p for p in (lfs_project / OUT).iterdir() if p.name.isdigit()]


def test_a_file_copied_over_in_place_keeping_a_whole_second_time_is_not_linked_into_the_next(
    two_commits: Path,
) -> None:
    # `cp -p` from a tar's file (or `tar -x` over code/, `touch -d @T`) writes in place and
    # leaves a whole-second time: that was the store's own mark, so the edit was linked into
    # every later experiment
    shared = code(two_commits, "0002") / "pkg" / "data.py"
    mode, mtime = os.stat(shared).st_mode, os.stat(shared).st_mtime_ns
    os.chmod(shared, mode | stat.S_IWUSR)
    with open(shared, "w") as f:
        f.write("DATA = 'from the tar'\n")
    os.chmod(shared, mode)
    os.utime(shared, ns=(mtime, mtime - mtime % 1_000_000_000 - 5_000_000_000))
    assert main(["new", "after the copy"]) == 0
    fresh = code(two_commits, "0003") / "pkg" / "data.py"
    assert fresh.read_text() == "DATA = 'mnist'\n"
    assert inode(fresh) != inode(shared)
    assert run_mrl("verify", "3", cwd=two_commits).returncode == 0
    assert main(["new", "again"]) == 0  # the fresh copy is stored, and linked from now on
    assert inode(code(two_commits, "0004") / "pkg" / "data.py") == inode(fresh)
