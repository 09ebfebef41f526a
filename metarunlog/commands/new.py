"""Make a new experiment folder that pins the code at the current commit.

Writes OUTDIR/<id>/ with: .mrl (JSON record: expId, basedir, codeSubdir, gitHash,
gitDescription, branch, dirty, gitFailUntracked, timestamp, user, host, description,
copiedFrom, mrlVersion, snapshot), code/ (the repository's whole tracked tree exactly as at
HEAD, read-only; for a project in a subfolder of its repository, codeDir is
code/<subfolder>; with `snapshot: link|auto` each file is a hardlink into
OUTDIR/.mrl.objects/, stored once across experiments), .mrl.note
(markdown notes headed by DESCRIPTION), the copyFiles and confTemplFile copied from the
experiment given by -cp (default: the last one; the basedir for the first experiment),
and points `last` at it. A dirty working tree is refused unless --notclean, which also
saves .mrl.diff and applies it to code/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import __version__, jsonio
from metarunlog.errors import DirtyTree, MrlError
from metarunlog.experiment import CODE, DIFF, TEMPLATE_DIR, Experiment
from metarunlog.project import Project
from metarunlog.records import ExperimentRecord

HELP = "new experiment: pin the code at HEAD in OUTDIR/<id>/code, copy config files"
RESOLVES_EXP = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-cp",
        "--copyConfigFrom",
        metavar="EXP",
        default=None,
        help="copy copyFiles from this experiment, or 'no' (default: the last one)",
    )
    p.add_argument(
        "-nc",
        "--notclean",
        action="store_true",
        help="allow uncommitted changes: save them as .mrl.diff and apply them to code/",
    )
    p.add_argument(
        "-gfut",
        "--gitFailUntracked",
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
    for w in res.warnings:
        print(f"mrl: warning: {w}", file=sys.stderr)
    print(res.exp.dir)
    return 0


@dataclass
class NewResult:
    exp: Experiment
    copied: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def new(
    project: Project,
    *,
    description: str = "",
    copy_from: str | None = None,
    notclean: bool = False,
    fail_untracked: str | None = None,
) -> NewResult:
    from metarunlog import git

    # The snapshot is the whole tracked tree, also for a project in a subfolder of the repo.
    repo = git.toplevel(project.basedir) or project.basedir
    untracked = (fail_untracked or project.cfg["gitFailUntrackedDefault"]) == "yes"
    head = git.head(repo)
    dirty = [f for f in git.dirty_files(repo, untracked=untracked) if not _is_ours(project, repo, f)]
    if dirty and not notclean:
        shown = ", ".join(dirty[:8]) + (f" and {len(dirty) - 8} more" if len(dirty) > 8 else "")
        raise DirtyTree(
            f"uncommitted changes ({shown}): commit them, or pass --notclean to save the "
            "diff with the experiment"
        )
    source = _copy_source(project, copy_from)
    exp = _claim_next(project)
    try:
        result = _fill(project, repo, exp, head, dirty, untracked, source, description)
    except BaseException:
        # The folder is ours and holds nothing of the user's yet: leave no half experiment.
        shutil.rmtree(exp.dir, ignore_errors=True)
        raise
    project.update_last_link(exp)
    return result


def _is_ours(project: Project, repo: Path, entry: str) -> bool:
    """True for mrl's own output (outdir, `last`) in a `git status` entry (paths relative to
    the repository's top), should the user have removed them from .gitignore: they are
    never part of the code."""
    path = entry.split(" ", 1)[1].rstrip("/")
    out = os.path.relpath(project.outdir, repo)
    last = os.path.relpath(project.basedir / "last", repo)
    return path in (last, out) or path.startswith(out + "/")


def _copy_source(project: Project, copy_from: str | None) -> tuple[Path | None, str | None]:
    """(folder to copy copyFiles from, the record's copiedFrom) per -cp."""
    if copy_from == "no":
        return None, None
    if copy_from is None:
        last = project.last_id()
        if last is None:
            return project.basedir, "basedir"
        exp = project.experiment(last)
        return exp.dir, exp.name
    exp = project.load_exp(copy_from)
    return exp.dir, exp.name


def _claim_next(project: Project) -> Experiment:
    """Create the next experiment folder; mkdir is atomic, so concurrent calls never share one."""
    project.outdir.mkdir(parents=True, exist_ok=True)
    exp_id = (project.last_id() or 0) + 1
    while True:
        exp = project.experiment(exp_id)
        try:
            os.mkdir(exp.dir)
            return exp
        except FileExistsError:
            exp_id += 1


def _fill(
    project: Project,
    repo: Path,
    exp: Experiment,
    head: Any,  # git.Head
    dirty: list[str],
    untracked: bool,
    source: tuple[Path | None, str | None],
    description: str,
) -> NewResult:
    import socket

    from metarunlog import git, snapshot

    result = NewResult(exp)
    code = exp.dir / CODE
    code.mkdir()
    snap = snapshot.take(repo, head.sha, code, project.outdir / snapshot.STORE, project.cfg["snapshot"])
    if dirty:
        diff = git.diff_against_head(repo, untracked=untracked)
        (exp.dir / DIFF).write_bytes(diff)
        if diff.strip():
            snapshot.apply_diff(exp.dir / DIFF, code)
    src_dir, copied_from = source
    if src_dir is not None:
        _copy_files(project, exp, src_dir, result)
    note = exp.dir / project.cfg["note_fn"]
    if not note.exists():
        note.write_text(f"# {exp.name}: {description or '(no description)'}\n\n", encoding="utf-8")
    record = ExperimentRecord(
        exp_id=exp.id,
        basedir=str(project.basedir),
        # The project's folder inside code/ ("" at the repository's top): codeDir points there.
        code_subdir=_subdir(project.basedir, repo),
        git_hash=head.sha,
        git_description=head.description,
        git_describe=head.describe,
        branch=head.branch,
        dirty=bool(dirty),
        dirty_files=dirty,
        git_fail_untracked="yes" if untracked else "no",
        snapshot=snap.as_record(),
        timestamp=jsonio.now(),
        user=_user(),
        host=socket.gethostname(),
        description=description,
        copied_from=copied_from if result.copied else None,
        copied_files=result.copied,
        mrl_version=__version__,
    )
    exp.write_record(record)  # written last: its presence means complete
    return result


def _subdir(basedir: Path, repo: Path) -> str:
    rel = os.path.relpath(basedir.resolve(), repo.resolve())
    return "" if rel == "." else Path(rel).as_posix()


def _copy_files(project: Project, exp: Experiment, src_dir: Path, result: NewResult) -> None:
    names = list(dict.fromkeys([*project.cfg["copyFiles"], *project.cfg.template_files()]))
    for name in names:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise MrlError(f"copyFiles entry '{name}' must be a path inside the experiment folder")
        src = src_dir / rel
        if (src_dir / TEMPLATE_DIR / rel).is_file():  # a one-job experiment's template (makebatch)
            src = src_dir / TEMPLATE_DIR / rel
        if not src.exists() and src_dir != project.basedir:
            src = project.basedir / rel  # a file added to copyFiles after the source experiment
        if not src.exists():
            result.warnings.append(f"copyFiles: '{name}' not found in {src_dir}; not copied")
            continue
        dst = exp.dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
        result.copied.append(name)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(os.getuid())
