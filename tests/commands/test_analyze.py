"""mrl analyze: the zero-config report, user functions and every rtype, error boxes,
escaping, templates, webdir, notebook, --open. The browser checks are in
tests/test_report_browser.py."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from metarunlog import jsonio
from metarunlog.commands.analyze import analyze, is_remote
from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.html import html_of, visible_text  # noqa: F401
from tests.helpers.records import curve, done, grid_exp, make_exp, running
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl, set_cfg

XSS = "<script>alert(1)</script>"


def write_analyze(basedir: Path, source: str, overview: dict | None = None, subexp: dict | None = None) -> None:
    (basedir / "mrl_analyze.py").write_text(source)
    set_cfg(basedir, analysis_overview=overview or {}, analysis_subexp=subexp or {})


# -- zero config ---------------------------------------------------------------------------


def test_with_no_mrl_analyze_py_the_report_has_every_section(project: Path, capsys: pytest.CaptureFixture) -> None:
    exp = grid_exp(project)
    (exp.dir / "001" / "run.log").write_text("==== mrl attempt 1\nepoch 1 loss 0.5\nfinal line of the log\n")
    exp.note_path.write_text("# My notes\n\nWe try **weight decay**.\n")
    capsys.readouterr()
    assert main(["analyze"]) == 0
    out = capsys.readouterr().out
    path = exp.dir / "analysis" / "index.html"
    assert out.strip() == str(path)
    html = path.read_text()
    page = visible_text(html)
    assert f"experiment {exp.name}" in page and "made by a test" in page
    assert exp.record["gitHash"] in page
    assert "<strong>weight decay</strong>" in page  # notes rendered from markdown
    assert 'class="notdone"' in page  # 004 is pending: not done
    assert "state-failed" in page and "state-pending" in page
    assert page.count('<tr><td><a href="#') == 4  # the table
    assert len(re.findall(r'<div class="mrl-plot" data-metric="(\w+)"', page)) == 2  # loss and acc
    for name in ("001", "002", "003", "004"):
        assert f'id="{name}"' in page
    assert "final line of the log" in page
    assert html.count("BokehJS version mismatch") == 1  # bokeh's library, inlined once


def test_the_report_loads_nothing_from_the_network(project: Path) -> None:
    exp = grid_exp(project)
    assert main(["analyze"]) == 0
    html = html_of(exp.dir)
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "cdn.bokeh.org" not in html


def test_best_value_per_metric_is_highlighted(project: Path) -> None:
    exp = make_exp(
        project,
        [
            {"params": {"lr": 0.1}, "status": done(), "metrics": {"val_loss": 0.5, "acc": 0.7, "top5": 1.0}},
            {"params": {"lr": 0.2}, "status": done(), "metrics": {"val_loss": 0.3, "acc": 0.6, "top5": 1.0}},
            {"params": {"lr": 0.3}, "status": done(), "metrics": {"val_loss": 0.4, "acc": 0.9, "top5": 1.0}},
        ],
    )
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert re.search(r'<td class="best" data-v="0.3">0.3</td>', page)  # lowest val_loss
    assert re.search(r'<td class="best" data-v="0.9">0.9</td>', page)  # highest acc
    # val_loss and acc, in their last and their best-over-training columns; not top5 (the same everywhere)
    assert page.count('<td class="best"') == 4
    assert "notdone" not in page  # all three are done


def test_an_experiment_without_sub_experiments_still_gets_a_report(project: Path) -> None:
    main(["new", "-cp", "no", "nothing yet"])
    exp = Project.find(project).load_exp("last")
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert "No sub-experiments yet" in page and "mrl makebatch" in page
    assert "BokehJS" not in html_of(exp.dir)  # no plots: no bokeh at all


def test_running_and_pending_ones_are_shown_as_such_while_runs_go_on(project: Path) -> None:
    exp = make_exp(
        project,
        [
            {"params": {"x": 1}, "status": running(os.getpid()), "jsonl": '{"step": 0, "loss": 1}\n{"step": 1, "lo'},
            {"params": {"x": 2}},
        ],
    )
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert '<span class="state state-running">running</span>' in page
    assert '<span class="state state-pending">pending</span>' in page
    assert "not done" in page


def test_the_diff_of_a_notclean_experiment_is_shown_escaped(project: Path) -> None:
    exp = grid_exp(project)
    exp.write_record(dataclasses.replace(exp.record, dirty=True))
    (exp.dir / ".mrl.diff").write_text(f"+x = '{XSS}'\n")
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert "uncommitted changes</th><td>yes" in page
    assert "+x = &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in page


# -- escaping ------------------------------------------------------------------------------


def test_params_descriptions_logs_and_metric_names_are_escaped(project: Path) -> None:
    exp = make_exp(
        project,
        [
            {
                "params": {"p": XSS, "q": 1},
                "status": done(),
                "log": f"{XSS}\n",
                "jsonl": [{"step": i, XSS: i, "</script><b>m</b>": i} for i in range(3)],
            },
            {"params": {"p": "plain", "q": 2}, "status": done(), "jsonl": [{"step": 0, XSS: 1}]},
        ],
        description=XSS,
    )
    exp.note_path.write_text("notes are *markdown*\n")
    assert main(["analyze"]) == 0
    html = html_of(exp.dir)
    assert XSS not in html
    assert "</script><b>m</b>" not in html
    assert "<b>m</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in visible_text(html)


def test_a_user_table_is_escaped_but_user_html_is_not(project: Path) -> None:
    exp = grid_exp(project)
    write_analyze(
        project,
        (
            "import pandas as pd\n"
            "def over(expDir, outdir, subExpIds, Dparams):\n"
            f"    return [(pd.DataFrame({{'v': [{XSS!r}]}}), 'table', None), ('<i id=\"mine\">x</i>', 'html', None)]\n"
        ),
        overview={"over": []},
    )
    assert main(["analyze"]) == 0
    html = html_of(exp.dir)
    assert XSS not in html and '<i id="mine">x</i>' in html


def test_table_cells_made_with_metarunlog_html_render_as_html_and_the_rest_stays_escaped(project: Path) -> None:
    exp = grid_exp(project)
    write_analyze(
        project,
        (
            "import pandas as pd\n"
            "import metarunlog\n"
            "def links(expDir, outdir, subExpIds, Dparams):\n"
            "    df = Dparams.copy()\n"
            "    df['log'] = [metarunlog.html('<a class=\"loglink\" href=\"../%s/run.log\">%s</a>' % (s, s))\n"
            "                 for s in subExpIds]\n"
            f"    df['note'] = {XSS!r}\n"
            f"    df.index = [{XSS!r}] + list(df.index[1:])\n"
            "    return [(df, 'table', None)]\n"
        ),
        overview={"links": []},
    )
    assert main(["analyze"]) == 0
    html = html_of(exp.dir)
    assert '<a class="loglink" href="../001/run.log">001</a>' in html
    assert html.count('class="loglink"') == 4
    assert XSS not in html and visible_text(html).count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


def test_the_report_shows_the_project_name_and_respects_a_hand_made_done_mark(project: Path) -> None:
    exp = grid_exp(project)  # 004 is pending
    set_cfg(project, name="speech-recognition")
    assert main(["analyze"]) == 0
    head = html_of(exp.dir).split("</header>")[0]
    title, h1 = re.search(r"<title>(.*?)</title>", head).group(1), re.search(r"<h1>(.*?)</h1>", head).group(1)
    assert title.startswith("** speech-recognition 0001") and "speech-recognition" in h1
    assert project.name not in title + h1 and 'class="notdone"' in h1
    (exp.dir / ".mrl.done").touch()  # `mrl info` now says done
    assert main(["analyze"]) == 0
    head = html_of(exp.dir).split("</header>")[0]
    assert 'class="notdone"' not in head and "<title>**" not in head


def test_sub_experiments_and_overview_functions_have_the_originals_anchors(project: Path) -> None:
    exp = grid_exp(project)
    write_analyze(
        project,
        "def bestPerf(expDir, outdir, subExpIds, Dparams):\n    return [('best', 'text', None)]\n"
        "def table(expDir, outdir, subExpIds, Dparams):\n    return [('a name taken by a section', 'text', None)]\n",
        overview={"bestPerf": [], "table": []},
    )
    assert main(["analyze"]) == 0
    html = html_of(exp.dir)
    assert re.search(r'<details class="subexp" id="001"', html)
    assert '<a href="#001">001</a>' in html  # the table links to the sections
    assert re.search(r'<div class="mrl-function" data-function="bestPerf" id="bestPerf"', html)
    assert 'id="fn-table"' in html and html.count('id="table"') == 1


# -- user functions and rtypes ----------------------------------------------------------------


ALL_RTYPES = """
import os
import pandas as pd
from bokeh.plotting import figure

def over(expDir, outdir, subExpIds, Dparams, scale, label):
    with open(os.path.join(outdir, "tiny.png"), "wb") as f:
        f.write(bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"))
    fig = figure(title="user plot")
    fig.line([1, 2, 3], [scale, 2 * scale, 3 * scale])
    return [
        ("ids: " + ",".join(subExpIds) + f" index: {list(Dparams.index)} {label}", "text", "Header *one*"),
        (Dparams, "table", "The params"),
        ("tiny.png", "plot", None),
        (fig, "bokeh", "Interactive"),
        ('<p id="raw-html">raw</p>', "html", None),
        ("movie.mp4", "mp4", None),
        (("tiny.png", "page.html"), "plotlinkbokeh", None),
    ]

def per_sub(subExpDir, outdir, Dparams, subExpId):
    return [(f"sub {subExpId} lr={Dparams.loc[subExpId, 'lr']} dir={os.path.basename(subExpDir)}", "text", None)]
"""


def test_every_original_rtype_renders_with_the_original_signatures(project: Path) -> None:
    grid_exp(project)
    write_analyze(project, ALL_RTYPES, overview={"over": [3, "extra-arg"]}, subexp={"per_sub": []})
    res = analyze(Project.find(project), None)
    assert res.errors == []
    html = res.path.read_text()
    page = visible_text(html)
    assert "ids: 001,002,003,004 index: ['001', '002', '003', '004'] extra-arg" in page
    assert "<h4>Header *one*</h4>" in page  # headers are plain text
    assert re.search(r"<table[^>]*user-table", page)  # a pandas table
    assert 'src="data:image/png;base64,' in page  # the plot, inlined
    assert page.count('class="mrl-bokeh"') == 1
    assert '<p id="raw-html">raw</p>' in page
    assert '<source src="movie.mp4" type="video/mp4">' in page
    assert '<a href="page.html"><img class="mrl-img" src="data:image/png;base64,' in page
    assert "sub 002 lr=0.01 dir=002" in page
    assert '"user plot"' in html or "user plot" in html  # the user's figure is embedded


def test_an_unknown_rtype_gets_an_error_box_and_the_rest_renders(project: Path) -> None:
    exp = grid_exp(project)
    write_analyze(
        project,
        (
            "def over(expDir, outdir, subExpIds, Dparams):\n"
            "    return [('fine', 'text', None), ('x', 'gif', None), ('after', 'text', None)]\n"
        ),
        overview={"over": []},
    )
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1
    assert "unknown rtype 'gif'" in proc.stderr and "over()" in proc.stderr
    page = visible_text(html_of(exp.dir))
    assert re.search(r'class="mrl-error" role="alert">\s*<strong>over</strong>: over\(\) returned unknown rtype', page)
    assert "<p>fine</p>" in page and "<p>after</p>" in page
    assert 'id="004"' in page


def test_a_function_that_raises_gets_an_error_box_naming_it_and_exit_1(project: Path) -> None:
    exp = grid_exp(project)
    write_analyze(
        project,
        (
            "def per_sub(subExpDir, outdir, Dparams, subExpId):\n"
            "    if subExpId == '002':\n"
            "        raise RuntimeError('cannot read ' + subExpDir)\n"
            "    return [('ok ' + subExpId, 'text', None)]\n"
        ),
        subexp={"per_sub": []},
    )
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1
    assert proc.stdout.strip().endswith("index.html")
    assert "sub-experiment 002 per_sub: per_sub() raised RuntimeError" in proc.stderr
    assert "Traceback" not in proc.stderr
    page = visible_text(html_of(exp.dir))
    assert "<strong>per_sub</strong>: per_sub() raised RuntimeError: cannot read" in page
    assert "mrl_analyze.py&#34;, line 3, in per_sub" in page  # the traceback, in a <details>
    assert all(f"ok {i}" in page for i in ("001", "003", "004"))
    assert page.count('role="alert"') == 1


def test_a_function_that_calls_sys_exit_gets_an_error_box_and_the_report_is_still_written(project: Path) -> None:
    # A script-style analysis function ending in sys.exit(2) made mrl analyze exit 2 with no
    # report and no message.
    exp = grid_exp(project)
    write_analyze(
        project,
        (
            "import sys\n"
            "def over(expDir, outdir, subExpIds, Dparams):\n    sys.exit(2)\n"
            "def done_early(expDir, outdir, subExpIds, Dparams):\n    sys.exit(0)\n"
        ),
        overview={"over": [], "done_early": []},
    )
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1 and proc.stdout.strip().endswith("index.html")
    assert proc.stderr.count("mrl: error:") == 1 and "over() exited with 2" in proc.stderr
    page = visible_text(html_of(exp.dir))
    assert "<strong>over</strong>: over() exited with 2" in page and page.count('role="alert"') == 1


def test_a_report_over_runs_that_diverged_to_huge_values_is_written(project: Path) -> None:
    # The curves' colour choice squared 1e308 - mean: OverflowError, "internal error", no report.
    rows = [[{"step": s, "loss": 1e307 * (s + 1) * lr} for s in range(5)] for lr in (1, 2, 3, 4)]
    specs = [{"params": {"lr": lr, "wd": lr % 2}, "jsonl": r} for lr, r in zip((1, 2, 3, 4), rows, strict=True)]
    exp = make_exp(project, specs)
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # no numpy overflow warning either
    assert (exp.dir / "analysis" / "index.html").is_file()


def test_ints_past_a_float_s_range_in_curves_summaries_and_params_are_a_report_not_a_traceback(project: Path) -> None:
    # 10**400 (JSON holds any int) was an OverflowError "internal error" of `mrl analyze` (the
    # curve arrays, isnan, the effects axis, the heatmap's ink) and of `mrl table --aggregate`
    big = 10**400
    specs = [
        {
            "params": {"n": n, "m": m},
            "status": done(),
            "jsonl": [{"step": s, "loss": big if s == 2 and n == big else 1.0 / (s + 1)} for s in range(4)],
            "metrics": {"acc": big if m == big else 0.5},
        }
        for n in (1, 3, big)
        for m in (1, 10**30, big)
    ]
    exp = make_exp(project, specs)
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (exp.dir / "analysis" / "index.html").is_file()
    proc = run_mrl("table", "--aggregate", "--by", "n", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert [r["n"] for r in json.loads(proc.stdout)] == [3, 3, 3]


def test_a_bad_return_value_gets_an_error_box(project: Path) -> None:
    grid_exp(project)
    write_analyze(project, "def over(*a):\n    return 'just a string'\n", overview={"over": []})
    res = analyze(Project.find(project))
    assert len(res.errors) == 1 and "list of (data, rtype, header)" in res.errors[0]


def test_a_plot_file_that_does_not_exist_gets_an_error_box(project: Path) -> None:
    grid_exp(project)
    write_analyze(project, "def over(*a):\n    return [('nope.png', 'plot', None)]\n", overview={"over": []})
    res = analyze(Project.find(project))
    assert len(res.errors) == 1 and "no image file" in res.errors[0]


def test_a_registered_function_missing_from_mrl_analyze_py_fails_before_any_work(project: Path) -> None:
    exp = grid_exp(project)
    write_analyze(project, "def over(*a):\n    return []\n", overview={"over": [], "overveiw": []})
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr.startswith("mrl: error: 'overveiw' is registered in .mrl.cfg")
    assert not (exp.dir / "analysis").exists()


def test_a_registered_function_without_mrl_analyze_py_fails_before_any_work(project: Path) -> None:
    exp = grid_exp(project)
    set_cfg(project, analysis_subexp={"per_sub": []})
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1 and "mrl_analyze.py does not exist" in proc.stderr
    assert not (exp.dir / "analysis").exists()


def test_a_one_job_experiment_calls_per_sub_functions_like_the_original(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "jsonl": curve(4, 0.1)}], single=True)
    write_analyze(
        project,
        (
            "def per_sub(subExpDir, outdir, Dparams, subExpId):\n"
            "    return [(f'called with {Dparams is None} {subExpId} {subExpDir}', 'text', None)]\n"
            "def over(*a):\n    raise AssertionError('overview functions are for batches')\n"
        ),
        overview={"over": []},
        subexp={"per_sub": []},
    )
    res = analyze(Project.find(project))
    assert res.errors == []
    assert f"called with True def {exp.dir}" in res.path.read_text()


def test_a_failing_user_metrics_function_gets_an_error_box_in_the_table_section(project: Path) -> None:
    exp = grid_exp(project)
    (project / "mrl_analyze.py").write_text("def metrics(d):\n    return 'not a dict'\n")
    res = analyze(Project.find(project))
    assert len(res.errors) == 4 and all("it must return a dict" in e for e in res.errors)
    page = visible_text(html_of(exp.dir))
    table = page[page.index('<section id="table">') :]
    assert table.count('<div class="mrl-error" role="alert"><strong>table</strong>') == 4
    assert table.count('<tr><td><a href="#') == 4


def test_user_metrics_and_metric_goals_from_mrl_analyze_py(project: Path) -> None:
    exp = make_exp(
        project,
        [
            {"params": {"lr": 0.1}, "status": done(), "metrics": {"bleu": 20}},
            {"params": {"lr": 0.2}, "status": done(), "metrics": {"bleu": 30}},
        ],
    )
    (project / "mrl_analyze.py").write_text(
        "metric_goals = {'bleu': 'min', 'custom': 'max'}\n"
        "def metrics(d):\n    return {'custom': 5 if d.endswith('001') else 3}\n"
    )
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert '<td class="best" data-v="20">20</td>' in page and '<td class="best" data-v="5">5</td>' in page


# -- plots ---------------------------------------------------------------------------------------


def test_a_report_of_1000_runs_with_long_curves_stays_small(project: Path) -> None:
    subs = [
        {"params": {"lr": i / 1000, "seed": i % 7}, "status": done(), "jsonl": curve(300, i / 1000)}
        for i in range(1000)
    ]
    exp = make_exp(project, subs)
    assert main(["analyze"]) == 0
    assert (exp.dir / "analysis" / "index.html").stat().st_size < 10_000_000


# -- templates, outdir, webdir, notebook, --open ----------------------------------------------------


def test_a_template_in_mrl_templates_replaces_the_shipped_one(project: Path) -> None:
    exp = grid_exp(project)
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "_git.html").write_text(
        "<section id='git'>MY OWN GIT SECTION {{ git.hash }}</section>"
    )
    assert main(["analyze"]) == 0
    assert f"MY OWN GIT SECTION {exp.record['gitHash']}" in html_of(exp.dir)


def test_a_user_template_can_extend_the_shipped_one_and_replace_one_block(project: Path) -> None:
    exp = grid_exp(project)
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "report.html").write_text(
        '{% extends "default:report.html" %}\n'
        "{% block footer %}<footer>OUR LAB {{ exp_name }}</footer>{% endblock %}\n"
        "{% block main %}<p id='banner'>READ ME FIRST</p>{{ super() }}{% endblock %}\n"
    )
    assert main(["analyze"]) == 0
    page = visible_text(html_of(exp.dir))
    assert f"<footer>OUR LAB {exp.name}</footer>" in page and "Written by metarunlog" not in page
    assert page.index("READ ME FIRST") < page.index('id="git"') < page.index('id="table"')  # super(): ours kept


def test_an_extending_user_template_still_uses_the_users_includes(project: Path) -> None:
    exp = grid_exp(project)
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "_git.html").write_text("<section id='git'>MY GIT</section>")
    (project / "mrl_templates" / "report.html").write_text('{% extends "default:report.html" %}')
    assert main(["analyze"]) == 0
    assert "MY GIT" in html_of(exp.dir)


def test_a_user_template_extending_an_unknown_default_is_one_error(project: Path) -> None:
    grid_exp(project)
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "report.html").write_text('{% extends "default:nope.html" %}')
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1 and proc.stderr.startswith("mrl: error: ") and "default:nope.html" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_undefined_variable_in_a_user_template_names_its_file_and_line(project: Path) -> None:
    grid_exp(project)
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "_git.html").write_text("<p>\n{{ no_such_thing }}</p>")
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1 and "_git.html:2: 'no_such_thing' is undefined" in proc.stderr


def test_a_broken_user_template_is_one_error_naming_it(project: Path) -> None:
    grid_exp(project)
    (project / "mrl_templates").mkdir()
    (project / "mrl_templates" / "_git.html").write_text("{% if %}")
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 1 and "_git.html:1: template syntax error" in proc.stderr


def test_outdir_puts_the_report_elsewhere(project: Path, tmp_path: Path) -> None:
    exp = grid_exp(project)
    assert main(["analyze", "-outdir", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").is_file() and not (exp.dir / "analysis").exists()


def test_analysis_outdir_and_outfn_come_from_the_config(project: Path) -> None:
    exp = grid_exp(project)
    set_cfg(project, analysis_outdir="report", analysis_outfn="report.html")
    assert main(["analyze"]) == 0
    assert (exp.dir / "report" / "report.html").is_file()


def test_the_analysis_folder_is_copied_to_a_local_webdir(project: Path, tmp_path: Path) -> None:
    exp = grid_exp(project)
    set_cfg(project, analysis_webdir=str(tmp_path / "www"))
    res = analyze(Project.find(project), notebook=True)
    assert res.webdir == str(tmp_path / "www" / exp.name)
    assert (tmp_path / "www" / exp.name / "index.html").read_text() == res.path.read_text()
    assert (tmp_path / "www" / exp.name / "analysis.ipynb").is_file()


def test_a_webdir_in_a_missing_folder_is_a_warning_and_creates_nothing(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid_exp(project)
    set_cfg(project, analysis_webdir=str(tmp_path / "u" / "someone" / "www"))  # like the original's default
    capsys.readouterr()
    assert main(["analyze"]) == 0
    err = capsys.readouterr().err
    assert "mrl: warning: analysis_webdir" in err and "not copied" in err
    assert not (tmp_path / "u").exists()


def test_a_remote_webdir_without_rsync_is_an_error_before_any_work(project: Path, tmp_path: Path) -> None:
    exp = grid_exp(project)
    set_cfg(project, analysis_webdir="webhost:/var/www/exps")
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT), "PATH": str(bare)}
    proc = subprocess.run(
        [sys.executable, "-m", "metarunlog", "analyze"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "needs rsync" in proc.stderr
    assert not (exp.dir / "analysis").exists()


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_a_failing_rsync_copy_is_reported_after_the_report_is_written(project: Path, tmp_path: Path) -> None:
    exp = grid_exp(project)
    fake = tmp_path / "bin"
    fake.mkdir()
    # Stands in for ssh: rsync runs it to reach "webhost"; it fails like an unreachable host.
    (fake / "ssh").write_text("#!/bin/sh\necho 'ssh: connect to host webhost: Connection refused' >&2\nexit 255\n")
    (fake / "ssh").chmod(0o755)
    set_cfg(project, analysis_webdir="webhost:/var/www/exps")
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    proc = run_mrl("analyze", cwd=project, env=env)
    assert proc.returncode == 1 and "copying it to webhost:/var/www/exps/" in proc.stderr
    assert (exp.dir / "analysis" / "index.html").is_file()


def test_remote_webdirs_are_told_from_local_ones() -> None:
    assert is_remote("host:/srv/www") and is_remote("me@host.example.org:www")
    assert not is_remote("/srv/www") and not is_remote("www/exps") and not is_remote("http://x/y")


def test_the_notebook_is_valid_and_its_loading_cells_run(project: Path, tmp_path: Path) -> None:
    exp = grid_exp(project)
    res = analyze(Project.find(project), notebook=True)
    assert res.notebook == exp.dir / "analysis" / "analysis.ipynb"
    nb = nbformat.read(res.notebook, as_version=4)
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "load_table" in code[0]
    program = "\n".join(code) + (
        "\nimport json\nprint(json.dumps({'shape': list(table.shape), 'ids': list(table.index), "
        "'curves': len(curves)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"shape": [4, 7], "ids": ["001", "002", "003", "004"], "curves": 10}


def test_open_hands_the_report_to_the_default_browser(project: Path, tmp_path: Path) -> None:
    exp = grid_exp(project)
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    browser.chmod(0o755)
    proc = run_mrl("analyze", "--open", cwd=project, env={"BROWSER": str(browser)})
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text().strip() == (exp.dir / "analysis" / "index.html").as_uri()


def test_the_report_is_written_atomically_over_the_previous_one(project: Path) -> None:
    exp = grid_exp(project)
    assert main(["analyze"]) == 0
    jsonio.write_json(exp.dir / "004" / "metrics.json", {"late": 1})
    assert main(["analyze"]) == 0
    assert "late" in visible_text(html_of(exp.dir))
    # no temp file left: the page and the hash of the settings it was made with
    assert sorted(p.name for p in (exp.dir / "analysis").iterdir()) == [".index.html.mrl-settings", "index.html"]


def test_analyze_says_where_it_looked_when_no_run_has_metrics(project: Path) -> None:
    from tests.helpers.records import done, make_exp

    make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 0, proc.stderr
    [note] = [line for line in proc.stderr.splitlines() if "no metrics" in line]
    assert "metrics.jsonl" in note and "events.out.tfevents" in note and "metrics(subExpDir)" in note


@pytest.mark.parametrize("where", ["a-file/report", "a-file"])
def test_an_outdir_that_cannot_be_a_folder_is_one_error_line(project: Path, where: str) -> None:
    grid_exp(project)
    assert main(["new", "-cp", "no", "second"]) == 0
    (project / "a-file").write_text("x")
    for argv in (["analyze", "1", "-outdir", where], ["analyze", "1", "2", "--outdir", where]):
        res = run_mrl(*argv, cwd=project)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("mrl: error:")]
        assert len(errors) == 1 and errors[0].startswith("mrl: error: cannot make the folder "), res.stderr
        assert "give -outdir a folder" in errors[0]


def test_a_comparison_with_one_corrupt_experiment_compares_the_others_and_names_it(project: Path) -> None:
    # `mrl analyze 1 2 3` with 0002's record corrupt stopped with that error alone.
    for x in (1, 2, 3):
        make_exp(project, [{"params": {"x": x}, "status": done(), "jsonl": curve(5, x / 10)}])
    (project / "output" / "0002" / ".mrl").write_text("{broken")
    proc = run_mrl("analyze", "1", "2", "3", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    page = Path(proc.stdout.strip())
    assert page.name == "compare-0001-0003.html" and page.is_file()
    assert (project / "output" / "0001" / "analysis" / "index.html").is_file()
    [line] = proc.stderr.splitlines()
    assert line.startswith("mrl: warning: left out experiment 0002: corrupt record ") and "0002/.mrl" in line
    alone = run_mrl("analyze", "2", cwd=project)
    assert alone.returncode == 1 and alone.stdout == "" and alone.stderr.startswith("mrl: error: corrupt record ")


def _links_resolve(page: Path) -> list[str]:
    """The page's links to other files (not anchors or http), each checked to exist."""
    from urllib.parse import unquote

    links = [h for h in re.findall(r'href="([^"#]+)"', page.read_text()) if "://" not in h]
    assert all((page.parent / unquote(h)).is_file() for h in links), [
        h for h in links if not (page.parent / unquote(h)).is_file()
    ]
    return links


def test_the_comparison_and_the_index_are_published_to_the_webdir_with_links_that_work_there(
    project: Path, tmp_path: Path
) -> None:
    # only single-experiment reports reached analysis_webdir: `mrl analyze 1 2` and
    # `--index` wrote OUTDIR pages whose links assume OUTDIR's layout (0001/analysis/...)
    first = make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "jsonl": curve(3, 0.1)}])
    second = make_exp(project, [{"params": {"lr": 0.2}, "status": done(), "jsonl": curve(3, 0.2)}])
    assert run_mrl("analyze", "1", cwd=project).returncode == 0  # before the webdir was set
    www = tmp_path / "www"
    www.mkdir()
    set_cfg(project, analysis_webdir=str(www))
    res = run_mrl("analyze", "1", "2", "--index", cwd=project)
    assert res.returncode == 0, res.stderr
    compare = www / "compare-0001-0002.html"
    links = _links_resolve(compare)
    assert sorted(links) == [f"{first.name}/index.html", f"{second.name}/index.html"]
    assert sorted(set(_links_resolve(www / "index.html"))) == sorted(links)
    assert (project / "output" / "compare-0001-0002.html").read_text().count(f"{first.name}/analysis/index.html")
    # a remote host:path: the page goes by rsync too (a stand-in rsync: no ssh host here)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "rsync.log"
    (bin_dir / "rsync").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "rsync").chmod(0o755)
    set_cfg(project, analysis_webdir="webhost:/var/www/exps")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    assert run_mrl("analyze", "--index", cwd=project, env=env).returncode == 0
    assert log.read_text().split()[-1] == "webhost:/var/www/exps/index.html"


def test_a_log_line_of_64_kib_is_cut_in_the_run_s_failure_tail_and_the_report_with_a_marker(project: Path) -> None:
    # the tail printed each line whole, up to 64 KiB: one JSON dump buried the traceback
    # around it, in the terminal and in the report's summary and run section
    from tests.backends.contract import make_experiment

    script = "import sys; print('before'); print('<é&>' * 20000); print('after'); sys.exit(2)"
    exp = make_experiment(project, [{"x": 1}], f'python -c "{script}"')
    run = run_mrl("run", cwd=project)
    assert run.returncode == 1
    tail = [line for line in run.stdout.splitlines() if line.startswith("    | ")]
    assert max(map(len, tail)) < 600, [len(t) for t in tail]
    # the 100 KB line began before the last 64 KiB: its start is marked too, at a whole é
    wide = next(t for t in tail if "line cut" in t)
    assert wide.startswith("    | ...") and "\ufffd" not in wide
    assert wide.endswith(" more characters]") and "    | after" in tail
    report = run_mrl("analyze", cwd=project)
    assert report.returncode == 0, report.stderr
    page = (exp.dir / "analysis" / "index.html").read_text()
    assert "&lt;é&amp;&gt;" * 20 in page and "&lt;é&amp;&gt;" * 200 not in page
    assert page.count(" more characters]") == 2  # the summary's failure and the run's section
    assert re.search(r"&gt;(&lt;é&amp;&gt;)*(&lt;é&amp;|&lt;é|&lt;)?\.\.\. \[line cut: [0-9,]+ more characters\]", page)
