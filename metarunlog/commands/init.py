"""Make the current directory an mrl project: a git repository's top-level directory, or
any folder inside a git work tree (a monorepo's `repo/projA`).

Writes .mrl.cfg (JSON, every key with its default: see .mrl.cfg.example), creates OUTDIR,
and adds OUTDIR and `last` to the .gitignore of this folder. Nothing is changed when the
directory is not in a git work tree, is inside an experiment, or is already initialised.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from metarunlog import git, jsonio
from metarunlog.config import CFG_NAME, default_config
from metarunlog.errors import MrlError
from metarunlog.project import inside_experiment

HELP = "make this folder of a git repository an mrl project (writes .mrl.cfg, OUTDIR, .gitignore)"
NEEDS_PROJECT = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("outdir", nargs="?", default="output", help="where experiments go (default: output)")


def cli(args: argparse.Namespace, project: object) -> int:
    cfg_path = init(Path.cwd(), args.outdir)
    print(f"initialised {cfg_path.parent}: wrote {CFG_NAME}, experiments go to {args.outdir}/")
    print(next_steps(cfg_path))
    return 0


def next_steps(cfg_path: Path) -> str:
    """The hint after init: the keys to set, the commit to make, then `mrl new`."""
    ignore = " .gitignore" if (cfg_path.parent / ".gitignore").is_file() else ""
    return (
        f"next: 1. in {CFG_NAME} set run.command, how to run one sub-experiment\n"
        '         ("python {{codeDir}}/train.py --config conf.json"), and confTemplFile, your config\n'
        '         template ("conf.json", also in copyFiles); or leave confTemplFile null for a script\n'
        '         that takes flags: "python {{codeDir}}/train.py {{ params | cli_args }}"\n'
        f'      2. commit: git add {CFG_NAME}{ignore} && git commit -m "mrl init"\n'
        '      3. mrl new "what this experiment asks"'
    )


def init(cwd: Path, outdir: str) -> Path:
    """Initialise `cwd`; returns the path of the new .mrl.cfg."""
    cwd = cwd.resolve()
    top = git.toplevel(cwd)
    if top is None:
        raise MrlError(f"{cwd} is not in a git repository: run `git init` (and commit your code) first")
    if inside_experiment(cwd):
        raise MrlError(f"{cwd} is inside an experiment folder: run `mrl init` in your project's folder")
    cfg_path = cwd / CFG_NAME
    if cfg_path.exists():
        raise MrlError(f"{cfg_path} already exists: this project is already initialised")
    out = Path(outdir)
    if out.is_absolute() or ".." in out.parts or not out.parts:
        raise MrlError(f"OUTDIR must be a folder inside the project, like 'output', not '{outdir}'")
    if (cwd / out).exists() and not (cwd / out).is_dir():
        raise MrlError(f"{cwd / out} exists and is not a directory: choose another OUTDIR")
    data = default_config(cwd.name, out.as_posix())
    (cwd / out).mkdir(parents=True, exist_ok=True)
    _add_to_gitignore(cwd, [f"/{out.as_posix()}/", "/last"])
    # atomic: a full disk leaves no .mrl.cfg, never an empty one every command refuses
    jsonio.write_text(cfg_path, json.dumps(data, indent=2) + "\n")
    return cfg_path


def _add_to_gitignore(cwd: Path, patterns: list[str]) -> None:
    path = cwd / ".gitignore"
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = {line.strip() for line in existing.splitlines()}
    missing = [p for p in patterns if p not in lines and p.strip("/") not in lines]
    if not missing:
        return
    sep = "" if not existing or existing.endswith("\n") else "\n"
    # appended, not rewritten: the user's lines stay whatever happens (a full disk emptied it),
    # and a part-written addition is taken back
    with jsonio.naming(path), open(path, "a", encoding="utf-8") as f:
        size = f.tell()
        try:
            f.write(sep + "# metarunlog\n" + "\n".join(missing) + "\n")
            f.flush()
        except OSError:
            with contextlib.suppress(OSError):
                f.truncate(size)
            raise
