"""report/build.py: the collector is paused while a report is built and written, and back after."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from metarunlog.main import main
from metarunlog.report import Section, gc_paused, register
from tests.helpers.records import grid_exp


def test_the_collector_is_paused_while_a_report_is_built_and_on_again_after(
    project: Path, restore_registry: None
) -> None:
    seen: list[bool] = []
    register(Section("probe", "_probe.html", lambda rep: seen.append(gc.isenabled()) or {}, source=""))
    grid_exp(project)
    assert gc.isenabled()
    assert main(["analyze"]) == 0
    assert seen == [False] and gc.isenabled()


def test_gc_paused_restores_the_collector_after_an_error_and_leaves_it_off_if_it_was() -> None:
    with pytest.raises(ZeroDivisionError), gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_what_gc_paused_made_is_left_unfrozen_and_someone_elses_frozen_objects_stay_frozen() -> None:
    with gc_paused():
        made = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() == 0 and gc.is_tracked(made)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            pass
        assert gc.get_freeze_count() == frozen > 0
    finally:
        gc.unfreeze()


_USER_CODE = """
import gc, os

def metrics(subExpDir):
    with open(os.path.join(subExpDir, "gc_seen"), "w") as f:
        f.write(str(gc.isenabled()))
    return None

def probe(subExpDir, outdir, Dparams, subExpId):
    return [("collector on: %s" % gc.isenabled(), "text", None)]
"""


def test_the_users_functions_run_with_the_collector_on(project: Path) -> None:
    # A function plotting with matplotlib per sub-experiment (the docs' example) leaves
    # ~2 MB of cyclic garbage a figure, that only the collector frees: paused around the
    # user's code, a 300-run report peaked at 780 MB instead of 210 MB.
    exp = grid_exp(project)
    (project / "mrl_analyze.py").write_text(_USER_CODE)
    (exp.dir / ".mrl.cfg").write_text('{"analysis_subexp": {"probe": []}}\n')
    assert main(["analyze"]) == 0
    page = (exp.dir / "analysis" / "index.html").read_text()
    assert "collector on: True" in page and "collector on: False" not in page
    assert {(d / "gc_seen").read_text() for d in exp.dir.iterdir() if (d / "gc_seen").exists()} == {"True"}
