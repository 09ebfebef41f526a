"""The report's built-in sections, in page order: each a context function registered with
its template (`metarunlog/templates/_<id>.html`). A new section is a function here (or in
any imported module) decorated with `@section(...)`, plus its template.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

from metarunlog import jsonio
from metarunlog.experiment import DIFF, Experiment
from metarunlog.report import effects, plots, subexps, summary, table
from metarunlog.report.functions import markdown_html
from metarunlog.report.model import Report
from metarunlog.report.registry import registered, section

DIFF_MAX_CHARS = 200_000


def git_facts(exp: Experiment) -> dict[str, Any]:
    record = exp.record
    diff = ""
    if (exp.dir / DIFF).is_file():
        diff = (exp.dir / DIFF).read_text(encoding="utf-8", errors="replace")
        if len(diff) > DIFF_MAX_CHARS:
            diff = diff[:DIFF_MAX_CHARS] + f"\n... (cut: the whole diff is {exp.dir / DIFF})\n"
    return {
        "hash": str(record.get("gitHash") or ""),
        "description": str(record.get("gitDescription") or ""),
        "describe": str(record.get("gitDescribe") or ""),
        "branch": str(record.get("branch") or ""),
        "dirty": bool(record.get("dirty")),
        "diff": diff,
        "user": str(record.get("user") or ""),
        "host": str(record.get("host") or ""),
        "copied_from": str(record.get("copiedFrom") or ""),
    }


# A notes file that is only the heading `mrl new` wrote, in characters markdown leaves as
# they are: its HTML is known without importing markdown (55 ms of a report).
_PLAIN_HEADING = re.compile(r"\A#[ ]+([A-Za-z0-9.,:=+()/-]+(?:[ ]+[A-Za-z0-9.,:=+()/-]+)*)[ ]*\n*\Z")


def notes_html(exp: Experiment) -> Markup:
    """The notes file as HTML: the user's own markdown, rendered (not escaped)."""
    if jsonio.special_kind(exp.note_path):  # a FIFO: reading it would wait for a writer
        return Markup("")
    try:
        text = exp.note_path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return Markup("")
    plain = _PLAIN_HEADING.match(text)
    if plain:
        return Markup(f"<h1>{plain.group(1)}</h1>")
    heading = _new_heading(text, exp)
    if heading is None:
        return markdown_html(text)
    rest = text[len(heading) :]
    return Markup("<h1>{}</h1>\n").format(heading[2:].strip()) + (markdown_html(rest) if rest.strip() else Markup(""))


def _new_heading(text: str, exp: Experiment) -> str | None:
    """The heading `mrl new` wrote (`# NAME: DESCRIPTION`) when the notes start with it.

    The description is text typed on a command line, not markup: it is shown as it was
    typed, never through markdown (where `[x](javascript:...)` is a live link and
    `![x](URL)` loads a page), while the rest of the notes is the user's markdown (which
    may hold HTML on purpose)."""
    description = str(exp.record.get("description") or "")
    head = f"# {exp.name}: {description}"
    return head if description and text.startswith(head) else None


@section("summary", "_summary.html", nav="summary")
def summary_section(rep: Report) -> dict[str, Any]:
    return summary.context(rep)


@section("errors", "_errors.html", nav="errors", nav_class="nav-errors")
def errors(rep: Report) -> dict[str, Any]:
    # The same list: failures found while the page is assembled (bokeh) still show.
    return {"errors": rep.errors}


@section("git", "_git.html", nav="git")
def git(rep: Report) -> dict[str, Any]:
    return {"git": git_facts(rep.exp)}


@section("notes", "_notes.html", nav="notes")
def notes(rep: Report) -> dict[str, Any]:
    return {"notes": notes_html(rep.exp)}


@section("status", "_status.html", nav="status")
def status(rep: Report) -> dict[str, Any]:
    return {"counts": summary.state_counts(rep.subs), "n_subs": len(rep.subs), "expanded": rep.exp.is_expanded}


@section("table", "_table.html", nav="table")
def params_and_metrics(rep: Report) -> dict[str, Any]:
    best = table.best_values(rep.table, rep.goals)
    return {
        "table": rep.table,
        "best": best,
        "column_class": table.column_classes(rep.table, rep.varying),
        "table_cells": (cells := table.table_cells(rep.table, rep.varying, best)),
        "table_body": table.body_html(cells),
        **table.goal_lists(rep.table, rep.goals),
        "aggregated": table.aggregated_view(rep) if rep.axes.has_repeats else None,
    }


@section("effects", "_effects.html", nav="effects")
def effects_section(rep: Report) -> dict[str, Any] | None:
    return effects.context(rep)


@section("plots", "_plots.html", nav="plots")
def curves(rep: Report) -> dict[str, Any]:
    plots.add_plots(rep, [s.res for s in rep.subs])
    return {"plots": rep.plots, "repeats_in_plots": rep.axes.has_repeats}


@section("overview", "_overview.html", nav="overview")
def overview(rep: Report) -> dict[str, Any]:
    # `#funcname` links to an overview function, as in the original's page; a name that is
    # also a section's id gets `fn-` in front, so that ids stay unique.
    taken = {s.id for s in registered()}
    anchors = {fo.name: f"fn-{fo.name}" if fo.name in taken else fo.name for fo in rep.overview}
    return {"overview": rep.overview, "anchors": anchors}


@section("subexps", "_subexps.html", nav="sub-experiments")
def sub_experiments(rep: Report) -> dict[str, Any]:
    return {"subs": rep.subs, "subexp_bodies": [subexps.body(s, rep.varying) for s in rep.subs]}
