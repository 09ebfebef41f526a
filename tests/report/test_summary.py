"""The report's #summary: primary metric and goal, the best runs (as the table says), counts
by state, failed and stale runs with their reason in view; the notes' escaped heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metarunlog import results
from metarunlog.commands.analyze import analyze
from metarunlog.project import Project
from metarunlog.states import JobState
from tests.helpers.records import done, make_exp
from tests.helpers.repo import commit_all, run_mrl, set_cfg


def section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}"[^>]*>(.*?)</section>', html, re.S)
    assert m, f"no #{sid}"
    return m.group(1)


def text(html: str) -> str:
    import html as h

    return re.sub(r"\s+", " ", h.unescape(re.sub(r"<[^>]+>", " ", html))).replace("\xa0", " ")


def early_and_late(project: Path):  # noqa: ANN201
    """002 dips lowest mid-training then ends worse than 003 (quickstart's 006 vs 005)."""
    dip = [{"step": s, "loss": v} for s, v in enumerate([1.0, 0.5, 0.09, 0.3, 0.4])]
    steady = [{"step": s, "loss": v} for s, v in enumerate([1.0, 0.6, 0.4, 0.3, 0.2])]
    flat = [{"step": s, "loss": v} for s, v in enumerate([1.0, 0.9, 0.8, 0.7, 0.6])]
    return make_exp(
        project,
        [
            {"params": {"lr": 0.1}, "status": done(), "jsonl": flat},
            {"params": {"lr": 0.3}, "status": done(), "jsonl": dip},
            {"params": {"lr": 0.5}, "status": done(), "jsonl": steady},
            {
                "params": {"lr": 0.9},
                "status": done(state=JobState.FAILED, exit_code=3),
                "log": "==== mrl attempt 1\nepoch 1\nRuntimeError: CUDA error: out of memory\n",
            },
        ],
    )


def test_the_summary_names_the_best_run_by_best_value_and_by_final_value_when_they_differ(project: Path) -> None:
    exp = early_and_late(project)
    html = analyze(Project.find(project), exp).path.read_text()
    assert html.index('<section id="summary"') < html.index('<section id="git"')  # at the top
    summary = section(html, "summary")
    assert 'data-criterion="best" data-run="002"' in summary
    assert 'data-criterion="final" data-run="003"' in summary
    words = text(summary)
    assert "Primary metric: loss (lower is better)" in words
    assert "0.09 at step 2" in words and "lr=0.3" in words
    # The table agrees: its best column crowns 002, its last column 003.
    tab = results.table(exp, summary="both")
    assert min(tab.rows, key=lambda r: r.get("loss_best") if r.get("loss_best") is not None else 9)["id"] == "002"


def test_a_failed_run_shows_its_exit_code_and_last_log_lines_outside_any_details(project: Path) -> None:
    exp = early_and_late(project)
    summary = section(analyze(Project.find(project), exp).path.read_text(), "summary")
    assert "<details" not in summary
    failure = summary[summary.index('class="failure" data-run="004"') :]
    assert "exit code 3" in failure and "RuntimeError: CUDA error: out of memory" in failure
    assert re.search(r"4 sub-experiments: done +3, failed +1", text(summary))


def test_a_stale_run_says_its_process_is_gone(project: Path) -> None:
    import dataclasses
    import subprocess
    import sys

    from tests.helpers.records import running

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    exp = make_exp(project, [{"params": {"x": 1}, "status": dataclasses.replace(running(gone.pid))}])
    summary = text(section(analyze(Project.find(project), exp).path.read_text(), "summary"))
    assert f"pid {gone.pid}" in summary and "is gone" in summary


def test_the_primary_metric_comes_from_the_config_and_an_unknown_one_is_a_warning(project: Path) -> None:
    exp = early_and_late(project)
    (exp.subexp_dir(1) / "metrics.json").write_text('{"acc": 0.5}')
    (exp.subexp_dir(2) / "metrics.json").write_text('{"acc": 0.9}')
    set_cfg(project, report={"primary_metric": "acc"})
    summary = section(analyze(Project.find(project), exp.id).path.read_text(), "summary")
    assert "Primary metric: acc (higher is better)" in text(summary)
    assert 'data-criterion="best" data-run="002"' in summary and 'data-criterion="final"' not in summary
    set_cfg(project, report={"primary_metric": "val_bleu"})
    res = analyze(Project.find(project), exp.id)
    assert "report.primary_metric is 'val_bleu', which no sub-experiment has" in text(
        section(res.path.read_text(), "summary")
    )
    assert res.warnings and "val_bleu" in res.warnings[0]


def test_the_description_in_the_notes_heading_is_escaped(project: Path) -> None:
    from tests.conftest import main

    assert main(["new", "-cp", "no", "<script>window.__xss = 1</script> *try*"]) == 0
    exp = Project.find(project).load_exp("last")
    notes = section(analyze(Project.find(project), exp).path.read_text(), "notes")
    assert "<script>" not in notes and "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in notes


def test_with_repeats_the_summary_names_the_best_combination_by_its_mean(project: Path) -> None:
    subs = [
        {"params": {"lr": lr, "seed": s}, "status": done(), "jsonl": [{"step": 0, "loss": lr + s / 100}]}
        for lr in (0.3, 0.1, 0.2)
        for s in range(2)
    ]
    exp = make_exp(project, subs)
    summary = text(section(analyze(Project.find(project), exp).path.read_text(), "summary"))
    assert "Best combination over repeats: lr=0.1 with loss = 0.105 ± 0.005 (best over training, mean of 2" in summary


def test_the_best_run_is_said_at_its_own_step_key_when_runs_log_different_ones(project: Path) -> None:
    # a TensorBoard run logs `step`, a CSV one `epoch`: the CSV run's best was "at step 3"
    by_step = [{"step": s, "loss": v} for s, v in enumerate([1.0, 0.8, 0.7, 0.6])]
    by_epoch = [{"epoch": e, "loss": v} for e, v in enumerate([1.0, 0.5, 0.3, 0.1])]
    exp = make_exp(
        project,
        [
            {"params": {"fmt": "tb"}, "status": done(), "jsonl": by_step},
            {"params": {"fmt": "csv"}, "status": done(), "jsonl": by_epoch},
        ],
    )
    words = text(section(analyze(Project.find(project), exp).path.read_text(), "summary"))
    assert "Best over training: 002 with loss = 0.1 at epoch 3" in words, words


def test_a_progress_bar_in_the_log_is_one_line_as_a_terminal_shows_it(project: Path) -> None:
    # tqdm redraws its bar with \r: counted as a line per redraw, the bar's last 10 states
    # filled the failure's tail and pushed out the lines before it
    bar = "".join(f"\r{i}%|{'#' * (i // 10)}| {i}/100" for i in range(101))
    log = "==== mrl attempt 1\nepoch 3 val_loss=0.41\n" + bar + "\nKilled: out of memory\r\n"
    exp = make_exp(
        project,
        [{"params": {}, "status": done(state=JobState.FAILED, exit_code=137), "jsonl": [{"loss": 1}], "log": log}],
    )
    summary = section(analyze(Project.find(project), exp).path.read_text(), "summary")
    tail = re.search(r'<pre class="log-tail">(.*?)</pre>', summary, re.S).group(1).split("\n")
    assert tail == ["==== mrl attempt 1", "epoch 3 val_loss=0.41", "100%|##########| 100/100", "Killed: out of memory"]


@pytest.mark.parametrize("n", [2, 100], ids=["in-process", "forked reader"])
def test_the_readers_warnings_are_in_the_summary_escaped_and_said_once_on_stderr(project: Path, n: int) -> None:
    # They reached only stderr; with 100 runs a forked child reads most of them.
    set_cfg(project, outdir="out<b>x")
    commit_all(project, "an outdir whose name is markup")
    subs = [{"params": {"lr": i}, "status": done(), "jsonl": '{"step": 0, "loss": 1}\n'} for i in range(n)]
    subs[n - 2]["jsonl"] = '{"step": 0, "loss": 1}\n[1, 2]\n"text"\n'
    exp = make_exp(project, subs)
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    said = f"{exp.subexp_dir(n - 1)}/metrics.jsonl: skipped 2 line(s) that are not JSON objects (the first: line 2)"
    assert proc.stderr.count(said) == 1, proc.stderr
    page = (exp.dir / "analysis" / "index.html").read_text()
    summary = section(page, "summary")
    assert '<p class="mrl-warning">' in summary and "out&lt;b&gt;x" in summary and "out<b>x" not in summary
    assert said in text(summary)


def test_a_reason_in_the_record_is_in_the_report_escaped(project: Path) -> None:
    """slurm-s's records: past the requeue limit `failed` with a reason and no exit code, a
    sub-experiment its packed task never started `pending` with "not started: ...": the
    report said "failed (no exit code recorded)" and "pending" with no word of why."""
    limit = "requeued 2 times, its limit (run.slurm.requeue: 2) <b>"
    never = "not started: its Slurm task 7_2 reached its time limit first <img src=x>"
    failed = done(state=JobState.FAILED, exit_code=None)._next(reason=limit)
    # (queued over a failed one: a done one whose --force rerun never started is done again)
    earlier = done(state=JobState.FAILED, exit_code=1)
    pending = earlier.queued("slurm", "7_2", "2026-12-01T10:00:00+00:00", packed=True).not_started(never)
    exp = make_exp(project, [{"params": {"x": 1}, "status": failed}, {"params": {"x": 2}, "status": pending}])
    html = analyze(Project.find(project), exp).path.read_text()
    assert "<b>" not in html and "<img src=x>" not in html
    failure = section(html, "summary")[section(html, "summary").index('class="failure" data-run="001"') :]
    assert "requeued 2 times, its limit (run.slurm.requeue: 2) &lt;b&gt;" in failure
    assert "no exit code recorded" not in failure
    subexps = section(html, "subexps")
    second = subexps[subexps.index('<details class="subexp" id="002"') :]
    why = "not started: its Slurm task 7_2 reached its time limit first &lt;img src=x&gt;"
    assert f"<tr><th>reason</th><td>{why}</td></tr>" in second
    first = subexps[: subexps.index('<details class="subexp" id="002"')]
    assert "<tr><th>reason</th><td>requeued 2 times" in first


def test_by_default_the_primary_metric_is_the_first_one_with_a_goal_not_a_logged_lr_or_grad_norm(
    project: Path,
) -> None:
    """A script that logs its schedule and grad norm before its loss (a common order) gets a
    report that ranks by the loss: a first metric with no goal ranks nothing. The index
    shows the same best."""

    def rows(lr: float) -> list[dict[str, float]]:
        return [{"step": s, "lr_now": lr * 0.9**s, "grad_norm": 1.0, "val_loss": 1 / (1 + s * lr)} for s in range(4)]

    exp = make_exp(project, [{"params": {"lr": lr}, "status": done(), "jsonl": rows(lr)} for lr in (0.1, 1.0, 0.5)])
    summary = text(section(analyze(Project.find(project), exp).path.read_text(), "summary"))
    assert "Primary metric: val_loss (lower is better)" in summary
    assert re.search(r"Best over training: 002 with val_loss = 0\.25 at step 3", summary), summary
    proc = run_mrl("analyze", "--index", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "val_loss = 0.25 (002)" in text((Project.find(project).outdir / "index.html").read_text())


def test_a_primary_metric_without_a_goal_still_gets_a_heatmap_of_its_final_values(project: Path) -> None:
    """`report.primary_metric` naming a metric with no goal: no best values exist, so the
    heatmap shows the final values and says so (it was empty and titled "best")."""
    from metarunlog import report

    subs = [
        {"params": {"a": a, "b": b}, "status": done(), "jsonl": [{"step": 0, "gnorm": a * b}]}
        for a in (1, 2)
        for b in (3, 4)
    ]
    exp = make_exp(project, subs)
    set_cfg(project, report={"primary_metric": "gnorm"})
    exp = Project.find(project).load_exp(exp.id)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    heat = next(m for k, m in rep.models.items() if k.startswith("heatmap"))
    assert heat.title.text == "gnorm (final value, mean) over a x b"
    cells = heat.renderers[0].data_source.data
    assert dict(zip(zip(cells["a"], cells["b"], strict=True), cells["mean"], strict=True)) == {
        ("1", "3"): 3,
        ("1", "4"): 4,
        ("2", "3"): 6,
        ("2", "4"): 8,
    }


def test_a_heatmap_is_wide_enough_for_its_title(project: Path) -> None:
    """Two values a side made a 340 px figure under a 60-character title: chromium cut it at
    "...over learning-rate x model.dropou" (about 8 px a character of bokeh's 13 px bold)."""
    from metarunlog import report

    subs = [
        {"params": {"learning-rate": a, "model.dropout": b}, "status": done(), "jsonl": [{"step": 0, "loss": a + b}]}
        for a in (0.1, 1)
        for b in (0.0, 0.5)
    ]
    exp = make_exp(project, subs)
    rep = report.build_report(exp, project, exp.dir / "analysis")
    heat = next(m for k, m in rep.models.items() if k.startswith("heatmap"))
    assert heat.title.text == "loss (best over training, mean) over learning-rate x model.dropout"
    assert heat.width >= 8 * len(heat.title.text) + 40


def test_the_summary_says_what_chose_the_primary_metric_and_its_goal_so_a_changed_cfg_reranks_nothing_silently(
    project: Path,
) -> None:
    # report.primary_metric and metric_goals are read when the report is made (not pinned):
    # changing .mrl.cfg re-ranked an old experiment's next report with no word of why
    import json

    subs = [
        {"params": {"lr": lr}, "status": done(), "jsonl": [{"step": 0, "val_loss": loss, "val_acc": acc}]}
        for lr, loss, acc in ((0.1, 0.5, 0.9), (0.01, 0.25, 0.7))
    ]
    exp = make_exp(project, subs)

    def primary() -> str:
        res = run_mrl("analyze", str(exp.id), cwd=project)
        assert res.returncode == 0, res.stderr
        summary = text(section((exp.dir / "analysis" / "index.html").read_text(), "summary"))
        return summary.split("Best over")[0].replace(" , ", ", ")  # text() spaces out the tags

    assert "Primary metric: val_loss (lower is better), chosen by the first metric with a goal " in primary()
    assert "(report.primary_metric is not set); its goal by its name" in primary()
    set_cfg(project, report={"primary_metric": "val_acc"})
    said = "val_acc (higher is better), chosen by report.primary_metric in .mrl.cfg; its goal by its name"
    assert said in primary()
    own = {"report": {"primary_metric": "val_loss"}, "metric_goals": {"val_*": "max"}}
    (exp.dir / ".mrl.cfg").write_text(json.dumps(own))  # the experiment's own overrides
    said = f"val_loss (higher is better), chosen by report.primary_metric in {exp.name}/.mrl.cfg; "
    assert said + f"its goal by metric_goals in {exp.name}/.mrl.cfg" in primary()
    (exp.dir / ".mrl.cfg").unlink()
    (project / "mrl_analyze.py").write_text('metric_goals = {"val_acc": "min"}\n')
    said = "val_acc (lower is better), chosen by report.primary_metric in .mrl.cfg; "
    assert said + "its goal by metric_goals in mrl_analyze.py" in primary()


def test_metric_goals_of_mrl_cfg_win_over_mrl_analyze_py_s_and_a_name_over_a_glob(project: Path) -> None:
    # the merged goals put mrl_analyze.py's first, and the first glob matching won: its
    # "val_*": "max" beat .mrl.cfg's "val_loss": "min" (docs: .mrl.cfg's win)
    import json

    from metarunlog.metrics import goal_of

    assert goal_of("val_loss", {"*_loss": "max", "val_loss": "min"}) == "min"
    subs = [
        {"params": {"lr": lr}, "status": done(), "jsonl": [{"step": s, "val_loss": v} for s, v in enumerate(vals)]}
        for lr, vals in ((0.1, (0.5, 0.2, 0.9)), (0.01, (0.4, 0.3, 0.35)))
    ]
    make_exp(project, subs)
    (project / "mrl_analyze.py").write_text('metric_goals = {"val_*": "max"}\n')
    set_cfg(project, metric_goals={"val_loss": "min"})
    res = run_mrl("table", "--summary", "best", "--json", cwd=project)
    assert res.returncode == 0, res.stderr
    assert [(r["val_loss"], r["val_loss_step"]) for r in json.loads(res.stdout)] == [(0.2, 1), (0.3, 1)]
