"""The Report as one self-contained HTML page: bokeh embedded once, each section rendered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from metarunlog import __version__, jsonio, plugins, results
from metarunlog import render as jinja
from metarunlog.errors import MrlError
from metarunlog.report import bk, registry
from metarunlog.report.model import Report

PAGE_TEMPLATE = "report.html"


@dataclass
class Shown:
    """A section as the page shows it: `report.html` loops over these, `_header.html` links them."""

    id: str
    nav: str
    nav_class: str
    html: Markup


def environment(basedir: Path | None) -> Any:
    """The report's Jinja environment (render.report_environment), with the `fmt` filter and
    the templates that registered sections carry as text."""
    inline = {s.template: s.source for s in registry.registered() if s.source is not None}
    return jinja.report_environment(basedir, {"fmt": results.format_value}, inline)


def render(rep: Report, basedir: Path | None = None) -> str:
    """The report as one HTML page (bokeh's JS/CSS inlined once when there are plots)."""
    env = environment(basedir)
    own = _page_context(rep, *embed(rep.models, rep.errors))
    # Every section's variables are also page variables: templates written before the
    # registry (a user's copy of report.html or _header.html) read them by name. The
    # page's own (`done`, `description`, `errors`, `record`...) win: a section (one
    # registered by a plugin) cannot make the header say what the records do not.
    page: dict[str, Any] = {}
    for context in rep.contexts.values():
        page.update(context)
    page.update(own)
    shown = []
    for section in registry.registered():
        if section.id in rep.contexts:
            html = _render_section(env, section, {**page, **rep.contexts[section.id], "section": section})
            if html.strip():
                shown.append(Shown(section.id, section.nav, section.nav_class, Markup(html)))
    return jinja.render_page(env, PAGE_TEMPLATE, {**page, "sections": shown})


def embed(models: dict[str, Any], errors: list[str]) -> tuple[Markup, Markup, dict[str, Markup], dict[str, str]]:
    """Bokeh: (inlined JS+CSS, the one script, div per model key, key -> why it failed).
    A model bokeh cannot embed is left out and named in `errors`."""
    if not models:
        return Markup(""), Markup(""), {}, {}
    models, failed = dict(models), {}
    try:
        script, divs, head = components(models)
    except Exception:  # a user's model that bokeh cannot serialise: find it, embed the rest
        for key, model in list(models.items()):
            try:
                components({key: model})
            except Exception as e:
                failed[key] = f"bokeh cannot embed this model: {type(e).__name__}: {e}"
                del models[key]
                errors.append(f"bokeh model {key}: {failed[key]}")
        script, divs, head = components(models) if models else ("", {}, "")
    return Markup(head), Markup(script), {k: Markup(v) for k, v in divs.items()}, failed


def components(models: dict[str, Any]) -> tuple[str, dict[str, str], str]:
    """(script, div per key, the bokeh JS+CSS these models need): what
    `bokeh.embed.components` and `bundle_for_objs_and_resources` give, for a fraction of
    the time on a report's ~1,000 models. Those walk every model of the graph about ten
    times (a document recomputed after each root added, validation, a search for Python
    callbacks, the bundle's search for widgets); here the roots go into one Document at
    once (one walk), whose model set also picks the bundles, and then it is serialised.
    Models already in a Document (a user's, shown elsewhere) go through bokeh's own path.
    """
    from bokeh.embed import components as bokeh_components

    roots = list(models.values())
    if any(m.document is not None for m in roots):
        script, divs = bokeh_components(models)
        return script, divs, _bokeh_resources(roots)
    from bokeh.document import Document
    from bokeh.embed.bundle import Script, bundle_for_objs_and_resources
    from bokeh.embed.elements import script_for_render_items
    from bokeh.embed.util import RenderItem
    from bokeh.util.serialization import make_globally_unique_css_safe_id, make_globally_unique_id

    doc = Document()
    try:
        with bk.lean_models(), doc.models.freeze():  # one recompute of the model graph, not one per root
            for m in roots:
                doc.add_root(m)
        docid = make_globally_unique_id()
        ids = {m: make_globally_unique_css_safe_id() for m in roots}
        item = RenderItem(docid, roots=ids)
        bundle = bundle_for_objs_and_resources(None, None)
        with bk.lean_models():
            data = doc.to_json(deferred=False)
        bundle.add(Script(script_for_render_items({docid: data}, [item])))
        script = bundle.scripts(tag=True)
        divs = [_root_div(r) for r in item.roots]  # type: ignore[assignment]
        head = _bokeh_resources([_Known(set(doc.models))])
    finally:
        doc.clear()  # the models go back to no document: a later page may embed them again
    return script, dict(zip(models, divs, strict=True)), head


class _Known:
    """Stands for a set of models whose graph is already walked (`doc.models`): bokeh's
    bundle asks each object for its references."""

    def __init__(self, models: set[Any]) -> None:
        self.models = models

    def references(self) -> set[Any]:
        return self.models


def _root_div(root: Any) -> str:
    from bokeh.core.templates import MACROS, ROOT_DIV

    return str(ROOT_DIV.render(root=root, macros=MACROS))


def _bokeh_resources(models: list[Any]) -> str:
    from bokeh.resources import INLINE

    try:  # only the bokeh bundles these models need (no widgets/tables/mathjax for plain plots)
        from bokeh.embed.bundle import bundle_for_objs_and_resources

        return "\n".join(bundle_for_objs_and_resources(models, INLINE))
    except Exception:
        return str(INLINE.render())


def _render_section(env: Any, section: registry.Section, context: dict[str, Any]) -> str:
    """A section's HTML; a template error in a section registered from outside mrl is
    that plugin's error (one line naming the section), not a bug in mrl."""
    try:
        return jinja.render_page(env, section.template, context)
    except MrlError:
        raise
    except Exception as e:
        if not plugins.is_foreign(section.context):
            raise
        where = f"report section {section.id!r} ({plugins.module_of(section.context)}), template {section.template}"
        raise jinja.template_error(
            e, lambda f, line: f"{where} line {line}" if line else where, error=plugins.PluginError
        ) from e


def _page_context(
    rep: Report, head: Markup, script: Markup, divs: dict[str, Markup], failed: dict[str, str]
) -> dict[str, Any]:
    """What every template sees, whichever section it renders."""
    exp, record = rep.exp, rep.exp.record
    return {
        "project": rep.project_name,
        "exp": exp,
        "exp_name": exp.name,
        "record": record,
        "description": str(record.get("description") or ""),
        "date": str(record.get("timestamp") or "")[:10],
        # Done as `mrl info` says (.mrl.done, which users also touch by hand), or every run done.
        "done": exp.is_done or (bool(rep.subs) and all(s.res.state.value == "done" for s in rep.subs)),
        "varying": rep.varying,
        "goals": rep.goals,
        "errors": rep.errors,
        "bokeh_head": head,
        "bokeh_script": script,
        "bokeh_divs": divs,
        "bokeh_failed": failed,
        "refresh": rep.refresh,  # seconds: the page reloads itself (--watch, while runs are active)
        "generated": jsonio.now(),
        "version": __version__,
    }
