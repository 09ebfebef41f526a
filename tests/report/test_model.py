"""metarunlog/report/model.py: the Report a section's context function gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metarunlog.report import Report
from tests.helpers.records import grid_exp


def report(project: Path) -> Report:
    from metarunlog.results import Table

    return Report(grid_exp(project), "proj", Table([], [], []), [])


def test_add_model_keeps_each_bokeh_model_under_a_key_of_its_own(project: Path) -> None:
    from bokeh.plotting import figure

    rep = report(project)
    first, second = figure(), figure()
    keys = [rep.add_model(first, "acme"), rep.add_model(second, "acme"), rep.add_model(figure(), "other")]
    assert keys == ["acme0", "acme1", "other0"]
    assert rep.models["acme0"] is first and rep.models["acme1"] is second


@pytest.mark.parametrize("thing", ["<div>a figure</div>", {"type": "figure"}, None])
def test_add_model_refuses_what_is_no_bokeh_model_where_it_is_called(project: Path, thing: Any) -> None:
    rep = report(project)
    with pytest.raises(TypeError, match=r"expected a bokeh model \(figure, layout\.\.\.\), got "):
        rep.add_model(thing, "acme")
    assert rep.models == {}
