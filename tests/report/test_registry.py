"""The report's section registry: a section registered from any module (here, this test
module: a context function and a template) is on the page, in its place, with its anchor
and its link; the built-in sections keep their order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from metarunlog.main import main
from metarunlog.report import Report, Section, register, registered, section
from tests.helpers.html import html_of, visible_text
from tests.helpers.records import grid_exp

BUILTIN = ["summary", "errors", "git", "notes", "status", "table", "effects", "plots", "overview", "subexps"]


def section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([\w-]+)"', page)


def nav_links(page: str) -> list[str]:
    nav = page[page.index("<nav>") : page.index("</nav>")]
    return re.findall(r'href="#([\w-]+)"', nav)


def test_the_built_in_sections_are_registered_in_page_order() -> None:
    assert [s.id for s in registered()] == BUILTIN


def test_a_section_registered_from_a_test_module_is_rendered_in_order_with_its_anchor(
    project: Path, restore_registry: None
) -> None:
    seen: list[Report] = []

    @section(
        "fake",
        "_fake.html",
        nav="fake runs",
        after="status",
        source='<section id="fake"><p>{{ n_runs }} runs, first {{ first | fmt }}, {{ project }}</p></section>',
    )
    def fake(rep: Report) -> dict[str, Any]:
        seen.append(rep)
        return {"n_runs": len(rep.subs), "first": rep.subs[0].res.params["lr"]}

    exp = grid_exp(project)
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert "<p>4 runs, first 0.1, " + project.name + "</p>" in page
    assert section_ids(page) == ["summary", "git", "notes", "status", "fake", "table", "effects", "plots", "subexps"]
    assert nav_links(page) == section_ids(page)
    assert '<a href="#fake">fake runs</a>' in page
    assert len(seen) == 1 and seen[0].exp.id == exp.id


def test_a_section_whose_context_is_none_or_whose_template_renders_nothing_is_left_out(
    project: Path, restore_registry: None
) -> None:
    register(Section("never", "_never.html", lambda rep: None, nav="never", source="<section id='never'></section>"))
    register(Section("blank", "_blank.html", lambda rep: {"x": ""}, nav="blank", source="{% if x %}X{% endif %}\n"))
    exp = grid_exp(project)
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert "never" not in nav_links(page) and "blank" not in nav_links(page) and "never" not in section_ids(page)


def test_a_user_template_replaces_a_registered_sections_template(project: Path, restore_registry: None) -> None:
    register(Section("fake", "_fake.html", lambda rep: {}, source="<section id='fake'>OURS</section>"), before="git")
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "_fake.html").write_text('<section id="fake">THEIRS</section>')
    exp = grid_exp(project)
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert "THEIRS" in page and "OURS" not in page and section_ids(page)[:2] == ["summary", "fake"]


def test_registering_an_id_again_replaces_it_in_place(restore_registry: None) -> None:
    register(Section("table", "_mine.html", lambda rep: {}))
    assert [s.id for s in registered()] == BUILTIN and registered()[5].template == "_mine.html"


def test_placing_a_section_next_to_an_unknown_one_names_the_known_ones(restore_registry: None) -> None:
    with pytest.raises(KeyError, match="no report section 'nope'; the sections are summary, errors, git"):
        register(Section("x", "_x.html", lambda rep: {}), after="nope")


def test_an_error_in_a_template_of_one_of_mrl_s_own_sections_is_a_bug_not_a_user_error(
    project: Path, restore_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from metarunlog.report import sections

    register(Section("broken", "_broken.html", sections.status, source="<section id='broken'>{{ nope }}</section>"))
    grid_exp(project)
    assert main(["analyze"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_an_error_in_the_template_of_a_section_registered_outside_mrl_is_that_section_s_error(
    project: Path, restore_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A third party's section is not mrl's bug: one line naming it (tests/test_plugins.py
    runs more cases through a real process)."""
    register(Section("broken", "_broken.html", lambda rep: {}, source="<section id='broken'>{{ nope }}</section>"))
    grid_exp(project)
    assert main(["analyze"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "mrl: error: report section 'broken' (tests.report.test_registry), template _broken.html line 1" in err
