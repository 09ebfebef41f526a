"""Read the experiment, call the user's functions, gather each section's context: a Report."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metarunlog import metrics, plugins, results
from metarunlog.experiment import Experiment
from metarunlog.report import decide, registry
from metarunlog.report.functions import UserFunction, call_function
from metarunlog.report.model import Report, SubSection
from metarunlog.report.reader import read_results
from metarunlog.report.table import column_goals
from metarunlog.results import SubResult


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a report is built and written: its ~1,000 bokeh
    models and 1,000 runs' records are live until the page is written, and Python's
    collector walked them (and every imported module) over and over, ~0.1 s of a 1,000-run
    report. What is garbage by the end is collected as usual afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            _into_oldest_generation()
            gc.enable()


def _into_oldest_generation() -> None:
    """Everything made while the collector was off goes to its oldest generation unwalked
    (freeze, then unfreeze): otherwise the first collection after `gc.enable()` walks all
    of it at once (~0.04 s). It is collected with that generation, as usual, later."""
    if gc.get_freeze_count() == 0:  # nothing frozen by anyone else, to be left as it is
        gc.freeze()
        gc.unfreeze()


def build_report(
    exp: Experiment,
    basedir: Path,
    outdir: Path,
    overview_fns: list[UserFunction] | None = None,
    subexp_fns: list[UserFunction] | None = None,
    log_lines: int = 20,
) -> Report:
    """Read the experiment, call the user's functions, then each registered section's
    context function (in page order): a Report ready for `html.render`."""
    reader_warnings: list[str] = []  # logged (stderr) as they arose; the summary shows them too
    subs, errors = read_results(exp, basedir, log_lines, reader_warnings)
    # The table of `mrl table --summary both --all-params`: last and best values per metric.
    tab = results.make_table(subs, all_params=True, errors=errors, summary="both")
    tab.repeat_params = results.repeat_params([exp])
    name = exp.cfg["name"] or basedir.name  # the project's `name`, as the original's title had
    rep = Report(exp, name, tab, [], errors=[f"table: {e}" for e in errors])
    rep.goals = column_goals(tab, results.finder_for(exp, basedir).settings.goals)
    rep.varying = results.varying_params(subs)
    rep.axes = decide.axes(subs, rep.varying, tab.repeat_params)
    wanted = exp.cfg["report"].get("primary_metric")
    rep.primary, warning = decide.primary_metric(tab, wanted, rep.goals)
    if rep.primary is not None:
        goals = metrics.settings(exp.cfg).goals
        rep.basis = decide.basis(rep.primary, wanted, goals, _own_cfg(exp), results.user_goals(basedir), exp.name)
    rep.warnings += [warning] if warning else []
    rep.warnings += reader_warnings
    rep.logged = reader_warnings
    _call_user_functions(rep, subs, outdir, overview_fns or [], subexp_fns or [])
    for section in registry.registered():
        context = _section_context(section, rep)
        if context is not None:
            rep.contexts[section.id] = context
    for res in subs:
        res.curves = None  # drawn by now; free the memory before the page is assembled
    return rep


def _own_cfg(exp: Experiment) -> dict[str, Any]:
    """The experiment's own `EXPDIR/.mrl.cfg` ({} without one; `exp.cfg` has read it already)."""
    from metarunlog.config import CFG_NAME, read_cfg_file
    from metarunlog.errors import MrlError

    try:
        return read_cfg_file(exp.dir / CFG_NAME) if (exp.dir / CFG_NAME).is_file() else {}
    except MrlError:
        return {}


def _section_context(section: registry.Section, rep: Report) -> dict[str, Any] | None:
    """What `section.context(rep)` gives its template; from a section registered outside mrl,
    an exception or a value that is no mapping is that plugin's error, not a bug in mrl."""
    what = f"report section {section.id!r}"
    with plugins.blamed(what, section.context), plugins.prints_to_stderr():
        context = section.context(rep)
    if context is None:
        return None
    if not isinstance(context, Mapping):
        kind = type(context).__name__
        raise plugins.PluginError(f"{what}: its context function returned a {kind}, not a dict or None")
    return dict(context)


def _call_user_functions(
    rep: Report,
    subs: list[SubResult],
    outdir: Path,
    overview: list[UserFunction],
    per_sub: list[UserFunction],
) -> None:
    single = rep.exp.is_expanded and rep.exp.is_single
    dparams = results.params_frame(subs) if (overview or per_sub) and subs else None
    ids = [s.name for s in subs]
    if subs and not single:
        for uf in overview:
            rep.overview.append(
                call_function(rep, uf, (str(rep.exp.dir), str(outdir), ids, dparams), outdir, f"overview {uf.name}")
            )
    for res in subs:
        section = SubSection(res, res.log_tail or [])
        for uf in per_sub:
            # The original called a one-job experiment's functions with Dparams None, id 'def'.
            args = (
                (str(res.dir), str(outdir), None, "def") if single else (str(res.dir), str(outdir), dparams, res.name)
            )
            section.functions.append(call_function(rep, uf, args, outdir, f"sub-experiment {res.name} {uf.name}"))
        rep.subs.append(section)
