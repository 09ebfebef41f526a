"""The Report as one self-contained HTML page: bokeh embedded once, each section rendered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from metarunlog import __version__, jsonio, results
from metarunlog import render as jinja
from metarunlog.report import registry
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
    page = _page_context(rep, *embed(rep.models, rep.errors))
    # Every section's variables are also page variables: templates written before the
    # registry (a user's copy of report.html or _header.html) read them by name.
    for context in rep.contexts.values():
        page.update(context)
    shown = []
    for section in registry.registered():
        if section.id in rep.contexts:
            html = jinja.render_page(env, section.template, {**page, **rep.contexts[section.id], "section": section})
            if html.strip():
                shown.append(Shown(section.id, section.nav, section.nav_class, Markup(html)))
    return jinja.render_page(env, PAGE_TEMPLATE, {**page, "sections": shown})


def embed(models: dict[str, Any], errors: list[str]) -> tuple[Markup, Markup, dict[str, Markup], dict[str, str]]:
    """Bokeh: (inlined JS+CSS, the one script, div per model key, key -> why it failed).
    A model bokeh cannot embed is left out and named in `errors`."""
    if not models:
        return Markup(""), Markup(""), {}, {}
    from bokeh.embed import components

    models, failed = dict(models), {}
    try:
        script, divs = components(models)
    except Exception:  # a user's model that bokeh cannot serialise: find it, embed the rest
        for key, model in list(models.items()):
            try:
                components(model)
            except Exception as e:
                failed[key] = f"bokeh cannot embed this model: {type(e).__name__}: {e}"
                del models[key]
                errors.append(f"bokeh model {key}: {failed[key]}")
        script, divs = components(models) if models else ("", {})
    return (
        Markup(_bokeh_resources(list(models.values()))),
        Markup(script),
        {k: Markup(v) for k, v in divs.items()},
        failed,
    )


def _bokeh_resources(models: list[Any]) -> str:
    from bokeh.resources import INLINE

    try:  # only the bokeh bundles these models need (no widgets/tables/mathjax for plain plots)
        from bokeh.embed.bundle import bundle_for_objs_and_resources

        return "\n".join(bundle_for_objs_and_resources(models, INLINE))
    except Exception:
        return str(INLINE.render())


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
