"""The report in a real headless browser: Debian's chromium driven by Playwright, the page
loaded from file:// with the network off. Checks that bokeh drew every plot (views in the
live DOM, pixels on their canvases), that the console has no errors, that nothing was
requested from the network, and that no injected script ran.

Needs: apt `chromium`, pip `playwright` (no browser download: the system chromium is used;
set MRL_CHROMIUM to use another binary). Skipped when those are missing, unless CI is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metarunlog.commands.analyze import analyze
from metarunlog.project import Project
from metarunlog.states import JobState
from tests.helpers.records import curve, done, grid_exp, make_exp, running
from tests.helpers.repo import set_cfg

pytestmark = pytest.mark.browser

XSS = "<script>window.__xss = 1; alert(1)</script>"


def _chromium() -> str | None:
    for name in (os.environ.get("MRL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [
        what
        for what, ok in (
            ("chromium (apt-get install chromium)", exe),
            ("playwright (pip install playwright)", sync_playwright),
        )
        if not ok
    ]
    if missing:
        reason = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: they must run)")
        pytest.skip(reason)
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@dataclass
class Loaded:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # anything not file:, data:, blob:, about:
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    contexts = []

    def load(path: Path) -> Loaded:
        ctx = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        out = Loaded(page)
        page.on("console", lambda m: out.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: out.console_errors.append(f"uncaught: {e}"))
        page.on("dialog", lambda d: (out.dialogs.append(d.message), d.dismiss()))

        def route(r: Any) -> None:
            if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
                r.continue_()
            else:
                out.requests.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        return out

    yield load
    for ctx in contexts:
        ctx.close()


# Bokeh.index holds every root view; bokeh 3.9 adds a "Notifications" one per document.
ROOTS = "Object.values(Bokeh.index).filter((v) => v.model.type !== 'Notifications')"
WAIT_FOR_BOKEH = f"""(n) => window.Bokeh !== undefined && Bokeh.documents.length > 0
    && {ROOTS}.length >= n"""

# Every bokeh root view, with its model's title and how many of its canvases hold coloured
# pixels: the data (axes, grid and text are grey), so an empty plot does not count as drawn.
# Bokeh 3 draws inside shadow roots.
DRAWN = f"""() => {ROOTS}.map((view) => {{
    const canvases = [];
    const walk = (node) => {{
        if (node.tagName === "CANVAS") canvases.push(node);
        if (node.shadowRoot) walk(node.shadowRoot);
        for (const child of node.children || []) walk(child);
    }};
    walk(view.el);
    let painted = 0;
    for (const c of canvases) {{
        if (!c.width || !c.height) continue;
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let ink = 0;
        for (let i = 0; i < data.length; i += 4) {{
            const r = data[i], g = data[i + 1], b = data[i + 2];
            if (data[i + 3] > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) ink++;
        }}
        if (ink > 50) painted++;
    }}
    const title = view.model.title ? view.model.title.text : null;
    return {{title, canvases: canvases.length, painted}};
}})"""


def wait_drawn(loaded: Loaded, n: int) -> list[dict[str, Any]]:
    loaded.page.wait_for_function(WAIT_FOR_BOKEH, arg=n, timeout=30_000)
    loaded.page.wait_for_timeout(300)  # let the first paint land
    return loaded.page.evaluate(DRAWN)  # type: ignore[no-any-return]


TOOLTIP_TEXT = """() => {
    const out = [];
    const walk = (n) => {
        if (n.classList && [...n.classList].some((c) => c.includes("tooltip")) && n.innerText) out.push(n.innerText);
        if (n.shadowRoot) walk(n.shadowRoot);
        for (const c of n.children || []) walk(c);
    };
    walk(document.body);
    return out.join("|");
}"""


def hover_text(loaded: Loaded, selector: str = "#plots .mrl-plot", index: int = 0) -> str:
    """Sweep the mouse down the middle of a plot until bokeh shows a tooltip; its text."""
    page = loaded.page
    plot = page.locator(selector).nth(index)
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    for dy in range(5, int(box["height"]) - 5, 2):
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + dy)
        text = page.evaluate(TOOLTIP_TEXT)
        if text.strip():
            return str(text)
    return ""


def legend_of(loaded: Loaded, title: str) -> list[str]:
    """The legend entries of the plot with this title."""
    return loaded.page.evaluate(  # type: ignore[no-any-return]
        """(title) => {
            const figs = [...Bokeh.documents[0].all_models].filter((m) => m.title && m.title.text === title);
            return figs[0].center.filter((m) => m.type === "Legend")
                .concat(figs[0].right.filter((m) => m.type === "Legend"))[0].items.map((i) => i.label.value);
        }""",
        title,
    )


def assert_clean(loaded: Loaded) -> None:
    assert loaded.console_errors == []
    assert loaded.requests == []
    assert loaded.dialogs == []
    assert loaded.page.evaluate("() => window.__xss") is None


def test_the_zero_config_report_draws_a_plot_per_metric_offline_without_errors(project: Path, open_report) -> None:
    grid_exp(project)
    res = analyze(Project.find(project))
    loaded = open_report(res.path)
    views = wait_drawn(loaded, 5)
    assert sorted(v["title"] for v in views) == [
        "acc",
        "loss",
        "loss (best over training, mean) over lr x wd",
        "loss against lr",
        "loss against wd",
    ]
    assert all(v["painted"] >= 1 for v in views), views
    assert loaded.page.locator("#plots .mrl-plot").count() == 2
    assert re.search(r"run:\s+00[12]: lr=0\.0?1, wd=1", hover_text(loaded, "#plots .mrl-plot"))
    assert_clean(loaded)


def test_many_runs_in_colour_groups_are_drawn(project: Path, open_report) -> None:
    subs = [
        {"params": {"lr": [0.1, 0.01][i % 2], "seed": i}, "status": done(), "jsonl": curve(400, i / 50)}
        for i in range(40)
    ]
    exp = make_exp(project, subs)
    res = analyze(Project.find(project), exp)
    loaded = open_report(res.path)
    views = wait_drawn(loaded, 3)
    assert all(v["painted"] >= 1 for v in views), views
    assert legend_of(loaded, "loss") == ["lr=0.1", "lr=0.01", "individual runs"]  # seed: the repeat axis
    # the mean line of a combination under the mouse, named by its params
    assert re.search(r"runs:\s+lr=0\.0?1 \(mean of 20\)", hover_text(loaded))
    assert_clean(loaded)


def test_hostile_params_names_and_logs_never_run_as_script(project: Path, open_report) -> None:
    exp = make_exp(
        project,
        [
            {
                "params": {"p": XSS, "q": 1},
                "status": done(),
                "log": XSS + "\n",
                "jsonl": [{"step": i, XSS: i, "</script><script>alert(2)</script>": -i} for i in range(5)],
            },
            {
                "params": {"p": "<img src=x onerror=alert(3)>", "q": 2},
                "status": running(os.getpid()),
                "jsonl": [{"step": i, XSS: 2 * i} for i in range(5)],
            },
        ],
        description=XSS,
    )
    exp.note_path.write_text("# Notes\n")
    res = analyze(Project.find(project), exp)
    loaded = open_report(res.path)
    views = wait_drawn(loaded, 2)
    titles = [v["title"] for v in views]
    assert {XSS, "</script><script>alert(2)</script>", f"{XSS} against p"} <= set(titles)  # as text
    assert loaded.page.locator("[id='001'] td", has_text=XSS).count() >= 1  # shown as text
    assert_clean(loaded)


def test_user_bokeh_models_and_error_boxes_render_next_to_each_other(project: Path, open_report) -> None:
    grid_exp(project)
    (project / "mrl_analyze.py").write_text(
        "from bokeh.plotting import figure\n"
        "def over(expDir, outdir, subExpIds, Dparams):\n"
        "    fig = figure(title='from the user')\n"
        "    fig.scatter([1, 2, 3], [3, 1, 2], size=12)\n"
        "    return [(fig, 'bokeh', 'Mine'), ('x', 'nope', None)]\n"
        "def broken(*args):\n    raise ValueError('broken on purpose')\n"
    )
    set_cfg(project, analysis_overview={"over": []}, analysis_subexp={"broken": []})
    res = analyze(Project.find(project))
    assert len(res.errors) == 5  # the unknown rtype, and broken() for each of the 4
    loaded = open_report(res.path)
    views = wait_drawn(loaded, 6)
    assert {"acc", "from the user", "loss"} <= {v["title"] for v in views}
    assert all(v["painted"] >= 1 for v in views), views
    assert loaded.page.locator(".mrl-error").count() == 5
    assert_clean(loaded)


def test_clicking_a_column_header_sorts_the_table(project: Path, open_report) -> None:
    grid_exp(project)
    res = analyze(Project.find(project))
    loaded = open_report(res.path)
    page = loaded.page
    ids = lambda: page.locator("table.sortable tbody tr td:first-child").all_inner_texts()  # noqa: E731
    assert ids() == ["001", "002", "003", "004"]
    page.locator("table.sortable th", has_text="duration").click()
    assert ids() == ["001", "003", "002", "004"]  # 10 s, 12.5 s, 20 s, never ran (last)
    page.locator("table.sortable th", has_text="duration").click()
    assert ids() == ["002", "003", "001", "004"]
    assert_clean(loaded)


def test_a_column_of_numbers_and_text_sorts_numbers_first_both_ways(project: Path, open_report) -> None:
    """A metric that is "n/a" for one run: descending puts the largest number first, not the
    text (the kinds' order was reversed with the values)."""
    values = [0.5, "n/a", 0.9, 0.7]
    make_exp(project, [{"params": {"x": i}, "status": done(), "metrics": {"score": v}} for i, v in enumerate(values)])
    res = analyze(Project.find(project))
    loaded = open_report(res.path)
    page = loaded.page
    table = page.locator("table.sortable").first
    column = table.locator("thead th").all_inner_texts().index("score")
    cells = lambda: table.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()  # noqa: E731
    header = table.locator("thead th").nth(column)
    header.click()
    assert [c.strip() for c in cells()] == ["0.5", "0.7", "0.9", "n/a"]
    header.click()
    assert [c.strip() for c in cells()] == ["0.9", "0.7", "0.5", "n/a"]
    assert_clean(loaded)


def test_a_report_without_plots_opens_cleanly(project: Path, open_report) -> None:
    exp = make_exp(project, [{"params": {"x": 1}}, {"params": {"x": 2}}])
    res = analyze(Project.find(project), exp)
    loaded = open_report(res.path)
    assert loaded.page.evaluate("() => window.Bokeh === undefined")
    assert loaded.page.locator("#subexps details").count() == 2
    assert_clean(loaded)


# -- issue 14: a report that helps decide ------------------------------------------------------


def test_the_summary_names_the_run_with_the_best_value_in_the_data_and_shows_the_failure(
    project: Path, open_report
) -> None:
    import json

    from tests.report.test_summary import early_and_late

    exp = early_and_late(project)
    loaded = open_report(analyze(Project.find(project), exp).path)
    page = loaded.page
    assert page.locator("section").first.get_attribute("id") == "summary"
    named = page.locator('#summary [data-criterion="best"]').get_attribute("data-run")
    data = {}
    for d in sorted(exp.dir.glob("0*")):
        lines = (d / "metrics.jsonl").read_text().splitlines() if (d / "metrics.jsonl").exists() else []
        if lines:
            data[d.name] = min(json.loads(x)["loss"] for x in lines)
    assert named == min(data, key=data.get)  # the best value anywhere in the data: 002's 0.09
    assert page.locator('#summary [data-criterion="final"]').get_attribute("data-run") == "003"
    log_line = page.locator("#summary .failure", has_text="CUDA error: out of memory")
    assert log_line.is_visible()  # no click needed
    assert "exit code 3" in log_line.inner_text()
    assert_clean(loaded)


def test_the_summary_says_the_best_run_s_own_step_key(project: Path, open_report) -> None:
    # runs logging different step keys (TensorBoard `step`, CSV `epoch`): the winner's own
    by_step = [{"step": s, "loss": v} for s, v in enumerate([1.0, 0.8, 0.7, 0.6])]
    by_epoch = [{"epoch": e, "loss": v} for e, v in enumerate([1.0, 0.5, 0.3, 0.1])]
    subs = [{"params": {"fmt": f}, "status": done(), "jsonl": j} for f, j in (("tb", by_step), ("csv", by_epoch))]
    loaded = open_report(analyze(Project.find(project), make_exp(project, subs)).path)
    wait_drawn(loaded, 1)
    shown = loaded.page.locator("#summary .best-run").first.inner_text()
    assert "002 with loss = 0.1 at epoch 3" in shown, shown
    assert_clean(loaded)


def test_a_param_of_mixed_types_has_a_category_per_value(project: Path, open_report) -> None:
    # 1 and "1", None and "", True and "True" are six values (mrl table --aggregate: six groups)
    mixed = [1, "1", None, "", True, "True"]
    subs = [
        {"params": {"x": x}, "status": done(), "jsonl": [{"step": s, "loss": i + 1 / (s + 1)} for s in range(3)]}
        for i, x in enumerate(mixed)
    ]
    loaded = open_report(analyze(Project.find(project), make_exp(project, subs)).path)
    views = wait_drawn(loaded, 2)
    assert all(v["painted"] >= 1 for v in views), views
    factors = loaded.page.evaluate(
        """() => [...Bokeh.documents[0].all_models]
            .filter((m) => m.title && m.title.text === "loss against x")[0].x_range.factors"""
    )
    assert factors == ["1", '"1"', "None", '""', "True", '"True"']
    assert "003: x=None" in legend_of(loaded, "loss") and "individual runs" not in legend_of(loaded, "loss")
    assert_clean(loaded)


def test_a_failure_s_lines_before_a_progress_bar_are_in_view(project: Path, open_report) -> None:
    # a bar redrawn with \r is one line, as the terminal showed it, not ten that hide the rest
    bar = "".join(f"\r{i}%|{'#' * (i // 10)}| {i}/100" for i in range(101))
    log = f"epoch 3 val_loss=0.41\n{bar}\nKilled: out of memory\n"
    subs = [{"params": {}, "status": done(state=JobState.FAILED, exit_code=137), "jsonl": curve(3, 0.1), "log": log}]
    loaded = open_report(analyze(Project.find(project), make_exp(project, subs)).path)
    wait_drawn(loaded, 1)
    tail = loaded.page.locator("#summary pre.log-tail")
    assert tail.is_visible()
    shown = tail.inner_text().splitlines()
    assert shown == ["epoch 3 val_loss=0.41", "100%|##########| 100/100", "Killed: out of memory"]
    assert_clean(loaded)


def test_weight_decay_with_zero_is_drawn_as_ordered_categories(project: Path, open_report) -> None:
    subs = [
        {"params": {"wd": wd}, "status": done(), "jsonl": [{"step": s, "loss": wd + 1 / (s + 1)} for s in range(3)]}
        for wd in (0, 1e-4, 1e-3, 1e-2)
    ]
    loaded = open_report(analyze(Project.find(project), make_exp(project, subs)).path)
    views = wait_drawn(loaded, 2)
    assert all(v["painted"] >= 1 for v in views), views
    factors = loaded.page.evaluate(
        """() => [...Bokeh.documents[0].all_models]
            .filter((m) => m.title && m.title.text === "loss against wd")[0].x_range.factors"""
    )
    assert factors == ["0", "0.0001", "0.001", "0.01"]  # four places, not three at one edge
    assert_clean(loaded)


def grid_with_seeds(project: Path, seeds: int = 2):  # noqa: ANN201
    """A 3x3 grid (lr x wd) with `seeds` runs each; the loss depends mostly on lr."""
    subs = []
    for lr in (0.1, 0.01, 0.001):
        for wd in (1, 2, 3):
            for seed in range(seeds):
                end = 0.1 + lr * 5 + wd * 0.01 + seed * 0.005
                lines = [{"epoch": e, "loss": end + 1.0 / (e + 1)} for e in range(8)]
                subs.append({"params": {"lr": lr, "wd": wd, "seed": seed}, "status": done(), "jsonl": lines})
    return make_exp(project, subs)


RENDERER_NAMES = """(title) => {
    const fig = [...Bokeh.documents[0].all_models].filter((m) => m.title && m.title.text === title)[0];
    return fig.renderers.map((r) => ({name: r.name, visible: r.visible, n: r.data_source.get_length()}));
}"""


def test_the_effects_plot_of_a_3x3_grid_has_one_glyph_group_per_value_and_a_heatmap(project: Path, open_report) -> None:
    exp = grid_with_seeds(project)
    loaded = open_report(analyze(Project.find(project), exp).path)
    views = wait_drawn(loaded, 4)
    drawn = {v["title"]: v["painted"] for v in views}
    assert drawn["loss against lr"] and drawn["loss against wd"], drawn
    assert drawn["loss (best over training, mean) over lr x wd"], drawn
    for param, values in (("lr", {"0.1", "0.01", "0.001"}), ("wd", {"1", "2", "3"})):
        renderers = loaded.page.evaluate(RENDERER_NAMES, f"loss against {param}")
        for series in ("best", "final"):
            groups = {r["name"].split(":", 1)[1] for r in renderers if r["name"].startswith(series + ":")}
            assert groups == values, (param, series, renderers)
            points = [r for r in renderers if r["name"] == f"runs:{series}"]
            assert points[0]["n"] == 18  # every run a point
    heat = loaded.page.evaluate(RENDERER_NAMES, "loss (best over training, mean) over lr x wd")
    assert [r["n"] for r in heat] == [9, 9]  # a cell and its label per (lr, wd)
    assert loaded.page.locator("#effects .mrl-heatmap").count() == 1
    assert_clean(loaded)


def test_the_curves_with_repeats_have_a_band_and_the_individual_runs_on_demand(project: Path, open_report) -> None:
    exp = grid_with_seeds(project, seeds=3)
    loaded = open_report(analyze(Project.find(project), exp).path)
    wait_drawn(loaded, 4)
    renderers = loaded.page.evaluate(RENDERER_NAMES, "loss")
    bands = [r for r in renderers if r["name"] == "band"]
    means = [r for r in renderers if r["name"] == "mean"]
    runs = [r for r in renderers if r["name"] == "runs"]
    assert len(bands) == len(means) == 9 and all(b["visible"] and b["n"] > 0 for b in bands)
    assert runs and not any(r["visible"] for r in runs)
    legend = legend_of(loaded, "loss")
    assert legend[-1] == "individual runs" and "lr=0.1, wd=1" in legend
    ticks = loaded.page.evaluate(
        """() => [...Bokeh.documents[0].all_models].filter((m) => m.title && m.title.text === "loss")[0]
                 .below[0].ticker.min_interval"""
    )
    assert ticks == 1  # integer epochs: no tick at 0.5
    # the legend entry shows the runs: click it (bokeh's click_policy "hide" toggles visibility)
    loaded.page.evaluate(
        """() => {
            const fig = [...Bokeh.documents[0].all_models].filter((m) => m.title && m.title.text === "loss")[0];
            const legend = fig.right.filter((m) => m.type === "Legend")[0];
            const item = legend.items.filter((i) => i.label.value === "individual runs")[0];
            item.renderers.forEach((r) => r.visible = true);
        }"""
    )
    assert all(r["visible"] for r in loaded.page.evaluate(RENDERER_NAMES, "loss") if r["name"] == "runs")
    assert_clean(loaded)


LINE_STYLES = """(title) => {
    const fig = [...Bokeh.documents[0].all_models].filter((m) => m.title && m.title.text === title)[0];
    return fig.renderers.filter((r) => r.name === "run")
        .map((r) => JSON.stringify([r.glyph.line_color, r.glyph.line_dash]));
}"""


def test_twelve_runs_are_twelve_lines_that_look_different(project: Path, open_report) -> None:
    # a factor with 12 values: Tol's 10 colours come round, the second lap is dashed
    subs = [{"params": {"lr": lr}, "status": done(), "jsonl": curve(6, lr)} for lr in range(1, 13)]
    loaded = open_report(analyze(Project.find(project), make_exp(project, subs)).path)
    views = wait_drawn(loaded, 2)
    assert all(v["painted"] >= 1 for v in views), views
    styles = loaded.page.evaluate(LINE_STYLES, "loss")
    assert len(styles) == 12 and len(set(styles)) == 12, styles
    assert_clean(loaded)


def test_many_combinations_with_repeats_draw_a_band_per_colour_as_one_patch(project: Path, open_report) -> None:
    subs = []
    for lr in range(6):
        for wd in range(4):  # 24 combinations: lines grouped by colour (lr)
            for seed in range(2):
                lines = [{"epoch": e, "loss": lr + wd * 0.1 + seed * 0.01 + 1.0 / (e + 1)} for e in range(8)]
                subs.append({"params": {"lr": lr, "wd": wd, "seed": seed}, "status": done(), "jsonl": lines})
    exp = make_exp(project, subs)
    loaded = open_report(analyze(Project.find(project), exp).path)
    views = wait_drawn(loaded, 4)
    assert all(v["painted"] >= 1 for v in views), views
    renderers = loaded.page.evaluate(RENDERER_NAMES, "loss")
    bands = [r for r in renderers if r["name"] == "band"]
    assert len(bands) == len([r for r in renderers if r["name"] == "mean"]) == 6  # one per colour
    assert all(b["visible"] and b["n"] == 4 * (2 * 8 + 1) for b in bands)  # 4 polygons, NaN between
    assert_clean(loaded)


def test_the_index_lists_every_experiment_and_its_links_resolve(project: Path, open_report) -> None:
    from tests.report.test_pages import two_experiments

    two_experiments(project)
    make_exp(project, [{"params": {"x": 1}}], XSS)
    proj = Project.find(project)
    analyze(proj, 2)
    from metarunlog.report.pages import write_index

    loaded = open_report(write_index(proj))
    page = loaded.page
    assert page.locator("tr.experiment").evaluate_all("(rows) => rows.map((r) => r.dataset.exp)") == [
        "0003",
        "0002",
        "0001",
    ]
    links = page.locator("a").evaluate_all("(as) => as.map((a) => a.href)")
    assert links and all(Path(href.removeprefix("file://")).is_file() for href in links), links
    assert page.locator("td.description", has_text=XSS).count() == 1  # shown as text
    page.locator("a.report-link").first.click()  # the link opens the experiment's own report
    page.wait_for_load_state("load")
    assert page.url.endswith("0002/analysis/index.html") and page.locator("#summary").count() == 1
    assert_clean(loaded)


def test_the_watch_page_reloads_while_a_run_is_active_and_not_after(project: Path, open_report) -> None:
    import json
    import subprocess
    import sys
    import time

    from tests.conftest import REPO_ROOT

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        exp = make_exp(project, [{"params": {"x": 1}, "status": running(worker.pid), "jsonl": curve(5, 0.1)}])
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        watcher = subprocess.Popen(
            [sys.executable, "-m", "metarunlog", "analyze", exp.name, "--watch", "1"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        report = exp.dir / "analysis" / "index.html"
        deadline = time.monotonic() + 60
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        loaded = open_report(report)
        loads = []
        loaded.page.on("load", lambda: loads.append(time.monotonic()))
        loaded.page.wait_for_timeout(3500)
        assert len(loads) >= 2, loads  # it reloaded itself while the run was active
        (exp.subexp_dir(1) / ".mrl.status").write_text(json.dumps(done().to_json()))
        worker.kill()
        out, err = watcher.communicate(timeout=120)
        assert watcher.returncode == 0, err
        loaded.page.wait_for_timeout(2500)  # the page picks up the last report on its next reload
        settled = len(loads)
        loaded.page.wait_for_timeout(3000)
        assert len(loads) == settled  # and then it stays
        assert "live: reloads" not in loaded.page.inner_text("header")
        assert_clean(loaded)
    finally:
        worker.kill()
        worker.wait()


def test_a_watch_of_many_seconds_does_not_reload_at_once(project: Path, open_report) -> None:
    # setTimeout takes at most 2**31-1 ms (~24.8 days); more fires at once: --watch 3000000
    # reloaded the page without pause
    import subprocess
    import sys
    import time

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        exp = make_exp(project, [{"params": {"x": 1}, "status": running(worker.pid), "jsonl": curve(5, 0.1)}])
        loaded = open_report(analyze(Project.find(project), exp, refresh=3_000_000).path)
        loads: list[float] = []
        loaded.page.on("load", lambda: loads.append(time.monotonic()))
        loaded.page.wait_for_timeout(2000)
        assert loads == []
        assert "live" in loaded.page.inner_text("header")
        assert_clean(loaded)
    finally:
        worker.kill()
        worker.wait()


def test_a_script_in_the_description_does_not_run_from_the_notes(project: Path, open_report) -> None:
    from tests.conftest import main

    assert main(["new", "-cp", "no", XSS]) == 0  # mrl new writes it into .mrl.note's heading
    exp = Project.find(project).load_exp("last")
    assert XSS in exp.note_path.read_text()
    loaded = open_report(analyze(Project.find(project), exp).path)
    assert loaded.page.locator("#notes h1", has_text="<script>").count() == 1  # as text
    assert_clean(loaded)


def test_every_section_is_there_and_the_comparison_page_draws_offline(project: Path, open_report) -> None:
    from metarunlog.report.pages import write_comparison

    a = grid_with_seeds(project)
    b = grid_with_seeds(project)
    loaded = open_report(analyze(Project.find(project), a).path)
    ids = loaded.page.locator("main > section").evaluate_all("(s) => s.map((x) => x.id)")
    assert ids[0] == "summary"
    assert {"summary", "git", "notes", "status", "table", "effects", "plots", "subexps"} <= set(ids)
    assert loaded.page.locator("#table table.aggregated tbody tr").count() == 9  # mean ± std per combination
    views = wait_drawn(loaded, 4)
    assert all(v["painted"] >= 1 for v in views), views
    assert_clean(loaded)
    path, errors = write_comparison(Project.find(project), [a, b])
    assert errors == []
    loaded = open_report(path)
    views = wait_drawn(loaded, 1)
    assert [v["title"] for v in views] == ["loss"] and views[0]["painted"] >= 1
    legend = legend_of(loaded, "loss")
    assert any(item.startswith(f"{a.name}: lr=") for item in legend)
    assert any(item.startswith(f"{b.name}: lr=") for item in legend)
    assert loaded.page.locator("#experiments tr.experiment").count() == 2
    assert loaded.page.locator("#experiments a.report-link").get_attribute("href") == f"{a.name}/analysis/index.html"
    assert_clean(loaded)


def test_a_readers_warning_is_shown_in_the_summary_as_text(project: Path, open_report) -> None:
    from tests.helpers.repo import commit_all

    hostile = "out<img src=x onerror=alert(4)>"
    set_cfg(project, outdir=hostile)
    commit_all(project, "an outdir whose name is markup")
    subs = [{"params": {"lr": i}, "status": done(), "jsonl": curve(5, i / 10)} for i in range(3)]
    subs[1]["jsonl"] = "".join(json.dumps(row) + "\n" for row in curve(5, 0.1)) + "not json\n"
    exp = make_exp(project, subs)
    res = analyze(Project.find(project), exp)
    loaded = open_report(res.path)
    wait_drawn(loaded, 3)
    warning = loaded.page.locator("#summary .mrl-warning")
    assert warning.count() == 1
    said = warning.inner_text()
    assert hostile in said and "002/metrics.jsonl: skipped 1 line(s) that are not JSON objects" in said
    assert warning.is_visible()
    assert_clean(loaded)
