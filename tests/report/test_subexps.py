"""report/subexps.py: each sub-experiment's section, built in Python, escaped; templates of
one's own still get `subs`."""

from __future__ import annotations

import re
from pathlib import Path

from metarunlog.main import main
from metarunlog.states import JobState
from tests.helpers.html import html_of, visible_text
from tests.helpers.records import done, make_exp

HOSTILE = '<img src=x onerror="alert(1)">'


def test_a_sub_experiments_section_shows_its_params_state_run_and_metrics_all_escaped(project: Path) -> None:
    failed = done(exit_code=3, state=JobState.FAILED)
    exp = make_exp(
        project,
        [
            {"params": {"lr": 0.1, "name": HOSTILE}, "status": done(), "jsonl": [{"step": 1, "loss": 0.5}]},
            {"params": {"lr": 0.2, "name": "b"}, "status": failed, "log": f"line one\n{HOSTILE}\n"},
        ],
    )
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    part = page[page.index('<section id="subexps">') :]
    assert "<img" not in part and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in part
    first = part[: part.index('<details class="subexp" id="002"')]
    assert '<span class="kv">lr=0.1</span>' in first and '<span class="state state-done">done</span>' in first
    assert re.search(r"<tr><th>state</th><td>done \(exit code 0\), attempt 1</td></tr>", first)
    assert re.search(r"<tr><th>ran</th><td>2024-01-01T10:00:00\+00:00 &ndash; \S+ on [^<]+</td></tr>", first)
    assert "<tr><th>loss</th><td>0.5</td></tr>" in first
    second = part[part.index('<details class="subexp" id="002"') :]
    assert '<span class="state state-failed">failed</span>' in second and "(exit code 3)" in second
    assert "run.log (last 2 lines)" in second and "line one\n&lt;img" in second
    assert part.count('<details class="subexp"') == 2 and " open>" in part  # few runs: open


def test_a_subexps_template_of_ones_own_still_loops_over_subs(project: Path) -> None:
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "_subexps.html").write_text(
        '<section id="subexps">{% for s in subs %}<p class="mine">{{ s.res.name }}:{{ s.res.params.lr }}</p>'
        "{% endfor %}</section>"
    )
    exp = make_exp(project, [{"params": {"lr": lr}, "status": done()} for lr in (0.1, 0.2)])
    assert main(["analyze"]) == 0
    page = html_of(exp.dir)
    assert '<p class="mine">001:0.1</p><p class="mine">002:0.2</p>' in page
