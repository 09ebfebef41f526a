"""Pages about several experiments: the comparison report (`mrl analyze 2 3`) and the index
of every experiment (`mrl analyze --index`, `OUTDIR/index.html`).

Both show each experiment as a card: its description, pinned commit, tags, counts by state,
the best value of its primary metric, and a link to its own report (marked stale when runs
changed since it was written). The comparison then shows one table over all runs (an
`exp` column, as `mrl table 2 3 --summary both`) and the curves coloured by experiment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import __version__, jsonio, results, selection
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.fmt import relative_url
from metarunlog.report import decide, summary
from metarunlog.report import table as report_table

log = logging.getLogger("metarunlog.report")  # `mrl` prints it as `mrl: warning: ...`

INDEX_CACHE = ".mrl.index.json"  # in OUTDIR: each experiment's card, valid while its files are unchanged
CARD_FORMAT = 3  # cards made by another rule (2: the default primary metric has a goal; 3: file keys) are remade


@dataclass
class Card:
    """One experiment as the index and the comparison show it."""

    name: str
    id: int
    description: str
    date: str
    commit: str
    describe: str
    branch: str
    dirty: bool
    tags: list[str]
    counts: list[tuple[str, int]]
    n_subs: int
    metric: str = ""  # its primary metric
    goal: str = ""
    best: float | None = None  # best value over training
    best_run: str = ""
    report: str = ""  # the report's path relative to the page ("" = not made)
    report_state: str = "none"  # "made" | "stale" | "none"
    active: bool = False  # some run is queued or running
    hook_digest: str = ""  # what mrl_analyze.py's metrics() returned, hashed (`results.metrics_hook_digest`)


def report_path(exp: Experiment) -> Path:
    return exp.dir / exp.cfg["analysis_outdir"] / exp.cfg["analysis_outfn"]


def _file_key(path: Path) -> list[int]:
    """[mtime_ns, size, inode] of a file or folder ([0, 0, 0]: none): a file rewritten in
    place within its filesystem's time step (a whole second on ext2/3 with small inodes,
    HFS+, two on FAT) keeps its mtime but mostly not its size, and one replaced by rename
    not its inode."""
    try:
        st = path.stat()
    except OSError:
        return [0, 0, 0]
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def signature(exp: Experiment, basedir: Path | None = None) -> list[list[int]]:
    """What changes when an experiment's runs or results do: the keys (`_file_key`) of its
    record, its folders (a status is written by rename), statuses, and every file its metrics
    readers read (nested ones too: a TensorBoard or Lightning folder, a `metrics.sources` glob,
    which a later evaluation may rewrite after the run ended), as `mrl table` would find them."""
    out = [_file_key(exp.dir / ".mrl")]
    try:
        subs = exp.sub_experiments()
        finder = results.finder_for(exp, basedir)
    except (OSError, MrlError):
        return out
    for sub in subs:
        out += [_file_key(sub.dir), _file_key(sub.dir / ".mrl.status")]
        out += [_file_key(f) for _, paths in finder.files(sub.dir) for f in paths]
    return out


def newest_ns(keys: list[list[int]]) -> int:
    """The latest modification time among a signature's files (0: none)."""
    return max((k[0] for k in keys), default=0)


def _hook_reads_metrics(basedir: Path) -> bool:
    """Whether `mrl_analyze.py` has a metrics() function: it may read any file, so no
    signature can prove a card made from it still true, and such cards are remade."""
    try:
        return results.user_metrics_function(basedir) is not None
    except MrlError:  # a broken mrl_analyze.py: the cards say why when they are made
        return True


def card_settings(exp: Experiment, basedir: Path) -> str:
    """What else decides a card than the experiment's files: the config keys that choose and
    read its metrics (report.primary_metric, metric_goals, metrics.sources...) and
    mrl_analyze.py (its metrics() and metric_goals). A change there remakes the card."""
    from metarunlog import hooks

    try:
        cfg = exp.cfg
        keys = {k: cfg.get(k) for k in ("report", "metrics", "metric_goals", "repeat_axes")}
    except MrlError as e:  # the card itself will say why
        keys = {"error": str(e)}
    keys["analyze"] = _file_key(basedir / hooks.ANALYZE_FILE)
    return json.dumps(keys, sort_keys=True, default=str)


def card_facts(exp: Experiment, basedir: Path) -> Card:
    """The card of one experiment, reading its results (best values, as `mrl table --summary both`)."""
    record = exp.record
    subs, _ = results.collect(exp, basedir=basedir, best=True)
    tab = results.make_table(subs, summary="both")
    goals = report_table.column_goals(tab, results.finder_for(exp, basedir).settings.goals)
    primary, _ = decide.primary_metric(tab, exp.cfg["report"].get("primary_metric"), goals)
    states = Counter(s.state.value for s in subs)
    card = Card(
        exp.name,
        exp.id,
        str(record.get("description") or ""),
        str(record.get("timestamp") or "")[:10],
        str(record.get("gitHash") or ""),
        str(record.get("gitDescribe") or ""),
        str(record.get("branch") or ""),
        bool(record.get("dirty")),
        selection.experiment_tags(exp),
        [(s, states[s]) for s in summary.STATE_ORDER if states[s]],
        len(subs),
        active=any(s.state.active for s in subs),
        hook_digest=results.metrics_hook_digest(subs),
    )
    if primary is not None:
        card.metric, card.goal = primary.name, primary.goal or ""
        best, _ = decide.best_runs(tab, primary)
        if best is not None:
            card.best, card.best_run = best.value, str(best.row["id"])
    return card


def unreadable_card(exp: Experiment, why: str) -> Card:
    """The card of an experiment whose record or results cannot be read: its id and why."""
    return Card(exp.name, exp.id, f"record cannot be read: {why}", "", "", "", "", False, [], [], 0)


def with_report(
    card: Card, exp: Experiment, page_dir: Path, basedir: Path | None = None, sig: list[list[int]] | None = None
) -> Card:
    """Link the card to the experiment's report: made, stale (runs changed or still going
    since it was written) or none (also when its config, which says where it goes, cannot be read).
    `sig`: the experiment's `signature` as the caller just took it (the index: not statted twice)."""
    try:
        path = report_path(exp)
    except MrlError:
        path = None
    if path is None or not path.is_file():
        card.report, card.report_state = "", "none"
        return card
    card.report = relative_url(path, page_dir)
    # a file whose mtime is the report's own may have been written after it, within the same
    # time step of the filesystem (whole seconds on some): no proof it is not, so stale
    written = _file_key(path)[0]
    changed = newest_ns(signature(exp, basedir) if sig is None else sig) >= written
    if basedir is not None:  # mrl_analyze.py edited since: its metrics(), metric_goals, sections
        from metarunlog import hooks

        changed = changed or _file_key(basedir / hooks.ANALYZE_FILE)[0] >= written
    # metrics() may read any file, so no mtime proves its values unchanged: compare them
    changed = changed or read_hook_digest(path) != card.hook_digest
    # the settings it was made with (.mrl.cfg, the project's or the experiment's; mrl_templates/)
    changed = changed or _read_beside(settings_path(path)) != report_settings(exp, basedir)
    card.report_state = "stale" if changed or card.active else "made"
    return card


# Keys of .mrl.cfg that change nothing a report shows: where things go, how runs are made.
# Every other key counts (a key mrl does not know may be read by mrl_analyze.py's functions).
NOT_SHOWN = frozenset(
    {
        "outdir",
        "singleExpFormat",
        "gitFailUntrackedDefault",
        "copyFiles",
        "confTemplFile",
        "analysis_outdir",
        "analysis_outfn",
        "analysis_webdir",
        "hooks",
        "snapshot",
    }
)
RUN_SHOWN = ("log_tail",)  # of the run block: the log lines each section shows


def report_settings(exp: Experiment, basedir: Path | None = None) -> str:
    """A hash of what decides a report besides the runs' files and mrl_analyze.py: the
    effective config (the project's .mrl.cfg, the pinned run block, EXPDIR/.mrl.cfg), less
    the keys in NOT_SHOWN, and the user's report templates (`mrl_templates/`: each file's
    key). `mrl analyze` keeps it beside the report; the index marks the report stale when
    it differs (or is missing: a report an older mrl made)."""
    from metarunlog.render import USER_TEMPLATES

    try:
        cfg = exp.cfg
        keys: dict[str, Any] = {k: v for k, v in cfg.items() if k not in NOT_SHOWN and k != "run"}
        run = cfg.get("run") if isinstance(cfg.get("run"), dict) else {}
        keys["run"] = {k: run.get(k) for k in RUN_SHOWN}
    except MrlError as e:
        keys = {"error": str(e)}
    if basedir is not None:
        folder = basedir / USER_TEMPLATES
        with contextlib.suppress(OSError):
            keys[f"({USER_TEMPLATES})"] = {str(f.relative_to(folder)): _file_key(f) for f in sorted(folder.rglob("*"))}
    text = json.dumps(keys, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def settings_path(report: Path) -> Path:
    """Beside a report: the hash of the settings it was made with (`report_settings`)."""
    return report.with_name(f".{report.name}.mrl-settings")


def write_report_settings(report: Path, digest: str) -> None:
    """After the report is written (a crash before leaves the old one: it can only say stale)."""
    jsonio.write_text(settings_path(report), digest + "\n")


def _read_beside(path: Path) -> str:
    """A hash kept beside a report; "" when there is none, "?" when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except (OSError, ValueError):
        return "?"


def hook_digest_path(report: Path) -> Path:
    """Beside a report: the hash of what metrics() returned for it (`results.metrics_hook_digest`)."""
    return report.with_name(f".{report.name}.mrl-metrics")


def read_hook_digest(report: Path) -> str:
    """What `write_hook_digest` left beside `report`; "" when none (no metrics() made it);
    an unreadable one is no proof of anything ("?": stale)."""
    return _read_beside(hook_digest_path(report))


def write_hook_digest(report: Path, digest: str) -> None:
    """After the report is written: the hash of the metrics() values it shows, or none.
    A crash before this leaves the old one, which can only call the new report stale."""
    path = hook_digest_path(report)
    if digest:
        jsonio.write_text(path, digest + "\n")
    else:
        with contextlib.suppress(OSError):  # left: it can only call the report stale
            path.unlink()


# -- the index -----------------------------------------------------------------------------------


def index_cards(project: Any, page_dir: Path, unreadable: list[str] | None = None) -> list[Card]:
    """Every experiment's card, newest first; unchanged experiments come from OUTDIR's cache.
    One that cannot be read gets a card saying why, a logged warning and a line in `unreadable`."""
    cache_path = project.outdir / INDEX_CACHE
    # Racy entries (as git's index has): a card whose files' newest mtime is not older than
    # the cache file's own was read within one time step of the filesystem before the cache
    # was written, and a later write in that step keeps the mtime: such a card is remade.
    cached_at = _file_key(cache_path)[0]
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
        if cache.get("version") != f"{__version__}+{CARD_FORMAT}":
            cache = {}
    except (OSError, ValueError, RecursionError, AttributeError):  # gone, garbage, not an object: rebuilt
        cache = {}
    entries = cache.get("experiments", {}) if isinstance(cache.get("experiments"), dict) else {}
    fresh: dict[str, Any] = {}
    cards = []
    hook = _hook_reads_metrics(project.basedir)
    from metarunlog import hooks

    analyze_ns = _file_key(project.basedir / hooks.ANALYZE_FILE)[0]
    for exp in reversed(project.experiments()):
        if not (exp.dir / ".mrl").is_file():
            continue  # being created by `mrl new`
        sig, settings = signature(exp, project.basedir), card_settings(exp, project.basedir)
        old = entries.get(exp.name) or {}
        try:
            racy = max(newest_ns(sig), analyze_ns) >= cached_at
            same = old.get("signature") == sig and old.get("settings") == settings and not racy
            if same and not hook and not old["card"].get("active"):
                card = Card(**{**old["card"], "counts": [tuple(c) for c in old["card"]["counts"]]})
            else:
                card = card_facts(exp, project.basedir)
        except (MrlError, TypeError, KeyError) as e:
            # "every experiment": an unreadable one is listed with why, not left out
            log.warning(f"index: {exp.name}: {e}")
            if unreadable is not None:
                unreadable.append(f"{exp.name}: {e}")
            cards.append(with_report(unreadable_card(exp, str(e)), exp, page_dir, project.basedir, sig))
            continue
        fresh[exp.name] = {"signature": sig, "settings": settings, "card": asdict(card)}
        cards.append(with_report(card, exp, page_dir, project.basedir, sig))
    with contextlib.suppress(OSError):  # a read-only outdir: no cache, the index is still made
        jsonio.write_json(cache_path, {"version": f"{__version__}+{CARD_FORMAT}", "experiments": fresh})
    return cards


Publish = Callable[[str, list[Card]], None]  # a page's text for analysis_webdir, the cards it links


def published(cards: list[Card], cfg: Any) -> list[Card]:
    """The cards as a page in `analysis_webdir` links them: each report is at
    `<webdir>/<experiment>/<analysis_outfn>` there (the analysis folder is copied as
    `<experiment>/`), not at OUTDIR's `<experiment>/<analysis_outdir>/...`."""
    return [
        dataclasses.replace(c, report=relative_url(f"{c.name}/{cfg['analysis_outfn']}", Path())) if c.report else c
        for c in cards
    ]


def write_index(
    project: Any,
    out: Path | None = None,
    unreadable: list[str] | None = None,
    refresh: float | None = None,
    publish: Publish | None = None,
) -> Path:
    """Write `OUTDIR/index.html` (or `out`): every experiment, newest first; those that
    cannot be read are listed with why, and added to `unreadable` (`mrl analyze --index`
    then exits 1, as `mrl table --all` does). `refresh` (seconds, `--watch` while runs are
    active): the page reloads itself, as the report does. `publish` gets the page as
    `analysis_webdir` holds it (its links to the reports there)."""
    from metarunlog.report import html

    path = out or project.outdir / "index.html"
    cards = index_cards(project, path.parent, unreadable)
    env = html.environment(project.basedir)
    context = {
        "project": project.cfg["name"] or project.basedir.name,
        "cards": cards,
        "generated": jsonio.now(),
        "version": __version__,
        "refresh": refresh,
        "goal_text": summary.GOAL_TEXT,
    }
    from metarunlog import render as jinja

    jsonio.write_text(path, jinja.render_page(env, "index.html", context))
    if publish is not None:
        publish(jinja.render_page(env, "index.html", {**context, "cards": published(cards, project.cfg)}), cards)
    return path


# -- the comparison --------------------------------------------------------------------------------


@dataclass
class Comparison:
    """What `compare.html` shows, and the bokeh models it embeds."""

    project: str
    cards: list[Card]
    table: results.Table
    subs: list[results.SubResult]
    goals: dict[str, str]
    errors: list[str] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)
    plots: list[Any] = field(default_factory=list)
    repeats: bool = False  # some combination has several runs: its curves are means with bands
    warnings: list[str] = field(default_factory=list)  # the readers' (logged as they arose), each once


def comparison_path(project: Any, exps: list[Experiment]) -> Path:
    """`OUTDIR/compare-0002-0003.html`; over 6 experiments the first 3, the last, the count
    and a hash of all their names (`compare-0001-0002-0003-to-0009-7exps-<12 hex>.html`), so
    two selections sharing those never write over each other's page and the same one keeps its name."""
    names = [e.name for e in exps]
    if len(names) > 6:
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
        names = [*names[:3], "to", names[-1], f"{len(exps)}exps", digest]
    return project.outdir / f"compare-{'-'.join(names)}.html"


def build_comparison(project: Any, exps: list[Experiment], page_dir: Path) -> Comparison:
    """Read every experiment (curves too) into one table and one set of curves."""
    from metarunlog.report.reader import read_results

    subs: list[results.SubResult] = []
    errors: list[str] = []
    warnings: list[str] = []  # a cut metrics.json, skipped jsonl lines, a missing extra: as the report's summary
    cards = []
    for exp in exps:
        res, errs = read_results(exp, project.basedir, log_lines=None, warnings=warnings)
        subs += res
        errors += [f"{exp.name}: {e}" for e in errs]
        cards.append(with_report(card_facts(exp, project.basedir), exp, page_dir, project.basedir))
    tab = results.make_table(subs, all_params=True, errors=errors, summary="both", exp_column=True)
    tab.repeat_params = results.repeat_params(exps)
    goals = report_table.column_goals(tab, results.finder_for(exps[-1], project.basedir).settings.goals)
    name = project.cfg["name"] or project.basedir.name
    return Comparison(name, cards, tab, subs, goals, errors, warnings=warnings)


def add_comparison_curves(cmp: Comparison) -> None:
    """The curves of every experiment, coloured by experiment (combinations dashed within)."""
    from metarunlog.report import plots
    from metarunlog.report.model import Plot

    varying = results.varying_params(cmp.subs)
    repeat = set(cmp.table.repeat_params)
    factors = [p for p in varying if p not in repeat]
    lay = plots.layout(cmp.subs, factors, varying, None, key_of=lambda s: s.exp, prefix_of=lambda s: s.exp)
    cmp.repeats = lay.repeats
    per_metric: dict[str, dict[int, Any]] = {}
    for i, res in enumerate(cmp.subs):
        for metric, (xkey, xs, ys) in (res.curves or {}).items():
            per_metric.setdefault(metric, {})[i] = (res, xkey, xs, ys)
    for i, (metric, lines) in enumerate(per_metric.items()):
        key = f"plot{i}"
        cmp.models[key] = plots.figure_of(metric, lines, lay)
        cmp.plots.append(Plot(metric, key, len(lines)))


def render_comparison(cmp: Comparison, basedir: Path) -> str:
    from metarunlog import render as jinja
    from metarunlog.report import html

    head, script, divs, failed = html.embed(cmp.models, cmp.errors)
    varying = results.varying_params(cmp.subs)
    best = report_table.best_values(cmp.table, cmp.goals)
    context = {
        "project": cmp.project,
        "cards": cmp.cards,
        "table": cmp.table,
        "best": best,
        "column_class": report_table.column_classes(cmp.table, varying),
        "table_cells": (cells := report_table.table_cells(cmp.table, varying, best)),
        "table_body": report_table.body_html(cells),
        **report_table.goal_lists(cmp.table, cmp.goals),
        "aggregated": None,
        "plots": cmp.plots,
        "repeats_in_plots": cmp.repeats,
        "errors": cmp.errors,
        "warnings": cmp.warnings,
        "bokeh_head": head,
        "bokeh_script": script,
        "bokeh_divs": divs,
        "bokeh_failed": failed,
        "generated": jsonio.now(),
        "version": __version__,
        "refresh": None,
        "goal_text": summary.GOAL_TEXT,
        "exp_names": [c.name for c in cmp.cards],
    }
    return jinja.render_page(html.environment(basedir), "compare.html", context)


def write_comparison(
    project: Any, exps: list[Experiment], out: Path | None = None, publish: Publish | None = None
) -> tuple[Path, list[str]]:
    """Write the comparison report of `exps`; its path and the errors met. `publish` gets
    the page as `analysis_webdir` holds it (see `write_index`)."""
    from metarunlog.report.build import gc_paused

    path = out or comparison_path(project, exps)
    with gc_paused():
        cmp = build_comparison(project, exps, path.parent)
        add_comparison_curves(cmp)
        page = render_comparison(cmp, project.basedir)
        jsonio.write_text(path, page)
        if publish is not None:
            cards, cmp.cards = cmp.cards, published(cmp.cards, project.cfg)
            publish(render_comparison(cmp, project.basedir), cards)
    return path, cmp.errors
