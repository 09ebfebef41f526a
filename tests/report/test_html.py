"""report/html.embed: every figure of a page in one bokeh Document, serialised once."""

from __future__ import annotations

import json
import re


def figure(title: str):  # noqa: ANN201
    from bokeh.plotting import figure as bokeh_figure

    fig = bokeh_figure(title=title)
    fig.line([1, 2, 3], [3, 1, 2])
    return fig


def doc_json(script: str) -> dict:
    """The docs_json bokeh's script carries (a JSON string in single quotes)."""
    [text] = re.findall(r"const docs_json = '(.*?)';", script, re.S)
    return json.loads(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&#x27;", "'"))


def test_every_model_goes_into_one_document_with_a_div_each_and_the_bundle_it_needs() -> None:
    from metarunlog.report.html import embed

    models = {"plot0": figure("first"), "plot1": figure("second")}
    head, script, divs, failed = embed(models, errors := [])
    assert set(divs) == {"plot0", "plot1"} and failed == {} and errors == []
    [doc] = doc_json(script).values()
    assert len(doc["roots"]) == 2
    assert 'data-root-id="' + models["plot0"].id + '"' in divs["plot0"]
    assert "bokeh-widgets" not in head and "Bokeh" in head  # only the bundles plain plots need
    assert all(m.document is None for m in models.values())  # free to be embedded again
    assert set(embed(models, [])[2]) == {"plot0", "plot1"}


def test_a_model_already_in_a_document_and_one_bokeh_cannot_serialise() -> None:
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    from metarunlog.report.html import embed

    theirs = figure("the user's")
    Document().add_root(theirs)  # e.g. a user's function that also shows its figure
    bad = figure("broken")
    bad.renderers[0].data_source = ColumnDataSource({"x": [object()], "y": [1]})
    errors: list[str] = []
    _, script, divs, failed = embed({"plot0": figure("ours"), "user0": theirs, "user1": bad}, errors)
    assert set(divs) == {"plot0", "user0"} and set(failed) == {"user1"}
    assert any("user1" in e and "cannot embed" in e for e in errors)
    titles = [m["attributes"].get("text") for d in doc_json(script).values() for m in _all(d)]
    assert "ours" in titles and "the user's" in titles


def _all(value: object) -> list[dict]:
    """Every serialised model (a dict with type "object") inside `value`."""
    out = []
    if isinstance(value, dict):
        if value.get("type") == "object" and "attributes" in value:
            out.append(value)
        for v in value.values():
            out += _all(v)
    elif isinstance(value, list):
        for v in value:
            out += _all(v)
    return out
