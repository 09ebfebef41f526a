"""report/bk.py's lean_models(): the same page as bokeh's own way of making and serialising models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metarunlog import report
from metarunlog.report import bk, html
from tests.helpers.records import done, make_exp
from tests.report.test_html import doc_json


def _exp(project: Path, lrs: int) -> object:
    """Repeats (means, bands, hidden runs), a categorical and a numeric factor (effects,
    heatmap), a run without metrics; over 20 combinations: lines grouped by colour."""
    subs = []
    for i, (opt, lr, seed) in enumerate((o, lr, s) for o in ("adam", "sgd") for lr in range(lrs) for s in range(2)):
        loss = [{"step": s, "loss": (lr + 1) / (s + 1) + seed * 0.01, "acc": s / 10} for s in range(30)]
        subs.append({"params": {"opt": opt, "lr": lr, "seed": seed}, "status": done(), "jsonl": loss if i else []})
    return make_exp(project, subs)


def _page_json(exp: object, project: Path) -> str:
    rep = report.build_report(exp, project, exp.dir / "analysis")  # type: ignore[attr-defined]
    script, _, _ = html.components(rep.models)
    text = str(sorted(doc_json(script).values(), key=str))
    ids: dict[str, str] = {}  # model ids count up from wherever the process is: number them in order
    return re.sub(r"'(p\d+)'", lambda m: ids.setdefault(m.group(1), f"'id{len(ids)}'"), text)


@pytest.mark.parametrize(("lrs", "band"), [(3, "'VArea'"), (11, "'Patch'")])
def test_a_report_made_lean_is_the_same_page_as_bokeh_makes_it(project: Path, monkeypatch, lrs, band) -> None:  # noqa: ANN001
    if not bk._lean_applies():
        pytest.skip("lean_models() does nothing with this bokeh")
    exp = _exp(project, lrs)
    lean = _page_json(exp, project)
    monkeypatch.setattr(bk, "LEAN_BOKEH", ((0, 0), (0, 0)))  # bokeh's own code only
    assert _page_json(exp, project) == lean
    assert lean.count("'GlyphRenderer'") > 20 and band in lean and "'Rect'" in lean  # curves, effects, heatmap


def test_lean_models_is_undone_on_leaving_even_after_an_error_and_nests() -> None:
    from bokeh.core.has_props import HasProps
    from bokeh.model import util

    before = (HasProps.__init__, HasProps.properties_with_values, util.visit_immediate_value_references)
    with pytest.raises(ZeroDivisionError), bk.lean_models():
        with bk.lean_models():
            pass
        assert bk._lean_depth == (1 if bk._lean_applies() else 0)
        1 / 0  # noqa: B018
    assert (HasProps.__init__, HasProps.properties_with_values, util.visit_immediate_value_references) == before


def test_a_model_missing_a_required_value_still_fails_to_serialise() -> None:
    from bokeh.core.property.descriptors import UnsetValueError
    from bokeh.core.serialization import Serializer
    from bokeh.models import GlyphRenderer

    with bk.lean_models():
        renderer = GlyphRenderer()  # its data_source and glyph are required
        with pytest.raises(UnsetValueError):
            Serializer().encode(renderer)
