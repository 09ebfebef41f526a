"""metarunlog/notebook.py: `mrl analyze --notebook` writes a valid notebook whose first cells
load the experiment through metarunlog.api, for any project folder name."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from metarunlog import jsonio, notebook
from metarunlog.project import Project
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.repo import REPO_ROOT


@pytest.fixture
def odd_project(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project moved to a folder whose name needs quoting in Python and escaping in HTML."""
    moved = tmp_path / 'it\'s "<b>" proj'
    os.rename(project, moved)
    monkeypatch.chdir(moved)
    return moved


def test_the_cells_are_a_title_the_loading_code_the_curves_and_hints(project: Path) -> None:
    exp = make_experiment(project, [{"lr": 0.1}], "true")
    kinds = [kind for kind, _ in notebook.cells(exp, project)]
    assert kinds == ["markdown", "code", "code", "markdown"]
    _, load = notebook.cells(exp, project)[1]
    assert "import metarunlog.api as mrl" in load and "mrl.load_table(EXP, basedir=BASEDIR)" in load
    for kind, source in notebook.cells(exp, project):
        if kind == "code":
            ast.parse(source)  # every code cell is Python


def test_the_title_escapes_the_folder_name_and_description(odd_project: Path) -> None:
    exp = make_experiment(odd_project, [{"lr": 0.1}], "true")
    exp.write_record(dataclasses.replace(exp.record, description="<script>alert(1)</script> & more"))
    title = notebook.cells(exp, odd_project)[0][1]
    assert "<script>" not in title and "&lt;script&gt;" in title and "&amp; more" in title
    assert "&lt;b&gt;" in title and "<b>" not in title


def test_the_title_escapes_an_experiment_folder_name_made_by_singleexpformat(project: Path) -> None:
    # `singleExpFormat: "<img src=x onerror=...>{expId}"` reached the markdown title as HTML
    from tests.helpers.repo import commit_all, set_cfg

    set_cfg(project, singleExpFormat="<img src=x onerror=alert(1)>_{expId:02d}")
    commit_all(project)
    exp = make_experiment(project, [{"lr": 0.1}], "true")
    title = notebook.cells(exp, project)[0][1]
    assert "<img" not in title and "&lt;img src=x onerror=alert\\(1\\)&gt;" in title


def test_the_title_shows_a_description_as_typed_never_as_a_markdown_link_or_image(project: Path) -> None:
    import markdown

    hostile = "[click](javascript:alert(1)) ![x](http://example.org/t.png) *a* `c` a\\b"
    exp = make_experiment(project, [{"lr": 0.1}], "true")
    exp.write_record(dataclasses.replace(exp.record, description=hostile))
    shown = markdown.markdown(notebook.cells(exp, project)[0][1])
    assert "<a " not in shown and "<img" not in shown and "<em>" not in shown and "<code>" not in shown
    assert hostile in shown


def test_the_code_cells_name_the_experiment_and_a_basedir_that_needs_quoting(odd_project: Path) -> None:
    exp = make_experiment(odd_project, [{"lr": 0.1}], "true")
    load = notebook.cells(exp, odd_project)[1][1]
    names: dict[str, object] = {}
    assign = next(line for line in load.splitlines() if line.startswith("EXP, BASEDIR"))
    exec(compile(assign, "cell", "exec"), names)  # noqa: S102 - our own generated line
    assert names["EXP"] == exp.id and names["BASEDIR"] == str(odd_project)


def test_write_puts_a_valid_notebook_in_outdir_and_its_cells_run(odd_project: Path, tmp_path: Path) -> None:
    exp = make_experiment(odd_project, [{"lr": 0.1}, {"lr": 0.2}], "true")
    for sub, loss in zip(exp.sub_experiments(), (1.0, 0.5), strict=True):
        sub.write_status(Status(state=JobState.DONE, exit_code=0, attempts=1, backend="local"))
        jsonio.write_text(sub.dir / "metrics.jsonl", json.dumps({"step": 1, "loss": loss}) + "\n")
    out = tmp_path / "analysis"
    out.mkdir()
    path = notebook.write(Project.find(odd_project).load_exp(str(exp.id)), odd_project, out)
    assert path == out / notebook.NOTEBOOK_NAME
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    program = code + "\nprint(len(table), len(curves), sorted(curves['lr']))\n"
    proc = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "2 2 [0.1, 0.2]"
    assert sorted(p.name for p in out.iterdir()) == [notebook.NOTEBOOK_NAME]  # no temp file left
