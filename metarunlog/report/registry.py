"""The report's section registry: the page shows the registered sections, in order.

A section is an id (its anchor, `#id`), a template and a context function. `build_report`
calls each context function with the Report (data read, user functions called) and keeps
what it returns; the page renders each section's template with the page's variables plus
that context, and leaves out a section whose context is None or whose template renders to
nothing but whitespace (and its link in the header with it). Registering a section from
any module is enough to have it on the page:

    from metarunlog.report.registry import section

    @section("summary", "_summary.html", nav="summary", after="errors")
    def summary(rep: Report) -> dict[str, Any] | None:
        return {"best": ...}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metarunlog import plugins

if TYPE_CHECKING:
    from metarunlog.report.model import Report

Context = Callable[["Report"], "Mapping[str, Any] | None"]


@dataclass(frozen=True)
class Section:
    """One part of the report page."""

    id: str  # unique; the anchor of the section (`<section id="...">` in its template)
    template: str  # the template that renders it: shipped, or in mrl_templates/ (which wins)
    context: Context  # Report -> the template's own variables, or None to leave it out
    nav: str = ""  # the text of its link in the page header ("" = no link)
    nav_class: str = ""  # a CSS class for that link
    source: str | None = None  # the template's text, for a section whose template ships no file


_SECTIONS: list[Section] = []


def register(section: Section, *, before: str | None = None, after: str | None = None) -> Section:
    """Add `section` to the page: before or after the section with that id, else last.

    A section with the id of a registered one replaces it (in its place, unless `before`
    or `after` says where).
    """
    old = next((i for i, s in enumerate(_SECTIONS) if s.id == section.id), None)
    if old is not None:
        del _SECTIONS[old]
    if before is not None or after is not None:
        anchor = _index(before if before is not None else str(after))
        _SECTIONS.insert(anchor if before is not None else anchor + 1, section)
    else:
        _SECTIONS.insert(len(_SECTIONS) if old is None else old, section)
    return section


def section(
    id: str,
    template: str,
    *,
    nav: str = "",
    nav_class: str = "",
    source: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> Callable[[Context], Context]:
    """Decorator: register the decorated function as the context function of a section."""

    def decorate(context: Context) -> Context:
        register(Section(id, template, context, nav, nav_class, source), before=before, after=after)
        return context

    return decorate


def unregister(id: str) -> None:
    """Take the section with this id off the page (no error when there is none)."""
    _SECTIONS[:] = [s for s in _SECTIONS if s.id != id]


def registered() -> list[Section]:
    """The sections in page order."""
    plugins.load_deferred()
    return list(_SECTIONS)


def _index(id: str) -> int:
    for i, s in enumerate(_SECTIONS):
        if s.id == id:
            return i
    raise KeyError(f"no report section {id!r}; the sections are {', '.join(s.id for s in _SECTIONS)}")
