"""metarunlog/report/functions.py: calling the user's mrl_analyze.py functions and turning what
they return into pieces of the page: real matplotlib PNGs, pandas frames, markdown, bokeh
figures; whatever the user's code does wrong is an error box, never a failed report. The
whole report through `mrl analyze` is in tests/commands/test_analyze.py."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from markupsafe import Markup

from metarunlog.report import functions
from metarunlog.report.functions import UserFunction, call_function, convert
from metarunlog.report.model import Piece, Report
from metarunlog.results import Table

pd = pytest.importorskip("pandas")


@pytest.fixture
def rep() -> Report:
    return Report(exp=cast(Any, None), project_name="p", table=Table([], [], []), subs=[])


def call(
    rep: Report, fn: Callable[..., Any], *args: Any, outdir: Path = Path("/nowhere"), xtra: Any = ()
) -> list[Piece]:
    return call_function(rep, UserFunction(fn.__name__, fn, list(xtra)), args, outdir, "overview").pieces


def png(path: Path) -> Path:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)
    return path


def test_the_function_gets_the_args_then_its_registered_extra_args(rep: Report) -> None:
    seen = []

    def over(exp_dir: str, outdir: str, scale: str, label: str) -> list[Any]:
        seen.append((exp_dir, outdir, scale, label))
        return [(f"**{label}**", "text", "Heading")]

    pieces = call(rep, over, "/e", "/o", xtra=["log", "loss"])
    assert seen == [("/e", "/o", "log", "loss")]
    assert pieces == [Piece("html", "Heading", html=Markup("<p><strong>loss</strong></p>"))]


def test_a_function_that_raises_is_an_error_box_with_its_own_traceback_and_a_report_error(rep: Report) -> None:
    def broken() -> None:
        return {}["missing"]  # type: ignore[no-any-return]

    (piece,) = call(rep, broken)
    assert piece.kind == "error" and piece.error == "broken() raised KeyError: 'missing'"
    assert 'return {}["missing"]' in piece.detail and "call_function" not in piece.detail
    assert rep.errors == ["overview: broken() raised KeyError: 'missing'"]


@pytest.mark.parametrize(("code", "failed"), [(0, False), (None, False), (2, True), ("usage", True)])
def test_sys_exit_zero_is_nothing_to_show_and_any_other_exit_an_error(rep: Report, code: Any, failed: bool) -> None:
    def script_like() -> None:
        sys.exit(code)

    pieces = call(rep, script_like)
    assert [p.error for p in pieces] == ([f"script_like() exited with {code}"] if failed else [])
    assert bool(rep.errors) is failed


@pytest.mark.parametrize(
    ("retval", "error"),
    [
        (42, "f() returned int: it must return a list of (data, rtype, header) tuples"),
        ("text", "f() returned str: it must return"),
        ([("x", "text", "h"), "loose"], "f() returned item 1 that is not a (data, rtype, header) tuple: 'loose'"),
        ([("x",)], "f() returned item 0 that is not a (data, rtype, header) tuple: ('x',)"),
        ([("a" * 200, "text", "h", "extra")], "f() returned item 0 that is not a (data, rtype, header) tuple: ('aaa"),
    ],
)
def test_a_return_value_of_the_wrong_shape_is_one_error_box(rep: Report, retval: Any, error: str) -> None:
    def f() -> Any:
        return retval

    (piece,) = call(rep, f)
    assert piece.kind == "error"
    assert piece.error.startswith(error), piece.error
    assert len(piece.error) < 160  # a long repr is cut to one readable line


def test_none_is_nothing_and_a_pair_has_no_header(rep: Report) -> None:
    assert call(rep, lambda: None) == []
    (piece,) = call(rep, lambda: [("plain", "html")])
    assert piece == Piece("html", None, html=Markup("plain"))
    (piece,) = call(rep, lambda: [("plain", "html", "")])
    assert piece.header is None


def test_an_unknown_rtype_is_an_error_box_listing_the_rtypes_and_the_rest_still_shows(rep: Report) -> None:
    pieces = call(rep, lambda: [("x", "svg", "h"), ("<b>ok</b>", "html", None)])
    assert pieces[0].kind == "error" and "unknown rtype 'svg'; use one of text, table, plot" in pieces[0].error
    assert pieces[1].html == Markup("<b>ok</b>")
    assert len(rep.errors) == 1


def test_the_user_s_prints_go_to_stderr_not_to_mrl_s_stdout(rep: Report, capsys: pytest.CaptureFixture[str]) -> None:
    def chatty() -> None:
        print("debugging my analysis")

    call(rep, chatty)
    out, err = capsys.readouterr()
    assert out == "" and err == "debugging my analysis\n"


def test_the_user_s_code_runs_with_the_garbage_collector_on_and_it_is_paused_again_after(rep: Report) -> None:
    during = []
    gc.disable()
    try:
        call(rep, lambda: during.append(gc.isenabled()))
        assert during == [True] and not gc.isenabled()
        call(rep, lambda: 1 / 0)  # also when it raises
        assert not gc.isenabled()
    finally:
        gc.enable()
    call(rep, lambda: during.append(gc.isenabled()))
    assert during == [True, True] and gc.isenabled()


def test_a_plot_is_embedded_as_a_data_uri_of_the_real_png(rep: Report, tmp_path: Path) -> None:
    import base64

    data = png(tmp_path / "curve.png").read_bytes()
    piece = convert(rep, "curve.png", "plot", "Loss", tmp_path, "f", "overview")
    assert piece.kind == "html" and 'src="data:image/png;base64,' in piece.html
    encoded = piece.html.split("base64,")[1].split('"')[0]
    assert base64.b64decode(encoded) == data


def test_a_plot_larger_than_the_inline_limit_is_linked(
    rep: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png(tmp_path / "big.png")
    monkeypatch.setattr(functions, "INLINE_IMAGE_MAX", 100)
    piece = convert(rep, "big.png", "plot", None, tmp_path, "f", "overview")
    assert 'src="big.png"' in piece.html and "base64" not in piece.html


def test_a_missing_plot_file_is_an_error_box_naming_it(rep: Report, tmp_path: Path) -> None:
    piece = convert(rep, "nope.png", "plot", None, tmp_path, "f", "sub-experiment 002")
    assert piece.kind == "error" and f"no image file {tmp_path / 'nope.png'}" in piece.error
    assert rep.errors == [
        f"sub-experiment 002: f() returned a plot that cannot be shown: no image file {tmp_path / 'nope.png'}"
    ]


def test_a_plot_name_with_quotes_and_markup_is_escaped_in_the_tag(rep: Report, tmp_path: Path) -> None:
    name = 'a" onerror="alert(1)"><b>.png'
    png(tmp_path / name)
    piece = convert(rep, name, "plot", None, tmp_path, "f", "overview")
    assert '" onerror=' not in piece.html and "<b>" not in piece.html and "&lt;b&gt;" in piece.html


def test_mp4_and_plotlinkbokeh_link_relative_to_the_report_folder(rep: Report, tmp_path: Path) -> None:
    png(tmp_path / "thumb.png")
    video = convert(rep, str(tmp_path / "clips" / "run.mp4"), "mp4", None, tmp_path, "f", "o")
    assert 'src="clips/run.mp4" type="video/mp4"' in video.html
    link = convert(rep, ("thumb.png", str(tmp_path / "fig.html")), "plotlinkbokeh", None, tmp_path, "f", "o")
    assert '<a href="fig.html"><img class="mrl-img" src="data:image/png;base64,' in link.html
    bad = convert(rep, "thumb.png", "plotlinkbokeh", None, tmp_path, "f", "o")
    assert bad.kind == "error" and "expected a (png file, html file) pair" in bad.error


@pytest.mark.parametrize("name", ["run #1.mp4", "acc 95%.mp4", "what?.mp4", 'a"<b>&c #2.mp4'])
def test_a_linked_file_s_name_is_a_url_that_opens_that_file(
    rep: Report, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file name is a URL once in src/href: `run #1.mp4` linked as is opened `run ` (the
    rest was the fragment), `95%.mp4` a percent escape; the browser must get the file named."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urljoin, urlsplit

    class Links(HTMLParser):
        urls: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.urls += [v or "" for k, v in attrs if k in ("src", "href") and not (v or "").startswith("data:")]

    image = name.replace(".mp4", ".png")
    png(tmp_path / image)
    (tmp_path / "sub dir #3").mkdir()
    monkeypatch.setattr(functions, "INLINE_IMAGE_MAX", 100)
    pieces = [
        convert(rep, name, "mp4", None, tmp_path, "f", "o"),
        convert(rep, image, "plot", None, tmp_path, "f", "o"),
        convert(rep, (image, str(tmp_path / "sub dir #3" / name)), "plotlinkbokeh", None, tmp_path, "f", "o"),
    ]
    parser = Links()
    for piece in pieces:
        parser.feed(piece.html)
    page = (tmp_path / "index.html").as_uri()
    opened = [unquote(urlsplit(urljoin(page, u)).path) for u in parser.urls]
    assert opened == [
        str(tmp_path / name),
        str(tmp_path / image),
        str(tmp_path / "sub dir #3" / name),
        str(tmp_path / image),
    ]


def test_a_table_escapes_its_text_cells_labels_and_index_names_but_keeps_markup(rep: Report, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"<b>col</b>": ["<script>alert(1)</script>", Markup("<i>mine</i>")], "n": [1.5, float("nan")]},
        index=pd.Index(["<r1>", "r2"], name="<idx>"),
    )
    piece = convert(rep, frame, "table", "T", tmp_path, "f", "o")
    html = str(piece.html)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>mine</i>" in html and "&lt;b&gt;col&lt;/b&gt;" in html and "&lt;idx&gt;" in html and "&lt;r1&gt;" in html
    assert "1.5" in html and "nan" not in html.lower().replace("mrl-table", "")  # NaN is an empty cell
    assert frame.iloc[0, 0] == "<script>alert(1)</script>"  # the user's frame is left as it was


def test_a_table_may_be_a_list_of_dicts(rep: Report, tmp_path: Path) -> None:
    piece = convert(rep, [{"lr": 0.1, "acc": 0.9}, {"lr": 0.2, "acc": 0.8}], "table", None, tmp_path, "f", "o")
    assert (
        piece.kind == "html" and piece.html.count("<tr") == 3 and 'class="dataframe mrl-table user-table"' in piece.html
    )


def test_markdown_text_gets_tables_and_fenced_code_and_html_is_passed_as_it_is(rep: Report, tmp_path: Path) -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode <here>\n```\n"
    html = str(convert(rep, text, "text", None, tmp_path, "f", "o").html)
    assert "<table>" in html and "<td>1</td>" in html and "<code>code &lt;here&gt;\n</code>" in html
    assert convert(rep, "<div id=x>raw</div>", "html", None, tmp_path, "f", "o").html == Markup("<div id=x>raw</div>")


def test_a_bokeh_figure_is_kept_by_key_and_anything_else_is_an_error_box(rep: Report, tmp_path: Path) -> None:
    from bokeh.plotting import figure

    fig = figure()
    piece = convert(rep, fig, "bokeh", "B", tmp_path, "f", "o")
    assert piece == Piece("bokeh", "B", key="user0") and rep.models["user0"] is fig
    assert convert(rep, figure(), "bokeh", None, tmp_path, "f", "o").key == "user1"
    bad = convert(rep, "<svg/>", "bokeh", None, tmp_path, "f", "o")
    assert bad.kind == "error" and "expected a bokeh model (figure, layout...), got str" in bad.error


def test_registered_functions_are_resolved_with_their_extra_args(project: Path) -> None:
    (project / "mrl_analyze.py").write_text("def over(*a):\n    return a\n\ndef per(*a):\n    return a\n")
    cfg = {"analysis_overview": {"over": ["log", 2]}, "analysis_subexp": {"per": "text"}}  # the original's bare rtype
    overview, per_sub = functions.user_functions(project, cfg)
    assert [(u.name, u.xtrargs) for u in overview] == [("over", ["log", 2])]
    assert [(u.name, u.xtrargs) for u in per_sub] == [("per", [])]
    assert overview[0].fn(1) == (1,)


def test_a_registered_name_mrl_analyze_py_lacks_is_a_hook_error_before_any_work(project: Path) -> None:
    from metarunlog.errors import HookError

    (project / "mrl_analyze.py").write_text("def other():\n    pass\n")
    with pytest.raises(HookError, match="'missing' is registered in .mrl.cfg but .*mrl_analyze.py defines no function"):
        functions.user_functions(project, {"analysis_overview": {}, "analysis_subexp": {"missing": []}})


@pytest.mark.parametrize(
    "column",
    [
        pytest.param(lambda v: pd.Categorical(v), id="categorical"),  # pd.cut, read_csv(dtype="category")
        pytest.param(lambda v: pd.array(v, dtype="string"), id="string"),
        pytest.param(lambda v: pd.arrays.SparseArray(v, fill_value=None), id="sparse"),
        pytest.param(lambda v: v, id="object"),
    ],
)
def test_text_in_a_column_of_any_dtype_is_escaped(rep: Report, tmp_path: Path, column: Any) -> None:
    frame = pd.DataFrame({"c": column(["<img src=x onerror=alert(1)>", "ok", "<img src=x onerror=alert(1)>"])})
    html = str(convert(rep, frame, "table", None, tmp_path, "f", "o").html)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "ok" in html
