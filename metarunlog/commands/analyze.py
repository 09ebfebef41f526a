"""Write a self-contained HTML report of an experiment.

Writes EXPDIR/<analysis_outdir>/<analysis_outfn> (default EXPDIR/analysis/index.html; or
DIR/<analysis_outfn> with -outdir DIR): title, git facts (with the diff of a --notclean
experiment), the notes (markdown), a status summary, the params + metrics table (best
value per metric highlighted), one interactive plot per metric of the per-step rows
(metrics.jsonl, CSV logs, TensorBoard events, run.log patterns: docs/table.md; a line
per sub-experiment), the overview functions of mrl_analyze.py (`analysis_overview`), then
a section per sub-experiment: params, state, duration, the tail of run.log and the
per-sub-experiment functions (`analysis_subexp`). Bokeh's JS and CSS are inlined, so the
file opens offline. Works while runs are still going.

  mrl analyze                    the current or newest experiment
  mrl analyze 3 --notebook       also analysis.ipynb, which loads the table in Jupyter
  mrl analyze --open             and open it in the default browser

Templates: the report's Jinja templates ship with mrl; a file of the same name in
<basedir>/mrl_templates/ replaces one, and a file there can {% extends "default:report.html" %}
to replace only some blocks (docs/analyze.md). `analysis_webdir` in .mrl.cfg: the analysis folder
is also copied to <webdir>/<experiment> (a local path, or host:path with rsync; a local
webdir whose parent folder does not exist is a warning, and nothing is copied).
A user function that raises or returns an unknown rtype gets an error box in its section,
the rest of the report is still written, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from metarunlog import jsonio
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.project import Project

HELP = "self-contained HTML report: table, metric plots, your mrl_analyze.py functions"
_REMOTE = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)")  # host:path or user@host:path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: the one you are in, else the newest)")
    p.add_argument(
        "-outdir", "--outdir", metavar="DIR", default=None, help="write the report here (default: EXPDIR/analysis)"
    )
    p.add_argument("--notebook", action="store_true", help="also write analysis.ipynb, which loads the table")
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")


def cli(args: argparse.Namespace, project: Project) -> int:
    res = analyze(project, args.expId, outdir=args.outdir, notebook=args.notebook)
    if res.note:
        print(f"mrl: {res.note}", file=sys.stderr)
    for err in res.errors[:20]:
        print(f"mrl: error: {err}", file=sys.stderr)
    if len(res.errors) > 20:
        print(f"mrl: error: ... and {len(res.errors) - 20} more (see the report)", file=sys.stderr)
    print(res.path)
    if res.notebook:
        print(res.notebook)
    if res.webdir:
        print(f"copied to {res.webdir}")
    for w in res.warnings:
        print(f"mrl: warning: {w}", file=sys.stderr)
    if args.open:
        import webbrowser

        if not webbrowser.open(res.path.resolve().as_uri()):
            print(f"mrl: warning: found no web browser to open {res.path.resolve().as_uri()}", file=sys.stderr)
    return 1 if res.errors else 0


@dataclass
class AnalyzeResult:
    path: Path  # the report (index.html)
    errors: list[str] = field(default_factory=list)  # user functions that failed, unreadable records
    notebook: Path | None = None
    webdir: str | None = None  # where the analysis folder was copied
    # a report.primary_metric no run has, an analysis_webdir in a missing folder
    warnings: list[str] = field(default_factory=list)
    note: str | None = None  # no sub-experiment has metrics: where mrl looked


def analyze(
    project: Project,
    exp: Experiment | str | int | None = None,
    *,
    outdir: str | Path | None = None,
    notebook: bool = False,
) -> AnalyzeResult:
    """Write the report of `exp` (an Experiment, id, 'last', path, or None for the default).

    Registered analysis functions missing from mrl_analyze.py, or an unusable
    analysis_webdir, raise MrlError before anything is written.
    """
    from metarunlog import report

    if not isinstance(exp, Experiment):
        exp = project.load_exp(None if exp is None else str(exp))
    cfg = exp.cfg
    overview, per_sub = report.user_functions(project.basedir, cfg)
    webdir = cfg["analysis_webdir"]
    if webdir:
        check_webdir(webdir)
    out = Path(outdir).resolve() if outdir else exp.dir / cfg["analysis_outdir"]
    out.mkdir(parents=True, exist_ok=True)
    rep = report.build_report(exp, project.basedir, out, overview, per_sub, log_lines=cfg["run"].get("log_tail", 20))
    path = out / cfg["analysis_outfn"]
    jsonio.write_text(path, report.render(rep, project.basedir))
    res = AnalyzeResult(path, rep.errors, warnings=rep.warnings)
    if rep.table.rows and not rep.table.metrics:
        from metarunlog.results import no_metrics_note

        res.note = no_metrics_note(exp, project.basedir)
    if notebook:
        from metarunlog import notebook as nb

        res.notebook = nb.write(exp, project.basedir, out)
    if webdir and not is_remote(webdir) and not _webdir_root(webdir, project.basedir).parent.is_dir():
        # Someone else's path, e.g. the original's default config ('/u/tsercu/www'): as its
        # rsync did, leave the report where it is rather than create folders at the root.
        res.warnings.append(
            f"analysis_webdir {webdir} is in a folder that does not exist: the report was not copied "
            "there (set analysis_webdir to null, or to a folder of yours)"
        )
    elif webdir:
        res.webdir = copy_to_webdir(out, webdir, exp.name, project.basedir)
    return res


def _webdir_root(webdir: str, basedir: Path) -> Path:
    return basedir / Path(webdir).expanduser()


def is_remote(webdir: str) -> bool:
    return bool(_REMOTE.match(webdir)) and not Path(webdir.split(":", 1)[0]).exists()


def check_webdir(webdir: str) -> None:
    if is_remote(webdir) and shutil.which("rsync") is None:
        raise MrlError(
            f"analysis_webdir is {webdir!r}, a remote host:path, which needs rsync: install rsync "
            "(apt-get install rsync), or set analysis_webdir to a local folder"
        )


def copy_to_webdir(outdir: Path, webdir: str, exp_name: str, basedir: Path) -> str:
    """Copy the analysis folder to `<webdir>/<exp_name>/` (rsync for host:path); the target.

    A relative local webdir is relative to the project's basedir.
    """
    target = f"{webdir.rstrip('/')}/{exp_name}"
    if is_remote(webdir):
        cmd = ["rsync", "-a", "--chmod=a+rX", f"{outdir}/", f"{target}/"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise MrlError(
                f"the report is written, but copying it to {target} failed (rsync: {last}); "
                "check analysis_webdir and that you can ssh to the host"
            )
        return target
    dest = _webdir_root(webdir, basedir) / exp_name
    try:
        shutil.copytree(outdir, dest, dirs_exist_ok=True)
    except OSError as e:
        raise MrlError(f"the report is written, but copying it to {dest} failed: {e}; check analysis_webdir") from e
    return str(dest)
