"""Make a small example project in DIR and take it through the whole workflow.

Creates DIR (it must not exist, or be empty) as a git repository holding train.py (a
numpy network trained on two spirals, writing metrics.jsonl and metrics.json) and
conf.json (a template whose MRL lines make a 3x2 grid of lr and hidden size), commits
it, then runs: mrl init, sets run.command in .mrl.cfg, mrl new, mrl makebatch, mrl run -j
2, and mrl analyze, and prints where to look. Afterwards DIR is an ordinary mrl project:
edit conf.json or train.py, commit, and go on with `mrl new`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from metarunlog import jsonio
from metarunlog.errors import MrlError

HELP = "make an example project in DIR and run the whole workflow on it (start here)"
NEEDS_PROJECT = False
RESOLVES_EXP = False
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
FILES = ["train.py", "conf.json"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", type=Path, help="where to make the example project (new or empty)")
    p.add_argument("-j", "--jobs", type=int, default=2, metavar="N", help="run N at a time (default: 2)")


def cli(args: argparse.Namespace, project: object) -> int:
    from metarunlog.progress import guarded_output

    # `mrl quickstart DIR | head -3`, a closed terminal: the example is made all the same
    with guarded_output("quickstart goes on"):
        return _cli(args)


def _cli(args: argparse.Namespace) -> int:
    res = quickstart(args.dir, jobs=args.jobs)
    print()
    print(f"The example project is {res.basedir}")
    print(f"  experiment:      {res.exp_dir}")
    print(f"  one run's files: {res.exp_dir / '001'}  (run.log, metrics.jsonl, .mrl.status)")
    if res.report:
        print(f"  report:          {res.report}")
    else:
        print("  report:          (mrl analyze is not available in this install)")
    print(f"Next: cd {shlex.quote(str(res.basedir))}; mrl table --sort loss")
    print('      then ask a new question: mrl new "..."; edit last/conf.json (its MRL: grid lines);')
    print("      mrl makebatch; mrl run -j 2; mrl analyze --open")
    return res.code


@dataclass
class QuickstartResult:
    basedir: Path
    exp_dir: Path
    report: Path | None = None
    code: int = 0
    steps: list[str] = field(default_factory=list)


def quickstart(target: Path, *, jobs: int = 2) -> QuickstartResult:
    """Make the example project in `target` and run init, new, makebatch, run, analyze."""
    basedir = _make_project(target.expanduser().resolve())
    res = QuickstartResult(basedir, basedir)
    with _cwd(basedir):
        _mrl(res, "init")
        _configure(basedir)
        _git(basedir, "add", "-A")
        _git(basedir, "commit", "-q", "-m", "mrl init: run train.py on each sub-experiment")
        _mrl(res, "new", "quickstart: how do learning rate and hidden size matter?")
        from metarunlog.project import Project

        exp = Project.find(basedir).load_exp("last")
        res.exp_dir = exp.dir
        _mrl(res, "makebatch")
        res.code = _mrl(res, "run", "-j", str(jobs), check=False)
        if importlib.util.find_spec("metarunlog.commands.analyze") is not None:
            analyzed = _mrl(res, "analyze", check=False)
            report = exp.dir / exp.cfg["analysis_outdir"] / exp.cfg["analysis_outfn"]
            res.report = report if report.exists() else None
            res.code = res.code or analyzed
    return res


def _make_project(d: Path) -> Path:
    if d.exists() and (not d.is_dir() or any(d.iterdir())):
        raise MrlError(f"{d} already exists and is not empty: give a new folder, e.g. `mrl quickstart mrl-demo`")
    if shutil.which("git") is None:
        raise MrlError("git is not installed: install git, then run mrl quickstart again")
    jsonio.make_folder(d, "give a new folder, e.g. `mrl quickstart mrl-demo`")
    for name in FILES:
        shutil.copy2(EXAMPLE / name, d / name)
    _git(d, "init", "-q")
    _git(d, "add", *FILES)
    _git(d, "commit", "-q", "-m", "quickstart example: train.py and conf.json")
    return d


def _configure(basedir: Path) -> None:
    """Point .mrl.cfg at the template and the training script (keeping its other keys)."""
    path = basedir / ".mrl.cfg"
    cfg = json.loads("\n".join(ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("//")))
    cfg["confTemplFile"] = "conf.json"
    cfg["copyFiles"] = ["conf.json"]
    run = cfg.setdefault("run", {})
    run["command"] = f"{shlex.quote(sys.executable)} {{{{codeDir}}}}/train.py --config conf.json"
    run["jobs"] = 2
    jsonio.write_text(path, json.dumps(cfg, indent=2) + "\n")  # atomic: never a half .mrl.cfg


def _mrl(res: QuickstartResult, *argv: str, check: bool = True) -> int:
    from metarunlog.main import main

    print(f"\n$ mrl {' '.join(shlex.quote(a) for a in argv)}", flush=True)
    res.steps.append(argv[0])
    code = main(list(argv))
    if check and code != 0:
        raise MrlError(f"quickstart stopped: `mrl {argv[0]}` failed (exit code {code}); see the message above")
    return code


def _git(cwd: Path, *args: str) -> None:
    # A fresh machine may have no git identity: give the example's commits one.
    ident = [] if _has_identity(cwd) else ["-c", "user.name=mrl quickstart", "-c", "user.email=quickstart@localhost"]
    proc = subprocess.run(["git", *ident, *args], cwd=cwd, capture_output=True, text=True, errors="surrogateescape")
    if proc.returncode != 0:
        raise MrlError(f"quickstart: `git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip()}")


def _has_identity(cwd: Path) -> bool:
    """user.name and user.email are configured (GIT_AUTHOR_* variables win over both)."""
    for key in ("user.name", "user.email"):
        out = subprocess.run(["git", "config", key], cwd=cwd, capture_output=True, text=True, errors="surrogateescape")
        if out.returncode != 0 or not out.stdout.strip():
            return False
    return True


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
