"""report/sections.py: the notes as HTML (a bare `mrl new` heading without markdown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarunlog.report import markdown_html
from metarunlog.report.sections import notes_html
from tests.helpers.records import make_exp

HEADINGS = [
    "# 0001: bench 1000x200\n",
    "# 0002: lr sweep (warmup=5), wd/2 + 3 - 1.5\n\n",
    "#  0003:  two  spaces  \n",
    "# 0004: *bold* and `code`\n",  # markdown's: not a plain heading
    "# 0005: a & b <i>\n",
    "# 0006: notes\n\nA paragraph.\n",
]


@pytest.mark.parametrize("text", HEADINGS)
def test_the_notes_are_the_same_html_as_markdown_makes_of_them(project: Path, text: str) -> None:
    exp = make_exp(project, [])
    exp.note_path.write_text(text)
    assert notes_html(exp) == markdown_html(text)


HOSTILE = "[click me](javascript:alert(document.domain)) ![x](javascript:alert(2)) <b>*bold*</b>"


def test_a_description_is_shown_as_typed_never_as_a_markdown_link_or_image(project: Path) -> None:
    # escaped as HTML, the description still went through markdown: a `javascript:` link
    # one click from running, and an image loading any URL, in the report's notes
    exp = make_exp(project, [], description=HOSTILE)
    exp.note_path.write_text(f"# {exp.name}: {HOSTILE}\n\nMy *own* [notes](https://example.org).\n")
    html = notes_html(exp)
    heading = html.split("</h1>")[0]
    assert "<a " not in heading and "<img" not in html and 'href="javascript' not in html
    assert "&lt;b&gt;*bold*&lt;/b&gt;" in html and "[click me](javascript:alert(document.domain))" in html
    assert '<a href="https://example.org">notes</a>' in html and "<em>own</em>" in html  # the rest is markdown
