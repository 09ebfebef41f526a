"""Make a new experiment folder that pins the code at the current commit.

Writes OUTDIR/<id>/ with: .mrl (JSON record: expId, basedir, codeSubdir, gitHash,
gitDescription, branch, dirty, gitFailUntracked, timestamp, user, host, description,
copiedFrom, copied, run, mrlVersion, snapshot), code/ (the repository's whole tracked
tree exactly as at HEAD, read-only; for a project in a subfolder of its repository,
codeDir is code/<subfolder>; with `snapshot: link|auto` each file is a hardlink into
OUTDIR/.mrl.objects/, stored once across experiments), .mrl.note (markdown notes headed
by DESCRIPTION), the copyFiles and confTemplFile, and points `last` at it. A dirty
working tree is refused unless --notclean, which also saves .mrl.diff and applies it to
code/; untracked files that are not git-ignored are left out of code/, with a warning.

Config files come from the experiment -cp names (default: the newest made one, never a folder
another `mrl new` is still filling or one killed half-way: no record yet), or with
`-cp basedir` (or `repo`) as committed at HEAD; the first experiment takes the
basedir's. A file the source experiment lacks comes from the basedir. It prints what it
copied from where, says when a copy differs from the committed version, and records
each file's source in `copied` ({"conf.lua": "0001", "extra.txt": "basedir@<sha>"}).

The project's effective `run` block is pinned in the record (`run`): runs of this
experiment use it, whatever the project's .mrl.cfg says later; EXPDIR/.mrl.cfg still
overrides it. `mrl info` shows it.

While it fills the folder, OUTDIR/.mrl.making-<id> (locked) says so; .mrl is written last. One
killed half-way (kill -9) leaves a folder without .mrl: `mrl ls` shows it as `!!`
incomplete, `mrl info ID` says to remove it (rm -rf); the next `mrl new` numbers past it
and removes the temp files it left in the snapshot store.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import __version__, git, jsonio, making
from metarunlog.commands._args import add_copy_options, add_option
from metarunlog.error_handler import killed_like_ctrl_c
from metarunlog.errors import DirtyTree, MrlError, text_problem
from metarunlog.experiment import CODE, DIFF, RECORD, TEMPLATE_DIR, Experiment
from metarunlog.fmt import printable
from metarunlog.project import Project
from metarunlog.records import ExperimentRecord

HELP = "new experiment: pin the code at HEAD in OUTDIR/<id>/code, copy config files"
RESOLVES_EXP = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_copy_options(
        p,
        "copy copyFiles and confTemplFile from this experiment, from 'basedir' (alias 'repo': the "
        "versions committed at HEAD), or 'no' (default: the last experiment; the basedir for the first)",
        "allow uncommitted changes: save them as .mrl.diff and apply them to code/",
    )
    add_option(
        p,
        "-gfut",
        "--gfut",
        "--git-fail-untracked",
        hidden=("--gitFailUntracked",),
        dest="gitFailUntracked",
        choices=["yes", "no"],
        default=None,
        help="count untracked files as changes (default: gitFailUntrackedDefault)",
    )
    p.add_argument("description", nargs="?", default="", help="what this experiment asks")
    p.set_defaults(expId=None)  # hooks read args.expId; after_new sees the new id


def cli(args: argparse.Namespace, project: Project) -> int:
    res = new(
        project,
        description=args.description or "",
        copy_from=args.copyConfigFrom,
        notclean=args.notclean,
        fail_untracked=args.gitFailUntracked,
    )
    args.expId = res.exp.id
    print_result(res)
    print(res.exp.dir)
    return 0


def _write_note(exp: Experiment, note_fn: str, description: str) -> None:
    note = exp.dir / note_fn
    try:
        if not note.exists():
            with jsonio.naming(note):
                note.write_text(f"# {exp.name}: {description or '(no description)'}\n\n", encoding="utf-8")
    except (NotADirectoryError, IsADirectoryError) as e:
        raise MrlError(
            f"note_fn '{note_fn}' in .mrl.cfg cannot be a file in {exp.name}: part of it is a "
            f"{'folder' if isinstance(e, IsADirectoryError) else 'file, not a folder'} there; set note_fn to a "
            "file name such as '.mrl.note'"
        ) from None


def print_result(res: NewResult, *, differs: bool = True) -> None:
    """What `mrl new` (and rerun, reproduce) tell: where each copied file came from (on
    stdout, before the new folder's path, which stays the last line), then the warnings
    (a copy that differs from the committed one, files left out of code/) on stderr."""
    if res.copied:
        print(res.copied_line())
    notes = [*res.warnings, *([res.differs_note] if differs and res.differs_note else [])]
    for w in notes:
        print(f"mrl: warning: {w}", file=sys.stderr)


@dataclass
class NewResult:
    exp: Experiment
    copied: dict[str, str] = field(default_factory=dict)  # file -> where it came from (the record's `copied`)
    differs: list[str] = field(default_factory=list)  # copied from an experiment, not as committed
    differs_note: str | None = None  # the one line that says so
    warnings: list[str] = field(default_factory=list)

    def copied_line(self) -> str:
        """`copied conf.lua from 0001; extra.txt from basedir@<sha>`: one clause per source."""
        by_source: dict[str, list[str]] = {}
        for name, label in self.copied.items():
            by_source.setdefault(label, []).append(name)
        return "copied " + "; ".join(
            f"{', '.join(names)} from {_short_label(label)}" for label, names in by_source.items()
        )


def _short_label(label: str) -> str:
    head, at, sha = label.partition("@")
    digits = len(sha) - len(sha.lstrip("0123456789abcdef"))  # 40 (SHA-1) or 64 (SHA-256)
    return f"{head}@{sha[:10]}{sha[digits:]}" if at else label


@dataclass(frozen=True)
class Pin:
    """What code/ holds: a commit, plus the uncommitted changes (.mrl.diff) with --notclean."""

    head: git.Head
    dirty: list[str] = field(default_factory=list)  # `git status` entries ("M train.py") the diff carries
    diff: bytes | None = None  # .mrl.diff to save and apply to code/ (None: a clean tree)
    untracked: bool = False  # untracked files counted as changes (-gfut yes)
    subdir: str = ""  # the project's folder inside code/ ("" at the repository's top)

    def changes(self, path: str) -> bool:
        """Whether the diff changes `path` (relative to the repository's top) or a file in it."""
        return any(p == path or p.startswith(path.rstrip("/") + "/") for p in (e.split(" ", 1)[-1] for e in self.dirty))


def new(
    project: Project,
    *,
    description: str = "",
    copy_from: str | None = None,
    notclean: bool = False,
    fail_untracked: str | None = None,
    pin: Pin | None = None,
    run_block: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    files: list[str] | None = None,
    then: Callable[[NewResult], None] | None = None,
) -> NewResult:
    """Make the next experiment. By default it pins HEAD (and, with `notclean`, the
    working tree's changes), the project's run block and copies the project's copyFiles
    and confTemplFile; `mrl reproduce` passes another commit as `pin`, the run block to
    pin, the `files` to copy (the source's) and `provenance` (ExperimentRecord fields:
    `rerun_of`, `reproduces`). `then(result)` is part of making it (`mrl rerun` makes its
    batch there): when it fails, or a signal comes, the experiment is removed too."""
    if problem := text_problem(description):
        raise MrlError(f"the description {problem}: use UTF-8 text without NUL characters")
    repo = git.toplevel(project.basedir) or project.basedir
    warnings: list[str] = []
    if pin is None:
        pin = _pin_worktree(project, repo, notclean, fail_untracked, warnings)
    source = _copy_source(project, copy_from)
    block = _run_block(project) if run_block is None else run_block
    with killed_like_ctrl_c():  # also for new() called from Python, not through main
        _clean_after_dead(project)
        exp, claim = _claim_next(project)
        try:
            result = _fill(project, repo, exp, claim.token, pin, source, description, block, provenance or {}, files)
            if then is not None:
                then(result)
        except BaseException as e:
            # The folder is ours and holds nothing of the user's yet: leave no half experiment.
            gone = isinstance(e, (OSError, MrlError)) and not exp.dir.is_dir()
            shutil.rmtree(exp.dir, ignore_errors=True)
            claim.release()  # once the folder is gone: never seen as a dead mrl new's
            if gone:  # an `rm -rf` of the half-made folder: what failed is only its consequence
                raise MrlError(
                    f"{exp.dir} was removed while mrl new was making it (by another process): "
                    "no experiment was made; run mrl new again"
                ) from None
            raise
        claim.release()  # the record is written: complete
    result.warnings[:0] = warnings
    if result.differs:
        result.differs_note = _differs_line(result, source, pin)
    note = project.update_last_link(exp)
    if note:
        result.warnings.append(note)
    return result


def _pin_worktree(project: Project, repo: Path, notclean: bool, fail_untracked: str | None, warnings: list[str]) -> Pin:
    """HEAD, and the working tree's changes if there are any and --notclean allows them."""
    untracked = (fail_untracked or project.cfg["gitFailUntrackedDefault"]) == "yes"
    head = git.head(repo)
    dirty = [f for f in git.dirty_files(repo, untracked=untracked) if not _is_ours(project, repo, f)]
    if dirty and not notclean:
        raise DirtyTree(
            f"uncommitted changes ({_few(dirty, 8)}): commit them, or pass --notclean to save the "
            "diff with the experiment"
        )
    if not untracked:
        left_out = _left_out(project, repo)
        if left_out:
            warnings.append(
                f"{len(left_out)} untracked file(s) not in code/ (neither committed nor git-ignored): "
                f"{_few(left_out, 5)}; `git add` and commit the ones your code needs"
            )
    diff = git.diff_against_head(repo, untracked=untracked) if dirty else None
    return Pin(head, dirty, diff, untracked, _subdir(project.basedir, repo))


def _left_out(project: Project, repo: Path) -> list[str]:
    """Untracked, not ignored files (a folder as one `dir/`): the snapshot leaves them out."""
    entries = git.dirty_files(repo, untracked=True)
    return [e.split(" ", 1)[1] for e in entries if e.startswith("?? ") and not _is_ours(project, repo, e)]


def _few(items: list[str], n: int) -> str:
    # printable: a file name holding a newline made a second line (`mrl: error: ...`)
    return ", ".join(map(printable, items[:n])) + (f" and {len(items) - n} more" if len(items) > n else "")


def _run_block(project: Project) -> dict[str, Any]:
    """The project's effective `run` block, to pin; none while run.command is unset (the
    experiment then uses the project's block as it is when it runs)."""
    block = dict(project.cfg.run)
    return block if block.get("command") else {}


def _differs_line(result: NewResult, source: CopySource, pin: Pin) -> str:
    names = ", ".join(result.differs)
    verb = "differs" if len(result.differs) == 1 else "differ"
    return (
        f"{names} (copied from {source.name}) {verb} from the committed basedir version at "
        f"{pin.head.sha[:10]}: `-cp basedir` copies that one"
    )


def _is_ours(project: Project, repo: Path, entry: str) -> bool:
    """True for mrl's own output (outdir, `last`) in a `git status` entry (paths relative to
    the repository's top), should the user have removed them from .gitignore: they are
    never part of the code."""
    path = entry.split(" ", 1)[1].rstrip("/")
    # both spellings: the outdir resolved, and as configured (a symlink `output ->
    # /scratch/...`, which git lists as an untracked file `output`)
    outs = {os.path.relpath(project.outdir, repo), os.path.relpath(project.basedir / project.cfg["outdir"], repo)}
    last = os.path.relpath(project.basedir / "last", repo)
    return path == last or any(path == out or path.startswith(out + "/") for out in outs)


BASEDIR_REFS = ("basedir", "repo")  # -cp basedir: the basedir's committed files


@dataclass(frozen=True)
class CopySource:
    """Where -cp says to copy copyFiles from: an experiment folder, the basedir, or nothing."""

    dir: Path | None  # None: -cp no
    name: str | None  # the record's copiedFrom: the experiment's name, or "basedir"

    @property
    def is_basedir(self) -> bool:
        return self.name == "basedir"


def _copy_source(project: Project, copy_from: str | None) -> CopySource:
    """The source -cp names: `no`, `basedir`/`repo`, an experiment (default: the last one;
    the basedir for the first experiment)."""
    if copy_from == "no":
        return CopySource(None, None)
    if copy_from in BASEDIR_REFS:
        return CopySource(project.basedir, "basedir")
    if copy_from is None:
        exp = _newest_complete(project)
        if exp is None:
            return CopySource(project.basedir, "basedir")
        return CopySource(exp.dir, exp.name)
    try:
        exp = project.load_exp(copy_from)
    except MrlError as e:  # say what else -cp takes: a user after the repository's copy learns it here
        raise MrlError(
            f"-cp {copy_from}: {e}; -cp also takes 'basedir' (or 'repo': the committed versions) or 'no'"
        ) from None
    return CopySource(exp.dir, exp.name)


def _newest_complete(project: Project) -> Experiment | None:
    """The newest experiment whose record is written (it is written last). A newer folder
    without one is another `mrl new` still filling it, or one killed half-way: its config
    files may be missing or half-copied, so they are never the default source."""
    for exp_id in reversed(project.experiment_ids()):
        exp = project.experiment(exp_id)
        if (exp.dir / RECORD).is_file():
            return exp
    return None


def _claim_next(project: Project) -> tuple[Experiment, making.Claim]:
    """Create the next experiment folder, marked as being made by this process (see
    `metarunlog.making`); mkdir is atomic, so concurrent calls never share one."""
    project.outdir.mkdir(parents=True, exist_ok=True)
    exp_id = (project.last_id() or 0) + 1
    while True:
        exp = project.experiment(exp_id)
        try:
            os.mkdir(exp.dir)
        except FileExistsError:
            exp_id += 1
            continue
        try:
            return exp, making.claim(exp.dir)
        except BaseException:
            shutil.rmtree(exp.dir, ignore_errors=True)
            raise


def _clean_after_dead(project: Project) -> None:
    """What a dead `mrl new` left in the snapshot store is removed (`making.clean_after_dead`):
    its claim is a dot-file in OUTDIR, so one listing finds them all."""
    from metarunlog import snapshot

    try:
        names = os.listdir(project.outdir)
    except FileNotFoundError:
        return
    if any(n.startswith((making.MAKING, making.CLAIMING)) for n in names):
        making.clean_after_dead(project.outdir, names, project.outdir / snapshot.STORE)


def _fill(
    project: Project,
    repo: Path,
    exp: Experiment,
    token: str,
    pin: Pin,
    source: CopySource,
    description: str,
    run_block: dict[str, Any],
    provenance: dict[str, Any],
    files: list[str] | None = None,
) -> NewResult:
    from metarunlog import snapshot
    from metarunlog.procs import HOST

    result = NewResult(exp)
    code = exp.dir / CODE
    code.mkdir()
    store = project.outdir / snapshot.STORE
    snap = snapshot.take(repo, pin.head.sha, code, store, project.cfg["snapshot"], owner=token)
    if snap.submodules:
        result.warnings.append(_submodules_line(snap.submodules, pin))
    if snap.lfs_pointers:
        result.warnings.append(
            f"{len(snap.lfs_pointers)} git-lfs file(s) are pointer files in code/, not their content (their "
            f"objects are not fetched, or GIT_LFS_SKIP_SMUDGE is set): {_few(snap.lfs_pointers, 5)}; "
            "run `git lfs pull` and make a new experiment to pin the content (the record lists them: "
            "snapshot.lfsPointers)"
        )
    if pin.diff is not None:
        with jsonio.naming(exp.dir / DIFF):
            (exp.dir / DIFF).write_bytes(pin.diff)
        if pin.diff.strip():
            snapshot.apply_diff(repo, pin.head.sha, exp.dir / DIFF, code)
    if source.dir is not None:
        _copy_files(project, repo, exp, source, pin, result, files)
    _write_note(exp, project.cfg["note_fn"], description)
    record = ExperimentRecord(
        exp_id=exp.id,
        basedir=str(project.basedir),
        # The project's folder inside code/ ("" at the repository's top): codeDir points there.
        code_subdir=pin.subdir,
        git_hash=pin.head.sha,
        git_description=pin.head.description,
        git_describe=pin.head.describe,
        branch=pin.head.branch,
        dirty=bool(pin.dirty),
        dirty_files=list(pin.dirty),
        git_fail_untracked="yes" if pin.untracked else "no",
        snapshot=snap.as_record(),
        timestamp=jsonio.now(),
        user=_user(),
        host=HOST,
        description=description,
        copied_from=source.name if result.copied else None,
        copied_files=list(result.copied),
        copied=dict(result.copied),
        run=run_block,
        mrl_version=__version__,
    )
    exp.write_record(dataclasses.replace(record, **provenance))  # written last: its presence means complete
    return result


def _submodules_line(paths: list[str], pin: Pin) -> str:
    """code/ holds a submodule as an empty folder (a fresh clone's), so a run that needs its
    files fails only at run time: say it at `mrl new`, with what of it was not pinned."""
    changed = [p for p in paths if any(d.split(" ", 1)[-1] == p for d in pin.dirty)]
    also = f"; the uncommitted changes in {_few(changed, 3)} are not in .mrl.diff either" if changed else ""
    return (
        f"{len(paths)} submodule(s) are empty folders in code/ (mrl pins this repository's files only): "
        f"{_few(paths, 5)}{also}; commit what your code needs into this repository, or fetch it in a run step"
    )


def _subdir(basedir: Path, repo: Path) -> str:
    rel = os.path.relpath(basedir.resolve(), repo.resolve())
    return "" if rel == "." else Path(rel).as_posix()


def _copy_files(
    project: Project,
    repo: Path,
    exp: Experiment,
    source: CopySource,
    pin: Pin,
    result: NewResult,
    files: list[str] | None = None,
) -> None:
    """Copy copyFiles and the templates from `source`, recording where each one came from.

    The basedir's files are the versions committed at the pinned commit, not the working
    tree's; a file the commit lacks (untracked, ignored) comes from the working tree. A
    file the source experiment lacks (added to copyFiles since) falls back to the
    basedir's, and the record says so."""
    assert source.dir is not None
    if files is None:
        files = [*project.cfg["copyFiles"], *project.cfg.template_files()]
    names = list(dict.fromkeys(files))
    for name in names:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            key = "copyFiles" if name in project.cfg["copyFiles"] else "confTemplFile"
            raise MrlError(f"{key} entry '{name}' must be a path inside the experiment folder")
        found = _find_copy(project, repo, exp, source, pin, rel)
        if found is None:
            result.warnings.append(f"copyFiles: '{name}' not found in {source.dir}; not copied")
            continue
        src, label = found
        if isinstance(src, Path) and (outside := _outside_code(exp, src)) is not None:
            label = f"{outside} (a symlink committed at {pin.head.sha[:10]}; its target is not pinned)"
            result.warnings.append(
                f"{name}: committed as a symlink to {outside}, outside the repository: copied what it points to "
                "now, which the commit does not pin"
            )
        if isinstance(src, Path) and (kind := jsonio.special_kind(src)) is not None:
            # shutil.copy2 refuses it with a traceback (and a read would block)
            key = "copyFiles" if name in project.cfg["copyFiles"] else "confTemplFile"
            raise MrlError(f"{key} entry '{name}': {src} is a {kind}, not a file or folder: make it a regular file")
        dst = exp.dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            with jsonio.naming(dst):
                dst.write_bytes(src)
            result.warnings.append(
                f"{name}: copied the version committed at {pin.head.sha[:10]}; your uncommitted change to it "
                f"is in code/ (through {DIFF}) but not in {exp.name}/{name}"
            )
        else:
            _copy_writable(src, dst)
        result.copied[name] = label
        pinned = exp.dir / CODE / pin.subdir / rel
        if isinstance(src, Path) and label == source.name and pinned.exists() and not _same(src, pinned):
            result.differs.append(name)


def _find_copy(
    project: Project, repo: Path, exp: Experiment, source: CopySource, pin: Pin, rel: Path
) -> tuple[Path | bytes, str] | None:
    """(file to copy or its content, its source for the record) for one copyFiles entry."""
    assert source.dir is not None
    if not source.is_basedir:
        if (source.dir / TEMPLATE_DIR / rel).is_file():  # a one-job experiment's template (makebatch)
            return source.dir / TEMPLATE_DIR / rel, str(source.name)
        if (source.dir / rel).exists():
            return source.dir / rel, str(source.name)
    at = f"basedir@{pin.head.sha}"
    path = (Path(pin.subdir) / rel).as_posix()
    if pin.changes(path):  # --notclean changed it: code/ holds the change, the commit the original
        committed = git.blob(repo, pin.head.sha, path)
        if committed is not None:
            return committed, at
        if not (exp.dir / CODE / path).is_dir():
            return (project.basedir / rel, "basedir (not committed)") if (project.basedir / rel).exists() else None
        at += "+.mrl.diff"  # a folder with changed files: as pinned
    if (exp.dir / CODE / path).exists():
        return exp.dir / CODE / path, at
    if (project.basedir / rel).exists():
        return project.basedir / rel, "basedir (not committed)"
    return None


def _outside_code(exp: Experiment, src: Path) -> str | None:
    """Where a file of code/ really is when a committed symlink (it, or a folder above it)
    points out of code/ (`conf.json -> /data/conf.json`): what is copied is that file, not a
    version of the commit's. None for anything else."""
    code = os.path.abspath(exp.dir / CODE)
    if os.path.commonpath([code, os.path.abspath(src)]) != code:
        return None  # not a file of code/ (the source experiment's, the basedir's)
    code, real = os.path.realpath(code), os.path.realpath(src)
    return None if os.path.commonpath([code, real]) == code else real


def _copy_writable(src: Path, dst: Path) -> None:
    """Copy a file or folder; the copies are the user's to edit (code/ is read-only)."""

    def copy(a: str, b: str) -> None:
        kind = jsonio.special_kind(a)
        if kind is not None:  # inside a copied folder (copytree would gather it into a traceback)
            raise MrlError(f"{a} is a {kind}, not a file: mrl cannot copy it; move it out of {src}")
        shutil.copy2(a, b)
        if not os.path.islink(b):
            os.chmod(b, stat.S_IMODE(os.stat(b).st_mode) | stat.S_IWUSR)

    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=copy)
    else:
        copy(str(src), str(dst))


def _same(a: Path, b: Path) -> bool:
    """Whether two files (or folders, recursively) hold the same content."""
    import filecmp

    if a.is_dir() or b.is_dir():
        if not (a.is_dir() and b.is_dir()):
            return False
        names = sorted(p.name for p in a.iterdir())
        return names == sorted(p.name for p in b.iterdir()) and all(_same(a / n, b / n) for n in names)
    return filecmp.cmp(a, b, shallow=False)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(os.getuid())
