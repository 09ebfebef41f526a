"""`mrl analyze`'s report: sections -> one self-contained HTML file.

    build.py      read the experiment, call the user's functions and each section's
                  context function: a Report (model.py)
    registry.py   the section registry: `@section(id, template, ...)` on a context function
    sections.py   the built-in sections, in page order (errors, git, notes, status, table,
                  plots, overview, subexps)
    table.py      the params + metrics table's best values and cell classes
    plots.py      bokeh figures of the metric curves (decimated)
    functions.py  the user's mrl_analyze.py functions and their rtypes
    reader.py     reading the data, partly in a forked child on large experiments
    html.py       embedding bokeh once and rendering the page (metarunlog/templates/)

Safety: every string that comes from params, descriptions, logs or metric names goes
through Jinja autoescaping (or markupsafe.escape); only the user's own notes (markdown)
and what their analysis functions return as `text`/`html` reach the page as markup.
Bokeh's JS and CSS are inlined once, so the file opens offline from `file://`.
Heavy libraries (bokeh, pandas, markdown, numpy) are imported inside the functions.
"""

from __future__ import annotations

from metarunlog.report import sections  # noqa: F401  (registers the built-in sections)
from metarunlog.report.build import build_report, gc_paused
from metarunlog.report.functions import RTYPES, UserFunction, call_function, markdown_html, user_functions
from metarunlog.report.html import PAGE_TEMPLATE, environment, render
from metarunlog.report.model import FunctionOutput, Piece, Plot, Report, SubSection
from metarunlog.report.plots import POINTS_PER_PLOT, decimate, decimate_rows
from metarunlog.report.reader import read_results
from metarunlog.report.registry import Section, register, registered, section, unregister

__all__ = [
    "PAGE_TEMPLATE",
    "POINTS_PER_PLOT",
    "RTYPES",
    "FunctionOutput",
    "Piece",
    "Plot",
    "Report",
    "Section",
    "SubSection",
    "UserFunction",
    "build_report",
    "call_function",
    "decimate",
    "decimate_rows",
    "environment",
    "gc_paused",
    "markdown_html",
    "read_results",
    "register",
    "registered",
    "render",
    "section",
    "unregister",
    "user_functions",
]
