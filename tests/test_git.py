"""metarunlog/git.py: git facts and tree snapshots, against real repositories in temp dirs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from metarunlog import git as mgit
from metarunlog.errors import MrlError
from tests.helpers.repo import commit_all, git


def test_head_gives_the_commit_its_subject_describe_and_branch(git_repo: Path) -> None:
    sha = git(git_repo, "rev-parse", "HEAD").strip()
    h = mgit.head(git_repo)
    assert (h.sha, h.description, h.branch) == (sha, "initial", "main")
    assert h.describe == sha[:7] or sha.startswith(h.describe)
    git(git_repo, "tag", "v1")
    (git_repo / "train.py").write_text("changed\n")
    assert mgit.head(git_repo).describe == "v1-dirty"


def test_head_of_a_detached_checkout_has_no_branch(git_repo: Path) -> None:
    git(git_repo, "checkout", "-q", "--detach")
    assert mgit.head(git_repo).branch is None


def test_head_of_a_repository_without_a_commit_says_to_commit_first(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(MrlError, match="has no commit yet: commit your code first"):
        mgit.head(tmp_path)


def test_toplevel_is_the_work_trees_top_from_a_subfolder_and_none_outside(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (git_repo / "a" / "b").mkdir(parents=True)
    assert mgit.toplevel(git_repo / "a" / "b") == git_repo
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # whatever holds the temp dir
    assert mgit.toplevel(outside) is None


def test_dirty_files_lists_changes_and_untracked_files_only_when_asked(git_repo: Path) -> None:
    (git_repo / "train.py").write_text("changed\n")
    (git_repo / "new file.txt").write_text("x")
    git(git_repo, "mv", "conf.lua", "renamed.lua")
    assert mgit.dirty_files(git_repo, untracked=False) == ["R renamed.lua", "M train.py"]
    assert mgit.dirty_files(git_repo, untracked=True) == ["R renamed.lua", "M train.py", "?? new file.txt"]


def test_a_clean_tree_has_no_dirty_files(git_repo: Path) -> None:
    assert mgit.dirty_files(git_repo, untracked=True) == []


def test_diff_against_head_with_untracked_files_leaves_the_index_alone(git_repo: Path) -> None:
    (git_repo / "train.py").write_text("changed\n")
    (git_repo / "extra.py").write_text("print('new')\n")
    assert b"extra.py" not in mgit.diff_against_head(git_repo, untracked=False)
    patch = mgit.diff_against_head(git_repo, untracked=True)
    assert b"+++ b/extra.py" in patch and b"+++ b/train.py" in patch
    assert git(git_repo, "status", "--porcelain") == " M train.py\n?? extra.py\n"  # nothing staged


def test_a_patch_applies_to_a_plain_folder_outside_the_repository(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "train.py").write_text("changed\n")
    (git_repo / "extra.py").write_text("print('new')\n")
    diff = tmp_path / "d.diff"
    diff.write_bytes(mgit.diff_against_head(git_repo, untracked=True))
    dest = tmp_path / "snap" / "code"
    dest.mkdir(parents=True)
    mgit.checkout(git_repo, "HEAD", dest)
    changes = mgit.checkout_with_diff(git_repo, "HEAD", diff, dest)
    assert sorted(e.path for e in changes.written) == ["extra.py", "train.py"] and changes.deleted == []
    assert (dest / "train.py").read_text() == "changed\n"
    assert (dest / "extra.py").read_text() == "print('new')\n"
    assert git(git_repo, "status", "--porcelain") == " M train.py\n?? extra.py\n"  # nothing staged


def test_a_patch_that_does_not_apply_is_a_user_error_naming_it(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "train.py").write_text("changed\n")
    diff = tmp_path / "d.diff"
    diff.write_bytes(mgit.diff_against_head(git_repo, untracked=False))
    (git_repo / "train.py").write_text("something else\n")
    other = commit_all(git_repo, "train.py no longer as the patch expects")
    dest = tmp_path / "snap"
    dest.mkdir()
    with pytest.raises(MrlError, match=f"could not apply {diff} to commit {other[:10]}"):
        mgit.checkout_with_diff(git_repo, other, diff, dest)


def test_checkout_writes_plain_files_with_their_modes_and_links(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "run.sh").write_text("#!/bin/sh\n")
    (git_repo / "run.sh").chmod(0o755)
    os.symlink("train.py", git_repo / "link.py")
    (git_repo / "pkg").mkdir()
    (git_repo / "pkg" / "m.py").write_text("x = 1\n")
    commit = commit_all(git_repo, "more")
    (git_repo / "train.py").write_text("not committed\n")
    dest = tmp_path / "code"
    dest.mkdir()
    mgit.checkout(git_repo, commit, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["conf.lua", "link.py", "pkg", "run.sh", "train.py"]
    assert (dest / "train.py").read_text() == "print('training')\n"
    assert os.access(dest / "run.sh", os.X_OK) and not os.access(dest / "train.py", os.X_OK)
    assert os.readlink(dest / "link.py") == "train.py"
    modes = {e.path: e.mode for e in mgit.ls_tree(git_repo, commit)}
    assert modes == {
        "conf.lua": "100644",
        "link.py": mgit.SYMLINK,
        "pkg/m.py": "100644",
        "run.sh": mgit.EXECUTABLE,
        "train.py": "100644",
    }


def test_checkout_of_some_paths_writes_only_those(git_repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "code"
    dest.mkdir()
    mgit.checkout(git_repo, "HEAD", dest, ["conf.lua"])
    assert [p.name for p in dest.iterdir()] == ["conf.lua"]
    mgit.checkout(git_repo, "HEAD", dest, [])
    assert [p.name for p in dest.iterdir()] == ["conf.lua"]


def test_blob_ids_are_the_ids_git_stores(git_repo: Path, tmp_path: Path) -> None:
    data = b"some bytes\n\x00\xff"
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    expected = subprocess.run(
        ["git", "hash-object", "--no-filters", str(f)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert mgit.blob_id(data) == expected == mgit.file_blob_id(str(f))
    by_tree = {e.path: e.sha for e in mgit.ls_tree(git_repo, "HEAD")}
    assert mgit.file_blob_id(str(git_repo / "train.py")) == by_tree["train.py"]


def test_a_tree_index_with_a_patch_is_the_commit_plus_the_patch_without_writing_to_the_repository(
    git_repo: Path, tmp_path: Path
) -> None:
    (git_repo / "extra.py").write_text("print('new')\n")
    diff = tmp_path / "d.diff"
    diff.write_bytes(mgit.diff_against_head(git_repo, untracked=True))
    objects_before = sorted(p.name for p in (git_repo / ".git" / "objects").rglob("*"))
    with mgit.tree_index(git_repo, "HEAD", diff) as env:
        entries = {e.path: e.sha for e in mgit.index_entries(git_repo, env)}
    assert entries["extra.py"] == mgit.blob_id(b"print('new')\n")
    assert set(entries) == {"conf.lua", "extra.py", "train.py"}
    assert sorted(p.name for p in (git_repo / ".git" / "objects").rglob("*")) == objects_before
    empty = tmp_path / "empty.diff"
    empty.write_bytes(b"")
    with mgit.tree_index(git_repo, "HEAD", empty) as env:
        assert {e.path for e in mgit.index_entries(git_repo, env)} == {"conf.lua", "train.py"}


def converted_at(repo: Path, commit: str) -> set[str]:
    with mgit.tree_index(repo, commit) as env:
        return mgit.converted_paths(repo, mgit.ls_tree(repo, commit), env)


def test_converted_paths_are_the_files_whose_attributes_change_their_content(git_repo: Path) -> None:
    first = git(git_repo, "rev-parse", "HEAD").strip()
    assert converted_at(git_repo, first) == set()
    (git_repo / ".gitattributes").write_text("*.lua eol=crlf\n*.bin filter=lfs\n")
    (git_repo / "w.bin").write_bytes(b"\0")
    commit = commit_all(git_repo, "attributes")
    assert converted_at(git_repo, commit) == {"conf.lua", "w.bin"}
    assert converted_at(git_repo, first) == set()  # the commit's attributes, not the working tree's


def test_commits_are_compared_by_files_counted_and_read(git_repo: Path) -> None:
    first = git(git_repo, "rev-parse", "HEAD").strip()
    (git_repo / "train.py").write_text("v2\n")
    (git_repo / "conf.lua").unlink()
    (git_repo / "new.py").write_text("n\n")
    second = commit_all(git_repo, "second")
    assert mgit.changed_files(git_repo, first, second) == [("D", "conf.lua"), ("A", "new.py"), ("M", "train.py")]
    assert "+v2" in mgit.diff_text(git_repo, first, second)
    assert mgit.count_commits(git_repo, first, second) == 1
    assert mgit.count_commits(git_repo, second, first) == 0
    assert mgit.blob(git_repo, first, "train.py") == b"print('training')\n"
    assert mgit.blob(git_repo, second, "conf.lua") is None


def test_unknown_commits_are_none_or_false_not_errors(git_repo: Path) -> None:
    assert mgit.rev_parse(git_repo) == git(git_repo, "rev-parse", "HEAD").strip()
    assert mgit.rev_parse(git_repo, "0" * 40) is None
    assert not mgit.has_commit(git_repo, "deadbeef" * 5)
    assert mgit.has_commit(git_repo, "HEAD")
    assert mgit.file_mode_honoured(git_repo)


def test_a_failing_git_command_is_a_user_error_naming_the_command_and_folder(git_repo: Path) -> None:
    with pytest.raises(MrlError, match=rf"git rev-list failed in {git_repo}: "):
        mgit.count_commits(git_repo, "nope", "HEAD")
