"""Code snapshots: the tree of a commit as a plain, read-only folder, each file stored once.

`mrl new` writes the tracked tree of HEAD into `EXPDIR/code/`. Consecutive commits share
almost every file, so with `snapshot: link` (or `auto` on one filesystem) each file's
content lives once in `OUTDIR/.mrl.objects/<2 hex>/<38 hex>[.x]`, named by its git blob id
(`.x`: the executable copy), and `code/` holds hardlinks to it. Hardlinks keep `code/` a
plain folder: it runs without mrl, deleting an experiment (or the store) breaks no other,
and a copy or rsync of the folder elsewhere holds real files.

Snapshot files are read-only (directories stay writable, so `rm -rf`, `.trash` moves and
pytest's tmp cleanup work). Symlinks stay symlinks and gitlinks (submodules) empty folders,
neither in the store; files whose checkout is converted by gitattributes (git-lfs, CRLF)
get a private copy. A `--notclean` diff writes each file it patches as a new private file
(copy-on-write), so other experiments' links never change.
`verify` re-hashes `code/` against the commit (plus `.mrl.diff`).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import git
from metarunlog.errors import MrlError
from metarunlog.git import EXECUTABLE, GITLINK, SYMLINK, TreeEntry

STORE = ".mrl.objects"
TEMP = ".tmp"  # a store file being replaced: KEY.<writer's token>.tmp, renamed over KEY
MODES = ("copy", "link", "auto")
# Derived files a run leaves in code/ (python imports write them next to the sources).
IGNORED_DIRS = ("__pycache__",)
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS)
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass
class Snapshot:
    """What `take` did: the mode used ("link" or "copy") and how many files went where."""

    mode: str
    files: int  # regular files written (symlinks and gitlinks not counted)
    linked: int = 0  # of them, hardlinks to a file already in the store (or stored at another path of this tree)
    stored: int = 0  # files added to the store by this snapshot
    submodules: list[str] = field(default_factory=list)  # gitlinks: empty folders in code/
    # git-lfs files written as their pointer file, not their content (objects not fetched, or
    # GIT_LFS_SKIP_SMUDGE): what code/ holds of them, said in the record as `lfsPointers`
    lfs_pointers: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.submodules:
            del out["submodules"]  # the record of a repository without submodules stays as it was
        del out["lfs_pointers"]
        if self.lfs_pointers:
            out["lfsPointers"] = self.lfs_pointers
        return out


def take(repo: Path, commit: str, dest: Path, store: Path, mode: str = "auto", owner: str | None = None) -> Snapshot:
    """Write the tree of `commit` into `dest` (existing, empty), read-only. `owner` names
    the temp files it makes in the store (`mrl new`'s token, see `metarunlog.making`:
    `remove_temps` finds a dead writer's by it); default: a random one."""
    owner = owner or os.urandom(6).hex()
    entries = git.ls_tree(repo, commit)
    how = _link_mode(mode, store, dest, owner)
    with git.tree_index(repo, commit) as env:
        converted = git.converted_paths(repo, entries, env)
        if how == "copy":
            git.checkout_index(repo, dest, None, env)
            snap = Snapshot("copy", _make_readonly(dest, (e for e in entries if _is_file(e))))
        else:
            snap = _link(repo, env, dest, store, entries, owner, converted)
    snap.submodules = [e.path for e in entries if e.mode == GITLINK]
    snap.lfs_pointers = sorted(p for p in converted if is_lfs_pointer(os.path.join(dest, p)))
    return snap


LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\n"  # how every pointer file starts
_LFS_POINTER_MAX = 1024  # the spec's limit on a pointer file's size


def is_lfs_pointer(path: str) -> bool:
    """Whether the file at `path` is a git-lfs pointer file (its spec: under 1024 bytes,
    starting with the version line), not the content it points to."""
    try:
        st = os.lstat(path)
        if st.st_size >= _LFS_POINTER_MAX or not stat.S_ISREG(st.st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False


def _link_mode(mode: str, store: Path, dest: Path, owner: str) -> str:
    """ "link" or "copy": `auto` links when the store can hold hardlinks into `dest`."""
    if mode not in MODES:
        raise MrlError(f"snapshot must be one of {', '.join(MODES)}, not {mode!r}: fix .mrl.cfg")
    if mode == "copy":
        return "copy"
    reason = _cannot_link(store, dest, owner)
    if reason is None:
        return "link"
    if mode == "link":
        raise MrlError(f'snapshot: link is impossible here ({reason}): set "snapshot" to "auto" or "copy" in .mrl.cfg')
    return "copy"


def _cannot_link(store: Path, dest: Path, owner: str) -> str | None:
    """Why `store` cannot hold hardlinks into `dest` (None: it can). A store that is not a
    folder (a symlink to a gone /scratch) or not writable is one `auto` copies past."""
    try:
        store.mkdir(exist_ok=True)
    except FileExistsError:
        return f"the store {store} is not a folder"
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            raise
        return f"the store {store} cannot be made: {e.strerror}"
    if os.stat(store).st_dev != os.stat(dest).st_dev:
        return f"the store {store} is on another filesystem than {dest}"
    # Named by its writer's random token and made with O_EXCL: two hosts sharing the store
    # over NFS may probe it at once, and each removes only its own probe (or, once its
    # writer died, `remove_temps` does).
    name = f".probe.{owner}"
    probe, link = store / name, dest / name
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            raise
        return f"the store {store} is not writable: {e.strerror}"
    try:
        os.link(probe, link)
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        if e.errno == errno.EXDEV:  # one filesystem (one st_dev) mounted twice: a bind mount
            return f"the store {store} is on another mount than {dest}"
        return f"{store.parent}'s filesystem has no hardlinks ({e.strerror})"
    finally:
        for p in (probe, link):
            p.unlink(missing_ok=True)
    return None


def _link(
    repo: Path, env: dict[str, str], dest: Path, store: Path, entries: list[TreeEntry], owner: str, converted: set[str]
) -> Snapshot:
    _make_dirs(dest, entries)
    root, objects = str(dest), str(store)
    fresh: list[TreeEntry] = []  # not in the store yet
    full: list[TreeEntry] = []  # in the store at its hardlink limit (EMLINK) or chmod-ed: a new store copy
    private: list[TreeEntry] = []  # symlinks and converted files: never shared
    # One blob at many paths (empty __init__.py files, a data file kept twice) that is not
    # linkable from the store yet: git writes it once, the other paths link to that file.
    holder: dict[str, str] = {}  # store key -> the path of this snapshot git writes it at
    again: list[tuple[str, str]] = []  # (path, the path holding its blob)
    linked = 0
    link, lstat, join = os.link, os.lstat, os.path.join  # local names: this loop runs once per tracked file
    stamps = _Stamps(store, owner)
    for e in entries:
        if e.mode == GITLINK:
            continue
        if e.mode == SYMLINK or e.path in converted:
            private.append(e)
            continue
        key = _key(objects, e)
        if key in holder:
            again.append((e.path, holder[key]))
            continue
        try:
            link(key, join(root, e.path))
        except FileNotFoundError:
            fresh.append(e)
        except PermissionError:
            # Another user's store file, with fs.protected_hardlinks: a private copy instead.
            fresh.append(e)
        except OSError as err:
            if err.errno != errno.EMLINK:
                raise
            full.append(e)
        else:
            if _changed_since_stored(lstat(join(root, e.path)), e.mode == EXECUTABLE, e.sha, stamps):
                os.unlink(join(root, e.path))
                full.append(e)  # written or chmod-ed through another experiment: a fresh store copy
            else:
                linked += 1
                continue
        holder[key] = e.path
    git.checkout_index(repo, dest, [e.path for e in (*fresh, *full, *private)], env)
    _make_readonly(dest, (e for e in (*fresh, *full, *private) if _is_file(e)))
    for e in (*fresh, *full):
        _mark_stored(join(root, e.path), e.sha)
    stored = 0
    for e in fresh:
        path, key = join(root, e.path), _key(objects, e)
        if _store(path, key):
            stored += 1
        elif _take_stored(key, path, e, owner, stamps):
            linked += 1  # a concurrent `mrl new` stored it first: its file, not a private twin
    for e in full:
        stored += _store(join(root, e.path), _key(objects, e), tmp=f"{_key(objects, e)}.{owner}{TEMP}")
    linked += sum(_link_or_copy(join(root, source), join(root, path)) for path, source in again)
    files = len(entries) - sum(1 for e in entries if e.mode in (GITLINK, SYMLINK))
    return Snapshot("link", files, linked=linked, stored=stored)


def _take_stored(key: str, path: str, e: TreeEntry, owner: str, stamps: _Stamps) -> bool:
    """Put the store's file `key` at `path` in place of the private copy there (True), when
    a concurrent `mrl new` stored the blob between our look-up and our store; as any link
    from the store, only while it is as stored. Linked beside it, then renamed over it:
    `path` is never missing."""
    tmp = f"{path}.{owner}{TEMP}"
    try:
        os.link(key, tmp)
    except OSError:
        return False  # gone again, another user's (protected_hardlinks), at its link limit
    if _changed_since_stored(os.lstat(tmp), e.mode == EXECUTABLE, e.sha, stamps):
        os.unlink(tmp)
        return False
    os.replace(tmp, path)
    return True


def _link_or_copy(src: str, dst: str) -> bool:
    """Hardlink `src` (read-only, stored) to `dst` (True); a copy of it (False) once `src`
    has as many links as the filesystem allows (ext4: 65,000 empty files of one blob)."""
    try:
        os.link(src, dst)
    except OSError as err:
        if err.errno != errno.EMLINK:
            raise
        import shutil

        shutil.copy2(src, dst)  # keeps the read-only mode and the stamped mtime
        return False
    return True


def _changed_since_stored(st: os.stat_result, executable: bool, sha: str, stamps: _Stamps) -> bool:
    """Whether a store file is no longer as it was stored: writable or its executable bit
    flipped (`chmod` through any experiment's link changes it for all, and for every
    later one), or written since: its modification time lost the sub-second part
    `_mark_stored` gave it, which its blob id chooses (root writes through read-only bits,
    an editor may write in place; and a copy that keeps a whole-second time, `cp -p` from a
    tar, gives it none). The exact mode bits may differ with the umask of whoever stored it."""
    mode = st.st_mode
    if bool(mode & 0o222) or bool(mode & stat.S_IXUSR) != executable:
        return True
    part = st.st_mtime_ns % 1_000_000_000
    if part == stamp_ns(sha):
        return False
    # no sub-second part: a store marked by an mrl before the stamps (re-stored once), or a
    # filesystem keeping whole seconds only, where the stamp cannot be kept (nor that check)
    return part != 0 or stamps.kept()


def stamp_ns(sha: str) -> int:
    """The sub-second part of a store file's modification time (1-999 ms, whole ms: a
    filesystem keeping microseconds keeps it), chosen by its blob id: a write gives it
    the clock's, a copy that keeps times its source's, neither this one."""
    return (int(sha[:8], 16) % 999 + 1) * 1_000_000


def _mark_stored(path: str, sha: str) -> None:
    """Give the file's modification time its blob's stamp (`stamp_ns`) below the second."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - st.st_mtime_ns % 1_000_000_000 + stamp_ns(sha)))


@dataclass
class _Stamps:
    """Whether the store's filesystem keeps the sub-second part of a modification time,
    asked once (a probe file named by the writer's token) and only when a store file has
    none."""

    store: Path
    owner: str
    _kept: bool | None = None

    def kept(self) -> bool:
        if self._kept is None:
            self._kept = _keeps_stamps(self.store / f".probe.{self.owner}")
        return self._kept


def _keeps_stamps(probe: Path) -> bool:
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return True  # cannot tell: a store file without its stamp is taken as changed
    try:
        os.close(fd)
        os.utime(probe, ns=(0, 1_000_000_000 + stamp_ns("1")))
        return os.stat(probe).st_mtime_ns == 1_000_000_000 + stamp_ns("1")
    except OSError:
        return True
    finally:
        probe.unlink(missing_ok=True)


def _key(objects: str, e: TreeEntry) -> str:
    suffix = ".x" if e.mode == EXECUTABLE else ""
    return f"{objects}/{e.sha[:2]}/{e.sha[2:]}{suffix}"


def _store(src: str, key: str, *, tmp: str | None = None) -> bool:
    """Put the file `src` (already read-only) into the store under `key`, as a hardlink
    (True); with `tmp`, replacing the file there (linked as `tmp`, then renamed over it).

    A concurrent `mrl new` may have stored it first (False: `_take_stored` links that one
    in place of `src`). Where the store's folder is not ours to write (another user's, in
    a shared outdir), `src` stays a private file (False)."""
    try:
        _link_making_dir(src, tmp or key)
    except (FileExistsError, PermissionError):
        return False
    if tmp:
        os.replace(tmp, key)
    return True


def remove_temps(store: Path, owner: str) -> int:
    """Remove what the writer named `owner` left in `store`: its probe and the temps of
    the files it was replacing (`KEY.<owner>.tmp`), when it died between link and rename.
    Only call it for a writer proven dead (`metarunlog.making`). Returns how many."""
    suffix, removed = f".{owner}{TEMP}", 0
    try:
        top = os.listdir(store)
    except OSError:
        return 0
    for name in top:
        folder = os.path.join(store, name)
        if name == f".probe.{owner}":
            removed += _unlink(folder)
        elif len(name) == 2 and not name.startswith("."):
            try:
                names = os.listdir(folder)
            except OSError:  # not a folder, or not ours to read
                continue
            removed += sum(_unlink(os.path.join(folder, n)) for n in names if n.endswith(suffix))
    return removed


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
    except OSError:  # gone meanwhile, or not ours to remove
        return 0
    return 1


def _link_making_dir(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except FileNotFoundError:  # the first blob under this prefix: another mrl new may store `dst` meanwhile
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.link(src, dst)


def _make_dirs(dest: Path, entries: list[TreeEntry]) -> None:
    dirs = {os.path.dirname(e.path) for e in entries}
    dirs.update(e.path for e in entries if e.mode == GITLINK)  # a submodule: an empty folder
    for d in sorted(dirs):
        if d:
            os.makedirs(os.path.join(dest, d), exist_ok=True)


def _is_file(e: TreeEntry) -> bool:
    return e.mode not in (GITLINK, SYMLINK)


def _readonly_mode(executable: bool) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o555 if executable else 0o444) & ~umask


def _make_readonly(dest: Path, entries: Any) -> int:
    modes = {False: _readonly_mode(False), True: _readonly_mode(True)}
    n = 0
    for e in entries:
        os.chmod(os.path.join(dest, e.path), modes[e.mode == EXECUTABLE])
        n += 1
    return n


# -- a --notclean diff on top -------------------------------------------------------------------


def apply_diff(repo: Path, commit: str, diff_file: Path, dest: Path) -> None:
    """Apply `.mrl.diff` to `dest`, the snapshot of `commit`: each file the diff writes is
    a new, private file (the old one is unlinked, never written through), read-only."""
    changes = git.checkout_with_diff(repo, commit, diff_file, dest)
    _make_readonly(dest, (e for e in changes.written if _is_file(e)))


# -- mrl info --verify -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    kind: str  # "changed", "missing" or "added"
    path: str  # relative to code/
    detail: str = ""


def verify(
    repo: Path, commit: str, code: Path, diff_file: Path | None = None, *, skip: tuple[str, ...] = ()
) -> tuple[int, list[Difference]]:
    """(files expected, differences) between `code` and the tree of `commit` (+ `diff_file`).

    Contents are compared by blob id (what `git hash-object` computes; a file converted by
    gitattributes with what git's checkout writes for it), symlinks by target, executable
    bits unless the repository says `core.fileMode = false`. Files
    under `__pycache__` folders are derived by running the code and not reported, nor
    are the top-level folders named in `skip`.
    """
    if not code.is_dir():
        raise MrlError(f"{code} is {'not a folder' if code.exists() else 'missing'}: there is no snapshot to verify")
    if not git.has_commit(repo, commit):
        raise MrlError(f"commit {commit} is not in the repository {repo} (history rewritten?): it cannot be verified")
    with git.tree_index(repo, commit, diff_file if diff_file is not None and diff_file.is_file() else None) as env:
        entries = git.index_entries(repo, env)
        expected = {e.path: e for e in entries if e.mode != GITLINK}
        check = _Checker(repo, env, code, git.converted_paths(repo, entries, env), git.file_mode_honoured(repo))
        found = [d for e in expected.values() if (d := check.entry(e)) is not None]
        found += check.converted_differences()
    found += [Difference("added", p) for p in _walk(code, skip) if p not in expected]
    found.sort(key=lambda d: d.path)
    return sum(1 for e in expected.values() if e.mode != SYMLINK), found


@dataclass
class _Checker:
    repo: Path
    env: dict[str, str]  # the tree_index of what code/ should hold: its attributes
    code: Path
    converted: set[str]
    file_mode: bool
    # converted files whose bytes are not their blob: compared with git's checkout of them,
    # all in one `checkout-index` (a repository with `* eol=crlf` has thousands)
    pending: list[tuple[TreeEntry, os.stat_result]] = field(default_factory=list)

    def entry(self, e: TreeEntry) -> Difference | None:
        full = os.path.join(self.code, e.path)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):  # or a folder of it became a file
            return Difference("missing", e.path)
        if e.mode == SYMLINK:
            if not stat.S_ISLNK(st.st_mode):
                return Difference("changed", e.path, "no longer a symlink")
            target = os.fsencode(os.readlink(full))
            return None if git.blob_id(target, e.sha) == e.sha else Difference("changed", e.path, "symlink target")
        if not stat.S_ISREG(st.st_mode):
            return Difference("changed", e.path, "no longer a regular file")
        if git.file_blob_id(full, e.sha) != e.sha:
            if e.path not in self.converted:
                return Difference("changed", e.path, "content")
            self.pending.append((e, st))
            return None
        return self._mode(e, st)

    def _mode(self, e: TreeEntry, st: os.stat_result) -> Difference | None:
        if self.file_mode and bool(st.st_mode & stat.S_IXUSR) != (e.mode == EXECUTABLE):
            return Difference("changed", e.path, "executable bit")
        return None

    def converted_differences(self) -> list[Difference]:
        import filecmp

        if not self.pending:
            return []
        found = []
        with git.temp_folder() as tmp:  # named by its owner: a `kill -9`'s is removed later
            git.checkout_index(self.repo, tmp, [e.path for e, _ in self.pending], self.env)
            for e, st in self.pending:
                same = filecmp.cmp(os.path.join(self.code, e.path), os.path.join(tmp, e.path), shallow=False)
                d = self._mode(e, st) if same else Difference("changed", e.path, "content")
                if d is not None:
                    found.append(d)
        return found


def _walk(code: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Files and symlinks under `code`, relative, without `__pycache__` folders (nor the
    top-level ones in `skip`)."""
    out = []
    for root, dirs, files in os.walk(code):
        rel = os.path.relpath(root, code)
        prefix = "" if rel == "." else rel + "/"
        out += [prefix + d for d in dirs if os.path.islink(os.path.join(root, d))]
        left_out = (*IGNORED_DIRS, *(skip if not prefix else ()))
        dirs[:] = [d for d in dirs if d not in left_out and not os.path.islink(os.path.join(root, d))]
        out += [prefix + f for f in files]
    return out
