"""Write a self-contained HTML report of an experiment, a comparison, or the index.

Writes EXPDIR/<analysis_outdir>/<analysis_outfn> (default EXPDIR/analysis/index.html; or
DIR/<analysis_outfn> with -outdir DIR), one file that opens offline: a #summary at the top
(the primary metric, `report.primary_metric` or the first one found, and its goal; the best
run by best value over training and by final value; counts by state; every failed or stale
run with its exit code and last run.log lines), errors, git facts (with the diff of a
--notclean experiment), the notes, the params + metrics table (last and best values as
`mrl table --summary both`, and mean ± std over repeats), #effects (each varying param
against the primary metric, a heatmap over two of them), the curves (a line per
combination, mean ± std bands over repeats; from every reader's rows: metrics.jsonl,
CSV logs, TensorBoard events, run.log patterns, docs/table.md), your mrl_analyze.py functions
(`analysis_overview`, `analysis_subexp`) and a section per sub-experiment.

  mrl analyze                    the current or newest experiment
  mrl analyze 3 --notebook       also analysis.ipynb, which loads the table in Jupyter
  mrl analyze 2 3                one comparison report, OUTDIR/compare-0002-0003.html: a table
                                 and curves over both, coloured by experiment, each one's
                                 pinned commit and a link to its own report (written
                                 first where it has none)
  mrl analyze --index            OUTDIR/index.html: every experiment, newest first, with its
                                 description, tags, status counts, best primary metric and a
                                 link to its report (made, or stale: its runs' files,
                                 mrl_analyze.py, what metrics() returns or the .mrl.cfg
                                 settings changed since, docs/analyze.md); one whose record
                                 cannot be read is listed with why, a warning line, exit 1
                                 (as `mrl table --all`); each card is cached in
                                 OUTDIR/.mrl.index.json (recomputed when its files change)
  mrl analyze 3 --watch 30       rewrite the report every 30 s while runs are queued or
                                 running; the page reloads itself until they are done
  mrl analyze --open             and open it in the default browser

Templates: the report's Jinja templates ship with mrl; a file of the same name in
<basedir>/mrl_templates/ replaces one, and a file there can {% extends "default:report.html" %}
to replace only some blocks (docs/analyze.md). `analysis_webdir` in .mrl.cfg: the analysis folder
is also copied to <webdir>/<experiment>, and a comparison or the index to <webdir>/ (linking
the reports there; a local path, or host:path with rsync; a local webdir whose parent folder
does not exist is a warning, and nothing is copied).
A user function that raises or returns an unknown rtype gets an error box in its section,
the rest of the report is still written, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import jsonio
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.project import Project

OUTDIR_HINT = "give -outdir a folder that can be made (no file in its way)"

HELP = "self-contained HTML report: summary, table, effects, plots; comparisons (2 3), --index, --watch"
_REMOTE = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)")  # host:path or user@host:path


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"--watch {text}: give a number of seconds greater than 0, e.g. --watch 30")
    return value


def RESOLVES_EXP(args: argparse.Namespace) -> bool:  # noqa: N802 (main's per-command flag)
    """main resolves one plain EXP, or the default experiment when none is named (hooks read
    args.expId); not for a range, several EXPs, --index: a newest folder still without its record (an `mrl new`
    under way or killed) is skipped by those, not an error."""
    return args.expId is not None or not (args.exps or args.index)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from metarunlog.commands.table import ExpRefs

    p.add_argument(
        "exps",
        nargs="*",
        action=ExpRefs,
        metavar="EXP",
        help="experiment (default: the one you are in, else the newest); two or more, or a range (2 3, 5-9): "
        "one comparison report, OUTDIR/compare-<names>.html",
    )
    p.set_defaults(expId=None)
    p.add_argument(
        "-outdir",
        "--outdir",
        metavar="DIR",
        default=None,
        help="write the page here: the report (default: EXPDIR/analysis), a comparison or --index alone "
        "(default: OUTDIR)",
    )
    p.add_argument("--notebook", action="store_true", help="also write analysis.ipynb, which loads the table")
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")
    p.add_argument(
        "--index",
        action="store_true",
        help="write OUTDIR/index.html: every experiment, newest first, with its description, tags, status counts, "
        "best primary metric and a link to its report (alone: only the index)",
    )
    p.add_argument(
        "--watch",
        type=_seconds,
        metavar="SECONDS",
        help="rewrite the report every SECONDS while sub-experiments are queued or running; the page reloads "
        "itself meanwhile and stops once they are done (a file, no server)",
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    from metarunlog import selection
    from metarunlog.commands.table import warn_left_out

    ranges = any(selection.looks_like_selection(r) for r in args.exps)
    refs = [args.expId] if len(args.exps) == 1 and not ranges else args.exps  # main resolved a plain EXP
    if args.index and not refs:
        return _index_only(args, project)
    left_out: list[str] = []
    exps = selection.experiments(project, refs, skipped=left_out) if refs else [project.load_exp(None)]
    if len(exps) > 1 or ranges or left_out:
        if args.watch or args.notebook:
            raise MrlError("--watch and --notebook are for one experiment's report: name one experiment")
        code = _compare(args, project, exps)
        warn_left_out(left_out)
        return 1 if left_out else code
    if args.watch:
        res = watch(project, exps[0], args.watch, outdir=args.outdir, notebook=args.notebook, index=args.index)
    else:
        res = analyze(project, exps[0], outdir=args.outdir, notebook=args.notebook)
        if args.index:
            res.index = _write_index(project, unreadable=res.index_unreadable)
    _print_result(res)
    _open(args, res.path)
    return 1 if res.errors or res.index_unreadable else 0


def _print_result(res: AnalyzeResult) -> None:
    if res.note:
        print(f"mrl: {res.note}", file=sys.stderr)
    for err in res.errors[:20]:
        print(f"mrl: error: {err}", file=sys.stderr)
    if len(res.errors) > 20:
        print(f"mrl: error: ... and {len(res.errors) - 20} more (see the report)", file=sys.stderr)
    print(res.path)
    if res.notebook:
        print(res.notebook)
    if res.index:
        print(res.index)
    if res.webdir:
        print(f"copied to {res.webdir}")
    for w in res.warnings:
        print(f"mrl: warning: {w}", file=sys.stderr)


def _open(args: argparse.Namespace, path: Path) -> None:
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            print(f"mrl: warning: found no web browser to open {path.resolve().as_uri()}", file=sys.stderr)


def _write_index(
    project: Project, out: Path | None = None, *, unreadable: list[str] | None = None, refresh: float | None = None
) -> Path:
    """The index (`mrl: warning:` lines for the experiments it lists as unreadable, which
    are added to `unreadable`: the command then exits 1); `refresh`: it reloads itself."""
    from metarunlog.report.pages import write_index

    return write_index(project, out, unreadable, refresh, publish=_publisher(project, "index.html"))


def _publisher(project: Project, name: str) -> Callable[[str, list[Any]], None] | None:
    """What writes a page about several experiments (the index, a comparison) into
    `analysis_webdir` as `<webdir>/<name>`, beside the reports copied there as
    `<webdir>/<experiment>/`: its links lead to those. A local webdir also gets the
    reports it links that are not there yet (made before analysis_webdir was set)."""
    webdir = project.cfg["analysis_webdir"]
    if not webdir:
        return None
    check_webdir(webdir)
    if not is_remote(webdir) and not _webdir_root(webdir, project.basedir).parent.is_dir():
        return None  # someone else's path: the report's own warning says it (not repeated per page)

    def publish(page: str, cards: list[Any]) -> None:
        if is_remote(webdir):
            with tempfile.TemporaryDirectory() as tmp:
                jsonio.write_text(Path(tmp) / name, page)
                _rsync(f"{tmp}/{name}", f"{webdir.rstrip('/')}/{name}", what=name)
            return
        root = _webdir_root(webdir, project.basedir)
        for card in cards:
            exp = project.experiment(card.id)
            if card.report and not (root / exp.name / exp.cfg["analysis_outfn"]).is_file():
                copy_to_webdir(exp.dir / exp.cfg["analysis_outdir"], webdir, exp.name, project.basedir)
        jsonio.make_folder(root, "check analysis_webdir in .mrl.cfg")
        jsonio.write_text(root / name, page)

    return publish


def _index_only(args: argparse.Namespace, project: Project) -> int:
    if args.watch or args.notebook:
        raise MrlError("--watch and --notebook are for one experiment's report: name it (mrl analyze 3 --watch 9)")
    out = None
    if args.outdir:  # the index is the page asked for: -outdir is where it goes (links relative to it)
        out = Path(args.outdir).resolve() / "index.html"
        jsonio.make_folder(out.parent, OUTDIR_HINT)
    unreadable: list[str] = []
    path = _write_index(project, out, unreadable=unreadable)
    print(path)
    _open(args, path)
    return 1 if unreadable else 0


def _compare(args: argparse.Namespace, project: Project, exps: list[Experiment]) -> int:
    from metarunlog.report.pages import comparison_path, report_path, write_comparison

    for exp in exps:  # the comparison links to each experiment's own report: write the missing ones
        if not report_path(exp).is_file():
            analyze(project, exp)
    out = Path(args.outdir).resolve() / comparison_path(project, exps).name if args.outdir else None
    if out is not None:
        jsonio.make_folder(out.parent, OUTDIR_HINT)
    publish = _publisher(project, comparison_path(project, exps).name)
    path, errors = write_comparison(project, exps, out, publish=publish)
    for err in errors[:20]:
        print(f"mrl: error: {err}", file=sys.stderr)
    print(path)
    unreadable: list[str] = []
    if args.index:
        print(_write_index(project, unreadable=unreadable))
    _open(args, path)
    return 1 if errors or unreadable else 0


@dataclass
class AnalyzeResult:
    path: Path  # the report (index.html)
    errors: list[str] = field(default_factory=list)  # user functions that failed, unreadable records
    notebook: Path | None = None
    webdir: str | None = None  # where the analysis folder was copied
    # a report.primary_metric no run has, an analysis_webdir in a missing folder
    warnings: list[str] = field(default_factory=list)
    note: str | None = None  # no sub-experiment has metrics: where mrl looked
    active: bool = False  # some sub-experiment is queued or running
    index: Path | None = None  # OUTDIR/index.html, when written too
    index_unreadable: list[str] = field(default_factory=list)  # experiments the index lists as unreadable
    rewrites: int = 1  # how many times --watch wrote the report


def analyze(
    project: Project,
    exp: Experiment | str | int | None = None,
    *,
    outdir: str | Path | None = None,
    notebook: bool = False,
    refresh: float | None = None,
) -> AnalyzeResult:
    """Write the report of `exp` (an Experiment, id, 'last', path, or None for the default).

    `refresh` (seconds, `--watch`): while some run is queued or running, the page reloads
    itself that often. Registered analysis functions missing from mrl_analyze.py, or an
    unusable analysis_webdir, raise MrlError before anything is written.
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
    jsonio.make_folder(out, OUTDIR_HINT if outdir else "check analysis_outdir in .mrl.cfg")
    log_lines = cfg["run"].get("log_tail", 20)
    with report.gc_paused():
        rep = report.build_report(exp, project.basedir, out, overview, per_sub, log_lines=log_lines)
        active = any(s.res.state.active for s in rep.subs)
        rep.refresh = refresh if refresh and active else None
        page = report.render(rep, project.basedir)
    path = out / cfg["analysis_outfn"]
    jsonio.write_text(path, page)
    from metarunlog.report.pages import report_settings, write_hook_digest, write_report_settings
    from metarunlog.results import metrics_hook_digest

    write_hook_digest(path, metrics_hook_digest(s.res for s in rep.subs))
    write_report_settings(path, report_settings(exp, project.basedir))
    said = [w for w in rep.warnings if w not in rep.logged]  # the readers' were printed as they arose
    res = AnalyzeResult(path, rep.errors, warnings=said, active=active)
    if rep.table.rows and not rep.table.metrics and not rep.table.errors:  # errors: each names its file
        from metarunlog.metrics import missing_extra
        from metarunlog.results import no_metrics_note

        res.note = None if missing_extra(rep.warnings) else no_metrics_note(exp, project.basedir)
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


def watch(
    project: Project,
    exp: Experiment,
    seconds: float,
    *,
    outdir: str | Path | None = None,
    notebook: bool = False,
    index: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> AnalyzeResult:
    """`--watch`: rewrite the report (and the index) every `seconds` while some run is
    queued or running; the last one, written once nothing is, no longer reloads. ^C
    writes that last one too, then stops (exit 130)."""
    rewrites = 0
    while True:
        exp = project.load_exp(str(exp.id))  # a fresh record each time
        try:
            res = analyze(project, exp, outdir=outdir, notebook=notebook, refresh=seconds)
            rewrites += 1
            if index:  # reloads itself too while runs are active, as the report does
                refresh = seconds if res.active else None
                res.index = _write_index(project, unreadable=res.index_unreadable, refresh=refresh)
            if not res.active:
                res.rewrites = rewrites
                return res
            print(f"mrl: {jsonio.now()[11:19]} wrote {res.path}; runs active, again in {seconds:g} s", file=sys.stderr)
            sleep(seconds)
        except KeyboardInterrupt:
            if rewrites:  # a reloading page is out there: leave one that no longer reloads
                _last_page(project, exp, outdir, index)
            # else the ^C came in the first report, perhaps inside a library's import: a
            # second try would meet that half-imported library, and there is no page to stop
            raise


def _last_page(project: Project, exp: Experiment, outdir: str | Path | None, index: bool) -> None:
    """`--watch`'s page (and index) once it stops: no more reloading. Ending on a ^C, a
    failure here is one warning line; the ^C still ends the command."""
    try:
        analyze(project, exp, outdir=outdir)
        if index:
            _write_index(project)
    except (MrlError, OSError) as e:
        print(f"mrl: warning: the report still reloads itself: writing its last page failed: {e}", file=sys.stderr)


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


def _rsync(source: str, target: str, *, what: str) -> None:
    proc = subprocess.run(
        ["rsync", "-a", "--chmod=a+rX", source, target], capture_output=True, text=True, errors="replace"
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise MrlError(
            f"{what} is written, but copying it to {target} failed (rsync: {last}); "
            "check analysis_webdir and that you can ssh to the host"
        )


def copy_to_webdir(outdir: Path, webdir: str, exp_name: str, basedir: Path) -> str:
    """Copy the analysis folder to `<webdir>/<exp_name>/` (rsync for host:path); the target.

    A relative local webdir is relative to the project's basedir.
    """
    target = f"{webdir.rstrip('/')}/{exp_name}"
    if is_remote(webdir):
        _rsync(f"{outdir}/", f"{target}/", what="the report")
        return target
    dest = _webdir_root(webdir, basedir) / exp_name
    try:
        shutil.copytree(outdir, dest, dirs_exist_ok=True)
    except OSError as e:
        raise MrlError(f"the report is written, but copying it to {dest} failed: {e}; check analysis_webdir") from e
    return str(dest)
