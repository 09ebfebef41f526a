"""`mrl analyze 2 3` (a comparison report), `mrl analyze --index` and `--watch`."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from metarunlog.commands.analyze import analyze, watch
from metarunlog.main import main
from metarunlog.project import Project
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.helpers.records import curve, done, make_exp, running
from tests.helpers.repo import run_mrl, set_cfg


def two_experiments(project: Path) -> tuple:
    a = make_exp(
        project, [{"params": {"lr": lr}, "status": done(), "jsonl": curve(6, lr)} for lr in (0.1, 0.2)], "first"
    )
    b = make_exp(
        project, [{"params": {"lr": lr}, "status": done(), "jsonl": curve(6, lr)} for lr in (0.05, 0.3)], "second"
    )
    return a, b


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"#][^"]*)"', html)


def test_analyze_two_experiments_writes_one_comparison_with_each_commit_and_report_link(project: Path) -> None:
    a, b = two_experiments(project)
    assert main(["analyze", "1"]) == 0  # the first one has its own report, the second not yet
    own = Project.find(project).outdir / "0002" / "analysis" / "index.html"
    assert not own.exists()
    proc = run_mrl("analyze", "1", "2", cwd=project)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == Project.find(project).outdir / "compare-0001-0002.html"
    page = path.read_text()
    for exp in (a, b):
        assert exp.record["gitHash"][:12] in page and f'data-exp="{exp.name}"' in page
    links = hrefs(page)  # the missing report of 0002 was written first: every link resolves
    assert links == ["0001/analysis/index.html", "0002/analysis/index.html"] and own.is_file()
    assert all((path.parent / link).is_file() for link in links) and "no report yet" not in page
    table = page[page.index('<section id="table">') : page.index('<section id="plots">')]
    assert re.search(r"<th[^>]*>exp</th>", table)  # one table, an exp column
    assert table.count("<tr>") == 5  # header + the 4 runs
    assert "0001/001: lr=0.1" in page and "0002/001: lr=0.05" in page  # curves named by experiment


def test_the_index_lists_every_experiment_newest_first_with_tags_counts_and_report_state(project: Path) -> None:
    a, b = two_experiments(project)
    make_exp(project, [{"params": {"x": 1}, "status": done(state=JobState.FAILED, exit_code=1)}], "<b>third</b>")
    assert main(["tag", "1", "+baseline"]) == 0
    assert main(["analyze", "1"]) == 0
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    page = index.read_text()
    assert re.findall(r'data-exp="(\d+)"', page) == ["0003", "0002", "0001"]
    assert "&lt;b&gt;third&lt;/b&gt;" in page and "<b>third</b>" not in page  # escaped
    assert '<span class="tag">baseline</span>' in page
    assert f"loss = <strong>{1 / 6 + 0.1:.6g}</strong> (001)" in page  # 0001's best loss over training
    assert all((index.parent / h).is_file() for h in hrefs(page)) and "report-made" in page
    # a run changes after the report was written: the index says the report is stale
    later = dataclasses.replace(done(), duration=99.0)
    status_path = a.subexp_dir(2) / ".mrl.status"
    status_path.write_text(json.dumps(later.to_json()))
    os.utime(status_path, (os.path.getmtime(index) + 5, os.path.getmtime(index) + 5))
    assert main(["analyze", "--index"]) == 0
    assert "report-stale" in index.read_text() and "mrl analyze 1</code>)" in index.read_text()


@pytest.mark.parametrize(("name", "why"), [(".mrl", "corrupt record"), (".mrl.cfg", "it must be JSON")])
def test_an_experiment_whose_record_cannot_be_read_is_listed_in_the_index_with_why(
    project: Path, name: str, why: str
) -> None:
    # It was left out of "every experiment" without a word; a corrupt EXPDIR/.mrl.cfg then
    # stopped the whole index with its error (the report's path is read from that config).
    two_experiments(project)
    (project / "output" / "0001" / name).write_text("{broken <script>")
    proc = run_mrl("analyze", "--index", cwd=project)
    # exit 1, as `mrl table --all` with one unreadable experiment: the page is whole for the others
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("mrl: warning:") == 1 and f"output/0001/{name}" in proc.stderr
    assert "mrl: error" not in proc.stderr and proc.stdout.strip().endswith("index.html")
    assert run_mrl("table", "--all", cwd=project).returncode == proc.returncode
    page = (project / "output" / "index.html").read_text()
    assert re.findall(r'data-exp="(\d+)"', page) == ["0002", "0001"]
    row = page[page.index('data-exp="0001"') :].split("</tr>")[0]
    assert "record cannot be read: " in row and why in row and "<script>" not in row


def test_the_index_reuses_its_cache_for_experiments_that_did_not_change(project: Path) -> None:
    a, _ = two_experiments(project)
    assert main(["analyze", "--index"]) == 0
    cache = json.loads((Project.find(project).outdir / ".mrl.index.json").read_text())
    assert set(cache["experiments"]) == {"0001", "0002"}
    cache["experiments"]["0001"]["card"]["description"] = "from the cache"
    (Project.find(project).outdir / ".mrl.index.json").write_text(json.dumps(cache))
    assert main(["analyze", "--index"]) == 0
    assert "from the cache" in (Project.find(project).outdir / "index.html").read_text()


def test_the_index_remakes_a_cached_card_when_the_primary_metric_or_goals_change(project: Path) -> None:
    """The cache was keyed by the experiment's files only: after setting
    report.primary_metric (or metric_goals) the index kept showing the old best."""
    two_experiments(project)
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    assert "loss = <strong>" in index.read_text()
    set_cfg(project, report={"primary_metric": "acc"})
    assert main(["analyze", "--index"]) == 0
    assert "acc = <strong>" in index.read_text() and "loss = <strong>" not in index.read_text()
    set_cfg(project, report={"primary_metric": "acc"}, metric_goals={"acc": "min"})
    assert main(["analyze", "--index"]) == 0
    assert "acc = <strong>0</strong>" in index.read_text()  # acc starts at 0 in every run


def _same_size_rewrite(path: Path, text: str, mtime_ns: int) -> None:
    """Rewrite a file in place (same inode) with text of its size, keeping `mtime_ns`: what a
    write within one time step of the filesystem (a whole second on ext2/3, HFS+) leaves."""
    assert len(text) == path.stat().st_size
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_cached_card_is_not_trusted_when_its_files_are_not_older_than_the_cache(project: Path) -> None:
    """On a filesystem keeping whole seconds, a metrics file rewritten in the second the index
    read it keeps its mtime (and here its size and inode): the cache kept the old best. A
    file as new as the cache itself (git's "racily clean") now remakes its card."""
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "metrics": {"loss": 0.50000}}])
    metrics = exp.subexp_dir(1) / "metrics.json"
    stamp = metrics.stat().st_mtime_ns + 30 * 10**9  # not older than the cache about to be written
    _same_size_rewrite(metrics, metrics.read_text(), stamp)
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    assert "loss = <strong>0.5</strong>" in index.read_text()
    _same_size_rewrite(metrics, metrics.read_text().replace("0.5", "0.1"), stamp)
    assert main(["analyze", "--index"]) == 0
    assert "loss = <strong>0.1</strong>" in index.read_text()


def test_a_report_is_stale_when_a_run_file_is_as_new_as_the_report(project: Path) -> None:
    """A metrics file written in the report's own time step (same mtime) may be newer than what
    the report read: the index called the report made."""
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "metrics": {"loss": 0.50000}}])
    assert main(["analyze", "1"]) == 0
    report = exp.dir / "analysis" / "index.html"
    metrics = exp.subexp_dir(1) / "metrics.json"
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    assert "report-made" in index.read_text()
    _same_size_rewrite(metrics, metrics.read_text().replace("0.5", "0.1"), report.stat().st_mtime_ns)
    assert main(["analyze", "--index"]) == 0
    assert "report-stale" in index.read_text()


@pytest.mark.parametrize("garbage", ["[" * 100_000, "[1, 2]", '{"version": 1, "experiments": 5}', "\x00"])
def test_a_garbage_index_cache_is_rebuilt(project: Path, garbage: str) -> None:
    two_experiments(project)
    (Project.find(project).outdir / ".mrl.index.json").write_text(garbage)
    assert main(["analyze", "--index"]) == 0
    page = (Project.find(project).outdir / "index.html").read_text()
    assert re.findall(r'data-exp="(\d+)"', page) == ["0002", "0001"]


def test_watch_rewrites_while_a_run_is_active_and_the_last_page_no_longer_reloads(project: Path) -> None:
    exp = make_exp(project, [{"params": {"x": 1}, "status": running(os.getpid()), "jsonl": curve(3, 0.1)}])
    pages = []

    def sleep(seconds: float) -> None:
        pages.append(analyzed.read_text())
        if len(pages) == 2:  # the run finishes while we wait
            Path(exp.subexp_dir(1) / ".mrl.status").write_text(json.dumps(done().to_json()))

    analyzed = exp.dir / "analysis" / "index.html"
    res = watch(Project.find(project), exp, 0.5, sleep=sleep, index=True)
    assert res.rewrites == 3 and not res.active
    assert all("window.location.reload" in p and "live: reloads every 0.5 s" in p for p in pages)
    final = analyzed.read_text()
    assert "window.location.reload" not in final and "http-equiv" not in final
    assert res.index is not None and res.index.is_file()


def test_watch_with_index_makes_the_index_reload_too_while_runs_are_active_and_not_after(project: Path) -> None:
    # `--watch 30 --index` rewrote the index every 30 s, but the open index page never
    # reloaded: it showed the counts of when it was opened
    exp = make_exp(project, [{"params": {"x": 1}, "status": running(os.getpid()), "jsonl": curve(3, 0.1)}])
    index = Project.find(project).outdir / "index.html"
    pages = []

    def sleep(seconds: float) -> None:
        pages.append(index.read_text())
        Path(exp.subexp_dir(1) / ".mrl.status").write_text(json.dumps(done().to_json()))

    watch(Project.find(project), exp, 2, sleep=sleep, index=True)
    assert (
        len(pages) == 1 and "window.location.reload(); }, 2000)" in pages[0] and "live: reloads every 2 s" in pages[0]
    )
    assert "window.location.reload" not in index.read_text() and "http-equiv" not in index.read_text()
    assert main(["analyze", "--index"]) == 0 and "window.location.reload" not in index.read_text()


def test_a_plain_analyze_of_a_running_experiment_does_not_reload(project: Path) -> None:
    exp = make_exp(project, [{"params": {"x": 1}, "status": running(os.getpid())}])
    res = analyze(Project.find(project), exp)
    assert res.active and "window.location.reload" not in res.path.read_text()


def test_watch_needs_a_positive_number_of_seconds(project: Path) -> None:
    two_experiments(project)
    for bad in ("0", "-3", "soon"):
        proc = run_mrl("analyze", "--watch", bad, cwd=project)
        assert proc.returncode != 0 and "give a number of seconds greater than 0" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run_mrl("analyze", "1", "2", "--watch", "5", cwd=project)
    assert proc.returncode == 1 and "mrl: error: --watch and --notebook are for one experiment" in proc.stderr


def test_status_is_untouched_by_watch(project: Path) -> None:
    exp = make_exp(project, [{"params": {"x": 1}, "status": done()}])
    before = Status.from_json(json.loads((exp.subexp_dir(1) / ".mrl.status").read_text()))
    watch(Project.find(project), exp, 1, sleep=lambda s: None)
    after = Status.from_json(json.loads((exp.subexp_dir(1) / ".mrl.status").read_text()))
    assert before == after


def test_the_index_alone_goes_to_outdir_when_one_is_given_and_its_links_resolve_from_there(
    project: Path, tmp_path: Path
) -> None:
    # `mrl analyze --index -outdir DIR` wrote OUTDIR/index.html, leaving DIR empty
    two_experiments(project)
    assert main(["analyze", "1"]) == 0
    proc = run_mrl("analyze", "--index", "-outdir", str(tmp_path / "pub"), cwd=project)
    assert proc.returncode == 0, proc.stderr
    index = tmp_path / "pub" / "index.html"
    assert proc.stdout.strip() == str(index) and index.is_file()
    assert not (Project.find(project).outdir / "index.html").exists()
    links = hrefs(index.read_text())
    assert links and all((index.parent / h).resolve().is_file() for h in links), links


@pytest.mark.parametrize("args", [("2", "--index"), ("2", "3", "--index")], ids=["report", "comparison"])
def test_the_index_written_beside_a_report_or_comparison_exits_1_when_it_lists_an_unreadable_experiment(
    project: Path, args: tuple[str, ...]
) -> None:
    two_experiments(project)
    make_exp(project, [{"params": {"lr": 0.3}, "status": done(), "metrics": {"loss": 0.2}}])
    (project / "output" / "0001" / ".mrl").write_text("{broken")
    proc = run_mrl("analyze", *args, cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "mrl: warning: index: 0001: " in proc.stderr
    assert (project / "output" / "index.html").is_file()
    assert run_mrl("analyze", "2", "--index", cwd=project).returncode == 1
    (project / "output" / "0001" / ".mrl").unlink()  # gone: no experiment, nothing unreadable
    assert run_mrl("analyze", "2", "--index", cwd=project).returncode == 0


def test_report_links_of_folders_named_with_a_hash_or_percent_open_those_folders(project: Path) -> None:
    # a folder name is a URL once in an href: `exp #1/...` linked as is opened `exp ` (the
    # rest read as the fragment) from the index and the comparison
    from urllib.parse import unquote

    set_cfg(project, singleExpFormat="exp #{expId:02d} 100%", analysis_outdir="the report")
    subprocess.run(["git", "commit", "-qam", "format"], cwd=project, check=True)
    two_experiments(project)
    proc = run_mrl("analyze", "1", "2", "--index", cwd=project)
    assert proc.returncode == 0, proc.stderr
    outdir = Project.find(project).outdir
    compare = Path(proc.stdout.strip().splitlines()[0])  # compare-<both folder names>.html
    for page in (outdir / "index.html", compare):
        links = hrefs(page.read_text())
        assert len(links) >= 2 and not any("#" in h or " " in h for h in links), links
        assert all((outdir / unquote(h)).is_file() for h in links), links


def test_the_comparison_lists_the_readers_warnings_escaped_each_once(project: Path) -> None:
    # the single-experiment report's summary shows them (left-s); the comparison page had no
    # word of them: a cut metrics.json or skipped jsonl lines reached only stderr
    from tests.report.test_summary import section, text

    set_cfg(project, outdir="out<b>x")
    subprocess.run(["git", "commit", "-qam", "an outdir whose name is markup"], cwd=project, check=True)
    cut = done(state=JobState.CANCELLED, exit_code=None)
    first = make_exp(project, [{"params": {"lr": 1}, "status": done(), "jsonl": '{"step": 0, "loss": 1}\n[1]\n'}])
    second = make_exp(project, [{"params": {"lr": 2}, "status": cut, "metrics": {"acc": 1}}])
    (second.subexp_dir(1) / "metrics.json").write_text('{"acc": 0.')
    proc = run_mrl("analyze", "1", "2", cwd=project)
    assert proc.returncode == 0, proc.stderr
    skipped = f"{first.subexp_dir(1)}/metrics.jsonl: skipped 1 line(s) that are not JSON objects (the first: line 2)"
    cut_short = f"{second.subexp_dir(1) / 'metrics.json'} is empty or cut short"
    assert proc.stderr.count(skipped) == 1 and proc.stderr.count(cut_short) == 1, proc.stderr
    page = Path(proc.stdout.strip().splitlines()[0]).read_text()
    warnings = section(page, "warnings")
    assert "out<b>x" not in warnings and warnings.count('<p class="mrl-warning">') == 2
    assert skipped in text(warnings) and cut_short in text(warnings)
    assert '<a href="#warnings">warnings</a>' in page


def test_a_comparison_names_each_line_by_the_params_its_runs_have_never_a_param_of_the_other_as_none(
    project: Path,
) -> None:
    """0001 swept lr alone, 0002 lr and wd (with seeds): 0001's lines must not read `wd=None`,
    a value 0001 never had (its script used its own default), nor 0002's `lr=None`."""
    make_exp(project, [{"params": {"lr": lr}, "status": done(), "jsonl": curve(6, lr)} for lr in (0.1, 0.2)])
    subs = [
        {"params": {"wd": wd, "seed": seed}, "status": done(), "jsonl": curve(6, wd)}
        for wd in (1, 2)
        for seed in (0, 1)
    ]
    make_exp(project, subs)
    proc = run_mrl("analyze", "1", "2", cwd=project)
    assert proc.returncode == 0, proc.stderr
    page = Path(proc.stdout.strip().splitlines()[-1]).read_text()
    assert "0001/001: lr=0.1" in page and "0002: wd=1" in page  # a run's line, a combination's mean
    assert "=None" not in page


def _nested_csv(exp_dir: Path, losses: list[float]) -> Path:
    path = exp_dir / "001" / "lightning_logs" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(losses)))
    return path


def test_the_index_remakes_a_card_whose_nested_metrics_file_was_rewritten_after_its_run(project: Path) -> None:
    """The cache's signature watched only the sub folder's own metrics.{jsonl,json,csv}: a
    Lightning (or TensorBoard, or metrics.sources) file rewritten after the run ended, by a
    later evaluation, kept the old best in the index and called the report 'made'."""
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}])
    csv = _nested_csv(exp.dir, [0.9, 0.7])
    assert main(["analyze", "1"]) == 0
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    assert "loss = <strong>0.7</strong>" in index.read_text() and "report-made" in index.read_text()
    _nested_csv(exp.dir, [0.9, 0.7, 0.25])
    later = os.path.getmtime(index) + 5
    os.utime(csv, (later, later))
    assert main(["analyze", "--index"]) == 0
    page = index.read_text()
    assert "loss = <strong>0.25</strong>" in page and "report-stale" in page


def _score_txt_metrics(project: Path) -> None:
    """mrl_analyze.py whose metrics() reads each sub folder's score.txt, a file no reader reads."""
    (project / "mrl_analyze.py").write_text(
        "import os\n"
        "def metrics(subExpDir):\n"
        "    p = os.path.join(subExpDir, 'score.txt')\n"
        "    return {'score': float(open(p).read())} if os.path.exists(p) else None\n"
        "metric_goals = {'score': 'max'}\n"
    )


def test_the_index_remakes_every_card_when_mrl_analyze_has_a_metrics_function(project: Path) -> None:
    """A metrics() function may read any file: no signature proves its card still true."""
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}])
    (exp.dir / "001" / "score.txt").write_text("0.5")
    _score_txt_metrics(project)
    set_cfg(project, report={"primary_metric": "score"})
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    assert "score = <strong>0.5</strong>" in index.read_text()
    (exp.dir / "001" / "score.txt").write_text("0.75")  # the same size; no reader reads it
    assert main(["analyze", "--index"]) == 0
    assert "score = <strong>0.75</strong>" in index.read_text()


def test_the_report_is_stale_when_a_file_a_metrics_function_reads_changed_after_it(project: Path) -> None:
    """The stale mark compared the report with the files mrl's readers read: a file only
    metrics() read (score.txt) rewritten after the report left it marked 'made'."""
    exp = make_exp(project, [{"params": {"lr": lr}, "status": done()} for lr in (0.1, 0.2)])
    for sub, v in (("001", "0.5"), ("002", "0.25")):
        (exp.dir / sub / "score.txt").write_text(v)
    _score_txt_metrics(project)
    assert main(["analyze", "1"]) == 0
    assert main(["analyze", "--index"]) == 0
    index = Project.find(project).outdir / "index.html"
    assert "report-made" in index.read_text()  # just made: fresh, not stale
    (exp.dir / "002" / "score.txt").write_text("0.75")
    assert main(["analyze", "--index"]) == 0
    page = index.read_text()
    assert "score = <strong>0.75</strong> (002)" in page and "report-stale" in page
    assert main(["analyze", "1"]) == 0  # made again from the new values: fresh again
    assert main(["analyze", "--index"]) == 0
    assert "report-made" in index.read_text()
    (project / "mrl_analyze.py").unlink()  # made by a metrics() that is gone: its values are not the files'
    assert main(["analyze", "--index"]) == 0
    assert "report-stale" in index.read_text()


def _index_state(project: Path) -> str:
    """The report mark of the one card in the index (`made`, `stale`), read by `mrl analyze --index`."""
    proc = run_mrl("analyze", "--index", cwd=project)
    assert proc.returncode == 0, proc.stderr
    marks = re.findall(r"report-(made|stale|none)", (Project.find(project).outdir / "index.html").read_text())
    assert len(set(marks)) == 1, marks
    return marks[0]


def test_the_report_is_stale_once_the_mrl_cfg_settings_it_was_made_with_changed(project: Path) -> None:
    # the mark followed the runs' files and mrl_analyze.py only: a report made before
    # metric_goals, report.primary_metric or an experiment's .mrl.cfg changed read `made`
    exp = make_exp(project, [{"params": {"lr": lr}, "status": done(), "jsonl": curve(3, lr)} for lr in (0.1, 0.2)])
    assert run_mrl("analyze", "1", cwd=project).returncode == 0
    assert _index_state(project) == "made"
    set_cfg(project, copyFiles=["nothing.txt"])  # a key no report shows: still made
    assert _index_state(project) == "made"
    set_cfg(project, metric_goals={"loss": "max"})  # the project's .mrl.cfg: the best runs change
    assert _index_state(project) == "stale"
    assert run_mrl("analyze", "1", cwd=project).returncode == 0
    assert _index_state(project) == "made"
    (exp.dir / ".mrl.cfg").write_text(json.dumps({"report": {"primary_metric": "loss"}}))  # the experiment's own
    assert _index_state(project) == "stale"
    assert run_mrl("analyze", "1", cwd=project).returncode == 0
    assert _index_state(project) == "made"
    (project / "mrl_templates").mkdir()  # a report template of the user's
    (project / "mrl_templates" / "_notes.html").write_text("{% extends 'default:_notes.html' %}")
    assert _index_state(project) == "stale"


def test_a_metrics_function_returning_objects_and_sets_reads_made_until_a_value_changes(project: Path) -> None:
    # the mark hashed repr() of what metrics() returned: an object's repr carries its
    # address and a set of strings its order (another per process), so the report read
    # stale for ever, even just made; values are now hashed in a canonical form
    exp = make_exp(project, [{"params": {"lr": lr}, "status": done()} for lr in (0.1, 0.2)])
    for sub, v in (("001", "0.5"), ("002", "0.25")):
        (exp.dir / sub / "score.txt").write_text(v)
    (project / "mrl_analyze.py").write_text(
        "import os\n"
        "class Model:\n"
        "    pass\n"
        "def metrics(subExpDir):\n"
        "    score = float(open(os.path.join(subExpDir, 'score.txt')).read())\n"
        "    return {'score': score, 'model': Model(), 'tags': {'alpha', 'beta', 'gamma', 'delta', 'eps'}}\n"
    )
    assert run_mrl("analyze", "1", cwd=project).returncode == 0
    assert _index_state(project) == "made"
    assert _index_state(project) == "made"  # another process, another string hash order
    (exp.dir / "002" / "score.txt").write_text("0.75")  # a value changed: never too little
    assert _index_state(project) == "stale"


def test_the_canonical_form_of_metrics_values_shows_every_change_and_no_address() -> None:
    from metarunlog.results import canonical

    np = pytest.importorskip("numpy")
    big = np.zeros(3000)
    changed = big.copy()
    changed[1500] = 1.0  # in the middle repr() abbreviates: [0., 0., ..., 0.]
    assert repr(big) == repr(changed) and canonical(big) != canonical(changed)
    assert canonical({"m": object()}) == canonical({"m": object()})
    assert canonical({"a": 1}) != canonical({"a": 1.0}) != canonical({"a": True})
    assert canonical({"a": 1, "b": 2}) != canonical({"b": 2, "a": 1})  # the columns' order
    assert canonical({3, 1, 2}) == canonical({2, 3, 1})


def test_comparisons_of_more_than_six_experiments_each_get_their_own_page(project: Path) -> None:
    # the page was named by 3 ids + the last + the count: 1-6,8 and 1-5,7,8 were both
    # compare-0001-0002-0003-to-0008-7exps.html, and the second overwrote the first
    for i in range(8):
        make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "jsonl": curve(2, 0.1 + i)}], f"e{i}")
    pages = {}
    for sel in (["1-6", "8"], ["1-5", "7", "8"]):
        proc = run_mrl("analyze", *sel, cwd=project)
        assert proc.returncode == 0, proc.stderr
        pages[tuple(sel)] = Path(proc.stdout.strip().splitlines()[-1])
    first, second = pages.values()
    assert first != second and first.parent == second.parent
    assert 'data-exp="0006"' in first.read_text() and 'data-exp="0007"' not in first.read_text()
    assert 'data-exp="0007"' in second.read_text() and 'data-exp="0006"' not in second.read_text()
    again = run_mrl("analyze", "1-6", "8", cwd=project)  # the same selection: the same page
    assert Path(again.stdout.strip().splitlines()[-1]) == first
    assert first.name.startswith("compare-0001-0002-0003-to-0008-7exps-") and len(first.name) < 100
