"""Git facts (head, describe, dirty files) and a snapshot of the tree at a commit.

Plain `git` subprocesses: they start faster than GitPython and need nothing installed.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarunlog.errors import MrlError


@dataclass(frozen=True)
class Head:
    sha: str
    description: str  # `git log -1 --format=%s`: the subject of the commit
    describe: str  # `git describe --always --dirty`
    branch: str | None


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="surrogateescape",  # paths are bytes: a non-UTF-8 name decodes as os.fsdecode does
            env=env,
        )
    except FileNotFoundError as e:
        raise MrlError("git is not installed: install git and try again") from e
    if proc.returncode != 0:
        _refused(proc.stderr, cwd)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise MrlError(f"git {_command(args)} failed in {cwd}: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


def _command(args: tuple[str, ...]) -> str:
    """The git command in `args`, past `-c key=value` options (`checkout-index`, not `-c`)."""
    i = 0
    while i < len(args) and args[i] == "-c":
        i += 2
    return args[i] if i < len(args) else "git"


def _refused(stderr: str, cwd: Path) -> None:
    """git refusing a repository it does not trust (owned by another user: a colleague's
    or root's checkout) answers every question with an error; read as "no commit" or "no
    such commit" that would be a lie, so it is an error of its own, with git's fix."""
    if "dubious ownership" in stderr:
        raise MrlError(
            f"git refuses the repository at {cwd}: detected dubious ownership (it belongs to another user); "
            f"if you trust it: git config --global --add safe.directory {cwd}"
        )


def toplevel(path: Path) -> Path | None:
    """The top-level directory of the git work tree containing `path`, or None."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True, errors="surrogateescape"
        )
    except FileNotFoundError as e:
        raise MrlError("git is not installed: install git and try again") from e
    if proc.returncode != 0:
        _refused(proc.stderr, path)
        return None
    return Path(proc.stdout.strip())


def head(repo: Path) -> Head:
    out = _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    if not out:
        raise MrlError(f"the git repository {repo} has no commit yet: commit your code first")
    subject = _git(repo, "log", "-1", "--format=%s", out).strip()
    describe = _git(repo, "describe", "--always", "--dirty", "--tags").strip()
    branch = _git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip() or None
    return Head(sha=out, description=subject, describe=describe, branch=branch)


def dirty_files(repo: Path, untracked: bool) -> list[str]:
    """Paths with uncommitted changes (`git status --porcelain`), untracked ones if asked."""
    out = _git(repo, "status", "--porcelain=v1", "-z", f"--untracked-files={'normal' if untracked else 'no'}")
    entries = [e for e in out.split("\0") if e]
    files: list[str] = []
    skip_next = False
    for e in entries:
        if skip_next:  # the source path of a rename
            skip_next = False
            continue
        status, path = e[:2], e[3:]
        if status[0] in "RC":
            skip_next = True
        files.append(f"{status.strip() or '?'} {path}")
    return files


# git needs its throwaway index (and a patch's blobs) at a path, so mrl makes a temp folder
# for them; a `kill -9` leaves it behind. Its name says whose it is: `mrl-index-PID-TICKS-
# BOOT-PIDNS-XXXXXXXX` (the maker's pid, its start time in clock ticks, the boot id and pid
# namespace both are counted in, tempfile's random tail), and the first one an mrl makes
# removes the ones of makers provably dead. Only a folder of this user's whose boot id and
# pid namespace are this process's is judged: the pid and start time then name one process
# for sure, alive or not (a pid reused has a later start). Another machine's (a /tmp shared
# over NFS), another container's, an earlier boot's, or an older mrl's (no owner in the
# name) is left alone: mrl cannot prove it dead.
TEMP_PREFIX = "mrl-index-"
_TEMP_NAME = re.compile(r"mrl-index-(\d+)-(\d+)-([0-9a-f]{32})-(\d+)-[a-z0-9_]{8}")


def _owner_tag() -> str | None:
    """This process as temp folder names say it, "PID-TICKS-BOOT-PIDNS"; None where any part
    is unknowable (no /proc)."""
    return _tag_of(os.getpid())  # by pid: a forked child is another owner


@functools.lru_cache(maxsize=4)
def _tag_of(pid: int) -> str | None:
    from metarunlog import procs

    start = procs.start_id(pid)
    try:
        pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None
    boot, _, ticks = (start or "").replace("-", "").partition(":")
    return f"{pid}-{ticks}-{boot}-{pidns}" if re.fullmatch(r"[0-9a-f]{32}", boot) and ticks.isdigit() else None


@contextmanager
def temp_folder() -> Iterator[Path]:
    """A private temp folder (removed on exit) named by its owner (see TEMP_PREFIX), after
    removing the ones of dead owners (once per process)."""
    tag = _owner_tag()
    if tag is not None:
        remove_dead_temps(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{tag}-" if tag else TEMP_PREFIX) as tmp:
        yield Path(tmp)


@functools.lru_cache(maxsize=1)
def remove_dead_temps(folder: Path) -> list[str]:
    """Remove the temp folders in `folder` whose maker is provably dead (see TEMP_PREFIX);
    their names."""
    tag = _owner_tag()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return []
    removed = []
    for name in names:
        if tag is not None and _dead_owner(name, tag) and _ours(folder / name):
            shutil.rmtree(folder / name, ignore_errors=True)
            removed.append(name)
    return removed


def _dead_owner(name: str, tag: str) -> bool:
    m = _TEMP_NAME.fullmatch(name)
    _, _, boot, pidns = tag.split("-")
    if m is None or (m[3], m[4]) != (boot, pidns):
        return False  # not judged: another machine's, container's or boot's, or an older mrl's
    from metarunlog import procs

    pid = int(m[1])
    if not procs.pid_alive(pid):
        return True
    start = procs.start_id(pid)  # None: a live pid whose start cannot be read is not proven another
    return start is not None and start.replace("-", "") != f"{boot}:{m[2]}"


def _ours(path: Path) -> bool:
    """A folder (not a symlink to one) of this user's."""
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def diff_against_head(repo: Path, untracked: bool) -> bytes:
    """`git diff --binary HEAD`, plus untracked files when asked (via a throwaway index)."""
    if not untracked:
        return _git_bytes(repo, ["diff", "--binary", "HEAD"])
    git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir").strip())
    with temp_folder() as tmp:
        index = tmp / "index"
        if (git_dir / "index").exists():
            shutil.copy2(git_dir / "index", index)
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        _git(repo, "add", "-A", env=env)
        return _git_bytes(repo, ["diff", "--binary", "--cached", "HEAD"], env=env)


def _git_bytes(repo: Path, args: list[str], env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, env=env)
    if proc.returncode != 0:
        raise MrlError(f"git {args[0]} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


GITLINK, SYMLINK, EXECUTABLE = "160000", "120000", "100755"


@dataclass(frozen=True)
class TreeEntry:
    """One entry of `git ls-tree -r`: a file, an executable, a symlink or a gitlink."""

    mode: str  # "100644", "100755", "120000" (symlink) or "160000" (gitlink: a submodule)
    sha: str  # the blob id (for a gitlink: the submodule's commit)
    path: str  # relative to the tree's root, os.fsdecode-d (odd bytes survive)


def ls_tree(repo: Path, commit: str) -> list[TreeEntry]:
    """Every entry of the tree of `commit`, recursively (`git ls-tree -r -z --full-tree`)."""
    out = _git_bytes(repo, ["ls-tree", "-r", "-z", "--full-tree", commit])
    return _entries(out, sha_field=2)


def _entries(out: bytes, sha_field: int) -> list[TreeEntry]:
    entries = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        fields = meta.split(b" ")
        entries.append(TreeEntry(fields[0].decode(), fields[sha_field].decode(), os.fsdecode(path)))
    return entries


def index_entries(repo: Path, env: dict[str, str]) -> list[TreeEntry]:
    """The entries of the index `env` names (`git ls-files -s`), as `ls_tree` gives them."""
    return _entries(_git_bytes(repo, ["ls-files", "-s", "-z"], env=env), sha_field=1)


@contextmanager
def tree_index(repo: Path, commit: str, diff_file: Path | None = None) -> Iterator[dict[str, str]]:
    """The environment of a throwaway index holding `commit` (plus a `git diff --binary`
    patch), for git's checkout, attributes and hashing of code/.

    Its work tree is an empty folder: gitattributes then come from the tree itself (git
    falls back to the index), never from the user's working tree, whose uncommitted or
    untracked .gitattributes would convert files the commit does not (and a converted file
    stored under its blob id would be linked into every later experiment). A patch's new
    blobs live in the temporary folder too (the repository's objects are only read, as an
    alternate): nothing is written to the repository."""
    with temp_folder() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "index"), "GIT_WORK_TREE": str(tmp / "tree")}
        (tmp / "tree").mkdir()
        if diff_file is not None:
            objects = _git(repo, "rev-parse", "--git-path", "objects").strip()
            env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str((repo / objects).resolve())
            env["GIT_OBJECT_DIRECTORY"] = str(tmp / "objects")
            (tmp / "objects").mkdir()
        _git(repo, "read-tree", commit, env=env)
        if diff_file is not None and diff_file.stat().st_size:
            _apply_cached(repo, commit, diff_file, env)
        yield env


def _apply_cached(repo: Path, commit: str, diff_file: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["git", "apply", "--cached", "--whitespace=nowarn", str(diff_file.resolve())],
        cwd=repo,
        capture_output=True,
        env=env,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise MrlError(f"could not apply {diff_file} to commit {commit[:10]}: {err}")


@dataclass(frozen=True)
class PatchChanges:
    """What a patch does to the tree of a commit: the paths it deletes, the entries it writes."""

    deleted: list[str]
    written: list[TreeEntry]


def checkout_with_diff(repo: Path, commit: str, diff_file: Path, dest: Path) -> PatchChanges:
    """Make `dest`, a checkout of `commit`, the checkout of `commit` plus the patch: each
    path the patch deletes or writes is removed first (unlinked: a hardlinked file's other
    names keep the old content), then git writes the new versions. git's checkout, not
    `git apply` in the folder: a file whose checkout is converted (eol=crlf, ident, a
    filter) holds no longer the text the patch's context lines quote."""
    with tree_index(repo, commit, diff_file) as env:
        out = _git_bytes(repo, ["diff-index", "--cached", "--no-renames", "-z", commit], env=env)
        changes = _index_changes(out)
        for path in [*changes.deleted, *(e.path for e in changes.written)]:
            _remove_file(dest / path)
        _prune_empty_parents(dest, changes.deleted)
        for e in changes.written:
            if e.mode == GITLINK:  # a submodule: an empty folder, as in a fresh clone
                (dest / e.path).mkdir(parents=True, exist_ok=True)
        checkout_index(repo, dest, [e.path for e in changes.written if e.mode != GITLINK], env)
    return changes


def _index_changes(out: bytes) -> PatchChanges:
    """`git diff-index -z` records (`:old new oldsha newsha STATUS\0path\0`), renames off."""
    fields = out.split(b"\0")
    deleted, written = [], []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta:
            continue
        _, new_mode, _, new_sha, status = meta.decode().split(" ")
        if status == "D":
            deleted.append(os.fsdecode(path))
        else:
            written.append(TreeEntry(new_mode, new_sha, os.fsdecode(path)))
    return PatchChanges(deleted, written)


def _remove_file(path: Path) -> None:
    """Unlink a file or symlink; a submodule's empty folder goes too (a deleted gitlink)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def _prune_empty_parents(dest: Path, paths: list[str]) -> None:
    """Remove the folders a deletion left empty, as a checkout of the patched tree has none."""
    for path in paths:
        parent = (dest / path).parent
        while parent != dest:
            try:
                parent.rmdir()
            except OSError:  # not empty (or already gone)
                break
            parent = parent.parent


def checkout(repo: Path, commit: str, dest: Path, paths: list[str] | None = None) -> None:
    """Write the tree of `commit` (or just `paths` of it) into `dest`, which must exist.

    A throwaway index plus `git checkout-index` writes the files straight from the object
    store, in parallel where git allows; bench/bench_core.py measures it against
    `git archive | tar -x`. The result is plain files: no .git, no link back to the repo.
    """
    if paths is not None and not paths:
        return
    with tree_index(repo, commit) as env:
        checkout_index(repo, dest, paths, env)


# core.symlinks=true: a symlink of the commit is a symlink in code/ and in every checkout mrl
# makes, even where the repository says core.symlinks=false (a clone made on Windows, or
# copied off a FAT drive), whose checkout writes it as a small file holding the link's target:
# code/ is the commit's tree, so its code runs as the commit has it, and verify compares the
# link as a link.
_CHECKOUT_INDEX = (
    "-c",
    "checkout.workers=0",
    "-c",
    "core.autocrlf=false",
    "-c",
    "core.symlinks=true",
    "checkout-index",
    "-f",
)


def checkout_index(repo: Path, dest: Path, paths: list[str] | None, env: dict[str, str]) -> None:
    """`git checkout-index` of `paths` (None: all) of the index `env` names (`tree_index`)
    into `dest`."""
    if paths is not None and not paths:
        return
    args = ["git", *_CHECKOUT_INDEX, f"--prefix={dest}{os.sep}"]
    if paths is None:
        proc = subprocess.run([*args, "-a"], cwd=repo, capture_output=True, env=env)
    else:
        stdin = b"\0".join(os.fsencode(p) for p in paths) + b"\0"
        proc = subprocess.run([*args, "-z", "--stdin"], cwd=repo, input=stdin, capture_output=True, env=env)
    if proc.returncode != 0:
        raise _checkout_failed(repo, dest, proc.stderr.decode(errors="replace").strip(), env)


def _checkout_failed(repo: Path, dest: Path, err: str, env: dict[str, str]) -> MrlError:
    """git says only "unable to write file X" when a write(2) fails, and removes X: a file
    larger than the space left is said to be a full disk. A filesystem out of inodes
    (many small files, bytes to spare) makes git print one line per file it could not
    open: that is said once too, and any other failure is git's fatal (else first) line and a count."""
    st = os.statvfs(dest)
    if st.f_files and st.f_favail == 0:
        return MrlError(
            f"no space left on device: no free inodes (file entries) on the filesystem of {dest}, "
            "though bytes may be free (free some files there, or use a filesystem with more inodes, and rerun)"
        )
    m = re.search(r"unable to write file '(.+)'", err)
    if m:
        free = st.f_bavail * st.f_frsize
        size = _git(repo, "cat-file", "-s", f":{os.path.relpath(m[1], dest)}", env=env, check=False).strip()
        if size.isdigit() and int(size) > free:
            return MrlError(
                f"no space left on device: {m[1]} needs {int(size):,} bytes, {free:,} are free "
                "(free some disk space and rerun)"
            )
    lines = err.splitlines() or [""]
    main = next((line for line in reversed(lines) if line.startswith("fatal:")), lines[0])
    more = f" (git printed {len(lines) - 1} more line(s))" if len(lines) > 1 else ""
    return MrlError(f"git checkout-index failed in {repo}: {main}{more}{_lfs_hint(main, err)}")


def _lfs_hint(main: str, err: str) -> str:
    """What to do when git-lfs could not write a file's content: its object is neither in
    the repository nor downloadable (not fetched, no remote), or git-lfs is missing."""
    if not main.endswith("smudge filter lfs failed"):
        return ""
    if "Error downloading object" in err:
        why = "its object is not in this repository and could not be downloaded: run `git lfs pull`"
    else:
        why = "is git-lfs installed (`git lfs install`)?"
    return f"; {why}, or set GIT_LFS_SKIP_SMUDGE=1 to snapshot the pointer files instead"


_CONVERSION_ATTRS = ("filter", "ident", "working-tree-encoding", "eol", "text")


def converted_paths(repo: Path, entries: list[TreeEntry], env: dict[str, str]) -> set[str]:
    """Paths of `entries` (the tree in the `tree_index` that `env` names) whose checked-out
    content is not the blob itself: a smudge filter (git-lfs), `ident`,
    `working-tree-encoding`, or CRLF line endings from `.gitattributes`. They get a private
    copy in a snapshot (their content is not what the blob id names) and are verified
    against what git's checkout writes for them."""
    if not _has_attributes(repo, entries):
        return set()
    paths = [e.path for e in entries if e.mode not in (GITLINK, SYMLINK)]
    stdin = b"".join(os.fsencode(p) + b"\0" for p in paths)
    proc = subprocess.run(
        ["git", "check-attr", "-z", "--stdin", *_CONVERSION_ATTRS], cwd=repo, input=stdin, capture_output=True, env=env
    )
    if proc.returncode != 0:
        raise MrlError(f"git check-attr failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    crlf = _git(repo, "config", "core.eol", check=False).strip() == "crlf"
    attrs: dict[str, dict[str, str]] = {}
    fields = proc.stdout.split(b"\0")
    for i in range(0, len(fields) - 2, 3):
        attrs.setdefault(os.fsdecode(fields[i]), {})[fields[i + 1].decode()] = fields[i + 2].decode()
    return {path for path, a in attrs.items() if _converts(a, crlf)}


def _converts(a: dict[str, str], crlf_default: bool) -> bool:
    unset = ("unspecified", "unset")
    if any(a.get(k, "unspecified") not in unset for k in ("filter", "ident", "working-tree-encoding")):
        return True
    if a.get("eol") == "crlf":
        return True
    return crlf_default and a.get("text", "unspecified") not in unset


def _has_attributes(repo: Path, entries: list[TreeEntry]) -> bool:
    """Whether any gitattributes can apply (the tree's own, info/attributes, the user's)."""
    if any(e.path == ".gitattributes" or e.path.endswith("/.gitattributes") for e in entries):
        return True
    if (repo / _git(repo, "rev-parse", "--git-path", "info/attributes").strip()).is_file():
        return True
    user = _git(repo, "config", "--path", "core.attributesFile", check=False).strip()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "git" / "attributes"
    return bool(user and Path(user).is_file()) or xdg.is_file()


def file_mode_honoured(repo: Path) -> bool:
    """git's `core.fileMode`: false where the filesystem cannot keep executable bits."""
    return _git(repo, "config", "--bool", "core.fileMode", check=False).strip() != "false"


def _object_hash(like: str) -> Any:
    """The hash a repository names objects with, told by one of its ids: SHA-1 (40 hex
    digits), or SHA-256 (64) in a repository made with `git init --object-format=sha256`."""
    import hashlib

    return hashlib.sha256 if len(like) == 64 else hashlib.sha1


def blob_id(data: bytes, like: str = "") -> str:
    """The git blob id of `data` (`git hash-object --no-filters` semantics), with the hash
    of the repository whose id `like` is (SHA-1 by default)."""
    return _object_hash(like)(b"blob %d\0" % len(data) + data).hexdigest()


def file_blob_id(path: str, like: str = "") -> str:
    """The git blob id of the file at `path`, read in chunks (the hash as for `blob_id`)."""
    size = os.stat(path).st_size
    h = _object_hash(like)(b"blob %d\0" % size)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def has_commit(repo: Path, commit: str) -> bool:
    return bool(_git(repo, "rev-parse", "--verify", "-q", f"{commit}^{{commit}}", check=False).strip())


def changed_files(repo: Path, a: str, b: str) -> list[tuple[str, str]]:
    """(status letter, path) of each file that differs between commits `a` and `b` (renames as A/D)."""
    out = _git(repo, "diff", "--no-renames", "--name-status", "-z", a, b)
    parts = out.split("\0")
    return [(parts[i][:1], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]]


def diff_text(repo: Path, a: str, b: str) -> str:
    """The full `git diff a b` (what `mrl diff --code` prints)."""
    return _git(repo, "diff", a, b)


def rev_parse(repo: Path, ref: str = "HEAD") -> str | None:
    """The commit `ref` names, or None (no such commit, no commit yet)."""
    return _git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).strip() or None


def count_commits(repo: Path, since: str, until: str) -> int:
    """`git rev-list --count since..until`: commits in `until` that `since` lacks."""
    return int(_git(repo, "rev-list", "--count", f"{since}..{until}").strip() or 0)


def blob(repo: Path, commit: str, path: str) -> bytes | None:
    """The content of file `path` (relative to the repository's top) at `commit`, or None
    when the commit has no such file."""
    proc = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=repo, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None
