"""Each built-in reader on files written the way real scripts and libraries write them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from metarunlog import api, metrics, results
from metarunlog.main import main
from tests.helpers.processes import start_mrl, wait_for
from tests.helpers.records import done, make_exp, running
from tests.helpers.repo import REPO_ROOT, commit_all, run_mrl, set_cfg


def table_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    capsys.readouterr()
    code = main(["table", "--json", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def one_sub(project: Path, files: dict[str, str], **spec: Any) -> Path:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done(), **spec}, {"params": {"lr": 0.2}}])
    sub = exp.subexp_dir(1)
    for rel, text in files.items():
        (sub / rel).parent.mkdir(parents=True, exist_ok=True)
        (sub / rel).write_text(text)
    return sub


# -- CSV ------------------------------------------------------------------------------------------


def test_a_keras_csvlogger_file_gives_the_last_epoch_and_epoch_is_not_a_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what keras.callbacks.CSVLogger("metrics.csv") writes
    one_sub(
        project, {"metrics.csv": "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.55,1.1\n1,0.7,0.8,0.6,0.9\n"}
    )
    code, rows, _ = table_json(capsys)
    assert code == 0
    assert (rows[0]["accuracy"], rows[0]["val_loss"]) == (0.7, 0.9) and "epoch" not in rows[0]


def test_a_hand_written_csv_with_a_capitalised_epoch_column_has_epoch_as_its_step(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # csv.writer(f).writerow(["Epoch", "Train Loss", "Val Acc"]): "Epoch" was a metric column
    # with no goal (a note asking for its metric_goals) and the best's step was the row index
    one_sub(project, {"metrics.csv": "Epoch,Train Loss,Val Acc\n3,1.0,0.5\n4,0.5,0.7\n5,0.6,0.6\n"})
    code, rows, err = table_json(capsys, "--summary", "best")
    assert code == 0, err
    assert "Epoch" not in rows[0] and "Epoch" not in err
    assert (rows[0]["Train Loss"], rows[0]["Train Loss_step"], rows[0]["Val Acc_step"]) == (0.5, 4, 4)
    curves = api.load_metrics(1)
    assert list(curves["Epoch"]) == [3, 4, 5]


def test_a_csv_with_a_utf8_byte_order_mark_keeps_its_step_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # pandas' to_csv(encoding="utf-8-sig") (what Excel wants) and Excel itself start the file
    # with a BOM: the first column was "\ufeffepoch", a metric, and epoch no step.
    pd = pytest.importorskip("pandas")
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    history = {"epoch": [3, 4, 5], "loss": [0.5, 0.3, 0.4]}
    pd.DataFrame(history).to_csv(exp.subexp_dir(1) / "metrics.csv", index=False, encoding="utf-8-sig")
    pd.DataFrame(history).to_csv(exp.subexp_dir(2) / "training.log", index=False, encoding="utf-8-sig")
    _, rows, _ = table_json(capsys, "--summary", "best")
    assert [(r["loss"], r["loss_step"]) for r in rows] == [(0.3, 4), (0.3, 4)]
    assert all(set(r) == {"id", "lr", "state", "duration", "loss", "loss_step"} for r in rows)


def test_json_files_with_a_utf8_byte_order_mark_are_read_whole(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Windows tools write one (PowerShell 5's Out-File, Notepad): the first metrics.jsonl line
    # was dropped as not JSON.
    bom = "\ufeff"
    one_sub(project, {"metrics.jsonl": bom + '{"step": 0, "loss": 0.2}\n{"step": 1, "loss": 0.4}\n',
                      "metrics.json": bom + '{"acc": 0.9}'})  # fmt: skip
    _, rows, err = table_json(capsys, "--summary", "best")
    assert (rows[0]["loss"], rows[0]["loss_step"], rows[0]["acc"]) == (0.2, 0, 0.9) and err == ""


def test_a_half_written_last_csv_row_is_ignored(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A run still writing `2,0.0134,0.98`: the row read so far, `2,0.0`, became the last and
    # the best val_loss (0.0 at epoch 2), a result that never happened.
    one_sub(
        project, {"metrics.csv": "epoch,val_loss,val_acc\n0,0.5,0.5\n1,0.3,0.7\n2,0.0"}, status=running(os.getpid())
    )
    _, rows, _ = table_json(capsys, "--summary", "both")
    assert (rows[0]["val_loss"], rows[0]["val_loss_best"], rows[0]["val_loss_best_step"]) == (0.3, 0.3, 1)


def test_a_half_written_last_line_of_run_log_is_not_matched(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A script's block-buffered stdout reaches run.log in 8 KB pieces, cut anywhere:
    # `val_acc=0.7` of `val_acc=0.75` was the last value while the run went on.
    set_cfg(project, metrics={"patterns": ["epoch (?P<epoch>\\d+) val_acc=(?P<val_acc>[0-9.]+)"]})
    commit_all(project, "patterns")
    one_sub(project, {"run.log": "epoch 0 val_acc=0.51\nepoch 1 val_acc=0.9"}, status=running(os.getpid()))
    _, rows, _ = table_json(capsys)
    assert rows[0]["val_acc"] == 0.51


def test_keras_s_training_log_is_read_only_when_it_is_csvlogger_output(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    # keras.callbacks.CSVLogger("training.log"), as in Keras' documentation
    (exp.subexp_dir(1) / "training.log").write_text("epoch,loss,val_loss\n0,0.9,1.0\n1,0.5,0.8\n")
    (exp.subexp_dir(2) / "training.log").write_text("starting training, lr=0.2\nepoch 1 done\n")
    _, rows, _ = table_json(capsys)
    assert (rows[0]["loss"], rows[0]["val_loss"]) == (0.5, 0.8)
    assert "starting training" not in json.dumps(rows) and rows[1].get("loss") is None


def test_lightning_s_sparse_csv_rows_keep_each_column_s_own_last_and_best(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # pytorch_lightning.loggers.CSVLogger: train and val metrics on alternate rows, empty cells between
    csv_text = (
        "epoch,step,train_loss,val_loss,val_acc\n"
        "0,49,0.9,,\n0,49,,0.8,0.61\n"
        "1,99,0.7,,\n1,99,,0.5,0.72\n"
        "2,149,0.6,,\n2,149,,0.6,0.70\n"
    )
    one_sub(
        project,
        {"lightning_logs/version_0/metrics.csv": csv_text, "lightning_logs/version_0/hparams.yaml": "lr: 0.1\n"},
    )
    _, rows, _ = table_json(capsys, "--summary", "both")
    r = rows[0]
    assert (r["train_loss"], r["val_loss"], r["val_acc"]) == (0.6, 0.6, 0.70)
    assert (r["val_loss_best"], r["val_loss_best_step"]) == (0.5, 99)
    assert (r["val_acc_best"], r["val_acc_best_step"]) == (0.72, 99)
    assert "step" not in r and "epoch" not in r


def test_a_source_glob_adds_a_csv_with_another_name(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, metrics={"sources": ["logs/*.csv"]})
    commit_all(project)
    one_sub(project, {"logs/history.csv": "epoch;bleu\n0;12.5\n1;20.25\n"})
    _, rows, _ = table_json(capsys)
    assert rows[0]["bleu"] == 20.25


# -- TensorBoard ------------------------------------------------------------------------------------


def write_events(logdir: Path) -> None:
    tbx = pytest.importorskip("tensorboardX")
    writer = tbx.SummaryWriter(str(logdir))
    for step in range(5):
        writer.add_scalar("Loss/train", 1.0 / (step + 1), step)
        writer.add_scalar("val_acc", [0.5, 0.75, 0.875, 0.8125, 0.75][step], step)
    writer.add_text("note", "not a scalar", 0)
    writer.close()


def test_tensorboard_events_written_by_tensorboardx_are_read(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    sub = one_sub(project, {})
    write_events(sub / "runs" / "exp1")
    _, rows, err = table_json(capsys, "--summary", "both")
    r = rows[0]
    assert r["Loss/train"] == pytest.approx(0.2) and r["val_acc"] == pytest.approx(0.75)
    assert (r["val_acc_best"], r["val_acc_best_step"]) == (pytest.approx(0.875), 2)
    assert "wall_time" not in r and "step" not in r and "note" not in r and err == ""


def test_event_files_in_train_and_validation_folders_get_their_folder_as_prefix(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    tbx = pytest.importorskip("tensorboardX")
    for part, loss in (("train", 0.5), ("validation", 0.7)):  # Keras' TensorBoard callback layout
        w = tbx.SummaryWriter(str(tmp_path / "logs" / part))
        w.add_scalar("epoch_loss", loss, 0)
        w.close()
    acc = metrics.Accumulator(metrics.DEFAULT_STEP_KEYS)
    acc.add(metrics.Finder().read(tmp_path).rows)
    assert acc.result().last == {"train/epoch_loss": 0.5, "validation/epoch_loss": pytest.approx(0.7)}


def test_add_hparams_metrics_have_one_column_across_runs_not_one_per_timestamp(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SummaryWriter.add_hparams (tensorboardX and torch.utils.tensorboard alike) writes its
    # metrics into a sub-folder named str(time.time()): each run had its own column
    # `1796146632.91/hparam/acc`, so no two runs could be compared on it.
    pytest.importorskip("tensorboard")
    tbx = pytest.importorskip("tensorboardX")
    exp = make_exp(project, [{"params": {"lr": lr}, "status": done()} for lr in (0.1, 0.2)])
    for i, acc in ((1, 0.4), (2, 0.6)):
        w = tbx.SummaryWriter(str(exp.subexp_dir(i) / "runs" / "exp1"))
        for step in range(3):
            w.add_scalar("train_loss", 1.0 / (step + i), step)
            w.add_scalars("loss", {"train": 1.0 / (step + 1), "val": 2.0 / (step + 1)}, step)
        w.add_hparams({"lr": 0.1 * i}, {"hparam/acc": acc})
        w.close()
    _, rows, err = table_json(capsys)
    assert [r["hparam/acc"] for r in rows] == [pytest.approx(0.4), pytest.approx(0.6)]
    assert [r["train_loss"] for r in rows] == [pytest.approx(1 / 3), pytest.approx(1 / 4)]
    assert [r["loss/train/loss"] for r in rows] == [pytest.approx(1 / 3)] * 2  # add_scalars' own folders stay
    assert sorted(rows[0]) == sorted(rows[1]) and err == ""


def test_tf2_style_tensor_scalars_as_keras_writes_them_are_read(tmp_path: Path) -> None:
    """Keras' TensorBoard callback (TF2 summaries) stores a scalar as a tensor with the
    `scalars` plugin, not as simple_value: write one such file with tensorboard's protos."""
    pytest.importorskip("tensorboard")
    record_writer = pytest.importorskip("tensorboardX.record_writer")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.util import tensor_util

    (tmp_path / "logs" / "validation").mkdir(parents=True)
    w = record_writer.RecordWriter(str(tmp_path / "logs" / "validation" / "events.out.tfevents.1.host.v2"))
    w.write(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
    for epoch, loss in enumerate([0.9, 0.5, 0.75]):
        value = summary_pb2.Summary.Value(tag="epoch_loss", tensor=tensor_util.make_tensor_proto(loss))
        value.metadata.plugin_data.plugin_name = "scalars"
        event = event_pb2.Event(wall_time=2.0 + epoch, step=epoch, summary=summary_pb2.Summary(value=[value]))
        w.write(event.SerializeToString())
    w.close()
    acc = metrics.Accumulator(metrics.DEFAULT_STEP_KEYS)
    acc.add(metrics.Finder().read(tmp_path).rows)
    s = acc.result()
    assert s.last == {"epoch_loss": 0.75} and s.best["epoch_loss"] == metrics.Best(0.5, 1, "min")


def test_tensor_scalars_whose_metadata_is_on_the_first_value_only_are_all_read(tmp_path: Path) -> None:
    """TF's FileWriter strips a tag's metadata from every value after the first (TensorBoard's
    accumulator keeps the first one for that reason): only step 0 was read. The file is
    written by tensorboard's own EventFileWriter (the one torch.utils.tensorboard uses)."""
    pytest.importorskip("tensorboard")
    np = pytest.importorskip("numpy")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    w = EventFileWriter(str(tmp_path / "logs"))
    for step, loss in enumerate([0.9, 0.5, 0.75]):
        value = summary_pb2.Summary.Value(tag="epoch_loss", tensor=tensor_util.make_tensor_proto(np.float32(loss)))
        if step == 0:
            value.metadata.plugin_data.plugin_name = "scalars"
        hist = summary_pb2.Summary.Value(tag="weights", tensor=tensor_util.make_tensor_proto(np.float32(1.0)))
        summary = summary_pb2.Summary(value=[value, hist])  # a tensor never declared a scalar stays out
        w.add_event(event_pb2.Event(wall_time=2.0 + step, step=step, summary=summary))
    w.close()
    acc = metrics.Accumulator(metrics.DEFAULT_STEP_KEYS)
    acc.add(metrics.Finder().read(tmp_path).rows)
    s = acc.result()
    assert s.last == {"epoch_loss": pytest.approx(0.75)} and s.best["epoch_loss"].step == 1


def test_a_missing_tensorboard_extra_is_a_one_line_hint_and_the_rest_still_shows(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    sub = one_sub(project, {"metrics.json": '{"acc": 0.5}'})
    write_events(sub / "runs")
    blocker = tmp_path / "blocker"
    (blocker / "tensorboard").mkdir(parents=True)
    (blocker / "tensorboard" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(blocker)])}
    proc = run_mrl("table", "--json", cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["acc"] == 0.5
    hint = [line for line in proc.stderr.splitlines() if "tensorboard" in line]
    assert hint == [
        "mrl: warning: found TensorBoard event files but the reader is not installed: "
        "pip install 'metarunlog[tensorboard]'"
    ]


@pytest.mark.parametrize("command", ["table", "analyze"])
def test_a_missing_tensorboard_extra_of_a_tensorboard_only_project_is_its_one_line_not_also_no_metrics(
    project: Path, tmp_path: Path, command: str
) -> None:
    # the hint came with "no metrics in 0001: looked for ... **/events.out.tfevents.* ...",
    # which says mrl found no such file, beside the line saying it found them
    pytest.importorskip("tensorboard")
    write_events(one_sub(project, {}) / "runs")
    blocker = tmp_path / "blocker"
    (blocker / "tensorboard").mkdir(parents=True)
    (blocker / "tensorboard" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(blocker)])}
    proc = run_mrl(command, cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "mrl: warning: found TensorBoard event files but the reader is not installed: "
        "pip install 'metarunlog[tensorboard]'"
    ]


# -- run.log patterns and the metrics() hook ------------------------------------------------------------


def test_a_script_that_prints_its_metrics_fills_the_table_through_patterns(project: Path) -> None:
    (project / "train.py").write_text(
        "import sys\nlr = float(sys.argv[1])\n"
        "for epoch in range(3):\n"
        "    print(f'epoch {epoch} | train_loss={lr * (3 - epoch):.3f} val_acc={0.5 + epoch * lr:.3f}', flush=True)\n"
    )
    patterns = [r"epoch (?P<epoch>\d+) .* val_acc=(?P<val_acc>[0-9.]+)", r"train_loss=(?P<train_loss>[0-9.]+)"]
    set_cfg(project, run={"command": "python3 {{codeDir}}/train.py {{lr}}"}, metrics={"patterns": patterns})
    commit_all(project, "a script that prints")
    assert run_mrl("new", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    assert run_mrl("run", "-j", "2", cwd=project).returncode == 0
    proc = run_mrl("table", "--json", "--summary", "best", "--sort", "-val_acc", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 9 and "epoch" not in rows[0]
    assert rows[0]["lr"] == 0.1 and rows[0]["val_acc"] == pytest.approx(0.7) and rows[0]["val_acc_step"] == 2
    assert rows[0]["train_loss"] == pytest.approx(0.1) and rows[0]["train_loss_step"] == 2


def test_a_metrics_hook_returning_a_list_is_a_curve(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "metrics": {"test_acc": 0.9}}, {"params": {"lr": 0.2}}])
    (project / "mrl_analyze.py").write_text(
        "def metrics(d):\n    return [{'step': s, 'loss': [3.0, 1.0, 2.0][s]} for s in range(3)]\n"
    )
    _, rows, _ = table_json(capsys, "--summary", "both")
    assert (rows[0]["loss"], rows[0]["loss_best"], rows[0]["loss_best_step"], rows[0]["test_acc"]) == (2.0, 1.0, 1, 0.9)
    curves = api.load_metrics(exp.id)
    assert list(curves[curves.id == "001"]["loss"]) == [3.0, 1.0, 2.0]


def test_a_metrics_hook_dict_beside_rows_is_the_last_value_and_the_rows_keep_the_best_as_metrics_json_does(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the hook's dict became the best too when lower (loss_best 0.01, no step: no row had it),
    # where the same value in metrics.json left the rows' best (0.5 at step 2)
    curve_rows = [{"step": s, "loss": [2.0, 1.0, 0.5][s]} for s in range(3)]
    make_exp(project, [{"params": {"lr": 0.1}, "jsonl": curve_rows, "metrics": {"loss": 0.01}}])
    make_exp(project, [{"params": {"lr": 0.1}, "jsonl": curve_rows}, {"params": {"lr": 0.2}}])
    (project / "mrl_analyze.py").write_text(
        "import os\ndef metrics(d):\n"
        "    return {} if os.path.exists(os.path.join(d, 'metrics.json')) else {'loss': 0.01}\n"
    )
    rows = [table_json(capsys, exp, "--summary", "both")[1] for exp in ("1", "2")]
    by_json, by_hook, summary_only = rows[0][0], rows[1][0], rows[1][1]
    assert (by_json["loss"], by_json["loss_best"], by_json["loss_best_step"]) == (0.01, 0.5, 2)
    assert (by_hook["loss"], by_hook["loss_best"], by_hook["loss_best_step"]) == (0.01, 0.5, 2)
    assert (summary_only["loss"], summary_only["loss_best"], summary_only["loss_best_step"]) == (0.01, 0.01, None)


def test_a_metrics_hook_curve_beside_metrics_json_keeps_the_summary_as_the_last_value(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the hook's rows' last value replaced metrics.json's (0.1 shown instead of 0.2), where
    # "the summary wins for the last value, the rows give the best values and the curves"
    make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "metrics": {"loss": 0.2}}, {"params": {"lr": 0.2}}])
    (project / "mrl_analyze.py").write_text(
        "def metrics(d):\n    return [{'epoch': 0, 'loss': 0.5, 'acc': 0.1}, {'epoch': 1, 'loss': 0.1, 'acc': 0.3}]\n"
    )
    _, rows, _ = table_json(capsys, "--summary", "both")
    got = rows[0]
    assert (got["loss"], got["loss_best"], got["loss_best_step"]) == (0.2, 0.1, 1)
    assert (got["acc"], got["acc_best"]) == (0.3, 0.3)  # a key the summary lacks: the rows'


@pytest.mark.parametrize("off", [{"reader": "csv", "enabled": False}, "!csv"])
def test_readers_can_be_turned_off_in_the_config(project: Path, capsys: pytest.CaptureFixture[str], off: Any) -> None:
    set_cfg(project, metrics={"sources": [off]})
    commit_all(project)
    one_sub(project, {"metrics.csv": "epoch,acc\n0,0.5\n"}, metrics={"f1": 0.4})
    _, rows, _ = table_json(capsys)
    assert rows[0]["f1"] == 0.4 and "acc" not in rows[0]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"patterns": ["val_acc=([0-9.]+)"]}, "has no named group"),
        ({"patterns": ["val_acc=(?P<val_acc>[0-9.]+"]}, "is not a valid regex"),
        ({"sources": [{"reader": "wandb", "enabled": False}]}, "no reader 'wandb'; the readers are: csv, json"),
        ({"sources": [3]}, "metrics.sources[0]' must be"),
        ({"sources": ["!wandb"]}, "'!wandb' names no reader; the readers are: csv, json"),
        ({"step_keys": "step"}, "'metrics.step_keys' must be a list"),
        ({"metric_goals": {"bleu": "up"}}, '\'metrics.metric_goals.bleu\' must be "min" or "max"'),
    ],
)
def test_a_bad_metrics_block_is_one_error_naming_the_key(
    project: Path, capsys: pytest.CaptureFixture[str], block: dict[str, Any], message: str
) -> None:
    set_cfg(project, metrics=block)
    # a reader's name no module registers (a plugin's) fails what reads metrics, not `mrl ls`
    if "reader" in message:
        commit_all(project)
        make_exp(project, [{"params": {"x": 1}}])
        capsys.readouterr()
    assert main(["table" if "reader" in message else "ls"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("mrl: error:")


def test_metrics_sources_naming_a_plugins_reader_fails_only_what_reads_metrics_until_plugins_names_it(
    project: Path,
) -> None:
    # `{"glob": "eval/*.yaml", "reader": "yamlscores"}` of a plugin not yet in "plugins" failed
    # every command (ls, status, info, --help): now only table, analyze, diff, run and the API
    (project / "yaml_reader.py").write_text(
        "from metarunlog import metrics\n"
        "@metrics.register\n"
        "class Scores(metrics.Reader):\n"
        "    name = 'yamlscores'\n"
        "    globs = ()\n"
        "    def summary(self, files):\n"
        "        return dict(line.split(': ') for p in files for line in p.read_text().split('\\n') if line)\n"
    )
    from tests.backends.contract import make_experiment

    set_cfg(project, metrics={"sources": [{"glob": "eval/*.yaml", "reader": "yamlscores"}]})
    commit_all(project, "a plugin's reader")
    assert run_mrl("new", "-cp", "no", "x", cwd=project).returncode == 0
    make_experiment(project, [{"x": 1}, {"x": 2}], "mkdir -p eval && echo 'bleu: 31' > eval/s.yaml")
    for args in (("ls",), ("status",), ("info",), ("--help",), ("run", "--help")):
        r = run_mrl(*args, cwd=project)
        assert r.returncode == 0 and "yamlscores" not in r.stderr, (args, r.stderr)
    for args in (("table",), ("analyze",), ("run",), ("diff", "2/1", "2/2")):
        r = run_mrl(*args, cwd=project)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, (args, r.stderr)
        assert "no reader 'yamlscores'" in r.stderr and '"plugins": ["MODULE"]' in r.stderr, args
    assert not list((project / "output" / "0002").glob("*/.mrl.status"))  # nothing started
    set_cfg(project, plugins=["yaml_reader"])
    commit_all(project, "plugins")
    assert run_mrl("run", cwd=project).returncode == 0
    table = run_mrl("table", "--json", cwd=project)
    assert table.returncode == 0, table.stderr
    assert [r["bleu"] for r in json.loads(table.stdout)] == ["31", "31"]


def test_no_metrics_after_a_failed_rerun_says_the_earlier_attempts_files_are_set_aside(project: Path) -> None:
    # A --force rerun that failed: its earlier attempt's metrics.json was moved to
    # SUBDIR/.mrl.attempts/1/ (right: not this attempt's), and the table said only "no metrics
    # in 0001: looked for ... metrics.json ...", as if the file had never been written.
    set_cfg(project, run={"command": "test -e ../again && exit 1; echo '{\"loss\": 1}' > metrics.json"})
    commit_all(project, "writes metrics once")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    assert run_mrl("run", cwd=project).returncode == 0
    (project / "output" / "0001" / "again").write_text("")
    assert run_mrl("run", "--force", cwd=project).returncode == 1
    table = run_mrl("table", cwd=project)
    assert table.returncode == 0 and "loss" not in table.stdout, table.stdout
    assert "no metrics in 0001" in table.stderr and "SUBDIR/.mrl.attempts/N/ (001, 002" in table.stderr, table.stderr


def test_when_no_sub_experiment_has_metrics_the_table_says_where_it_looked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    capsys.readouterr()
    assert main(["table"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("mrl: no metrics in 0001: looked for metrics.csv")
    for looked in (
        "metrics.json",
        "metrics.jsonl",
        "lightning_logs/version_*/metrics.csv",
        "events.out.tfevents.*",
        "metrics(subExpDir) in mrl_analyze.py",
    ):
        assert looked in err[0]


def test_a_script_that_prints_its_metrics_is_told_that_run_log_counts_once_patterns_are_set(project: Path) -> None:
    # The issue's first user: a script printing `epoch 1 val_acc=0.5`. The no-metrics line
    # named every file looked for but not run.log, the one file holding the results.
    (project / "train.py").write_text("for e in range(3):\n    print(f'epoch {e} val_acc={0.5 + e / 10}')\n")
    set_cfg(project, run={"command": "python3 {{codeDir}}/train.py"})
    commit_all(project, "a script that prints")
    for args in (("new", "prints"), ("makebatch",), ("run",)):
        assert run_mrl(*args, cwd=project).returncode == 0
    hint = "; the lines your script prints (run.log) count once .mrl.cfg metrics.patterns has a regex for them"
    for cmd in ("table", "analyze"):
        err = run_mrl(cmd, cwd=project).stderr.splitlines()
        assert [line for line in err if line.startswith("mrl: no metrics")][0].endswith(
            hint + " (see docs/table.md, 'Where mrl finds metrics')"
        ), err
    set_cfg(project, metrics={"sources": ["!log"]})  # turned off on purpose: no hint
    assert hint not in run_mrl("table", cwd=project).stderr
    set_cfg(project, metrics={"patterns": [r"epoch (?P<epoch>\d+) val_acc=(?P<val_acc>[0-9.]+)"]})
    rows = json.loads(run_mrl("table", "--json", cwd=project).stdout)
    assert [r["val_acc"] for r in rows] == [pytest.approx(0.7)] * len(rows)


# -- streaming -------------------------------------------------------------------------------------------------


def test_metrics_jsonl_is_streamed_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with path.open("w") as f:
        for i in range(50_000):
            f.write(json.dumps({"step": i, "loss": 1 / (i + 1)}) + "\n")
    rows = metrics.jsonfiles.iter_jsonl(path, chunk_bytes=4096)
    first = next(rows)
    assert first == {"step": 0, "loss": 1.0}
    code = (
        "import resource, sys, json\n"
        "from pathlib import Path\n"
        "from metarunlog import metrics\n"
        "acc = metrics.Accumulator(metrics.DEFAULT_STEP_KEYS)\n"
        "acc.add(metrics.Finder().read(Path(sys.argv[1])).rows)\n"
        "print(json.dumps(acc.result().last))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert json.loads(out.stdout) == {"loss": 1 / 50_000}


def test_the_finder_reads_what_results_shows(project: Path) -> None:
    sub = one_sub(project, {"metrics.csv": "step,acc\n1,0.5\n"}, metrics={"f1": 0.2})
    [res, _] = results.collect(api.load_experiment("last", basedir=project))[0]
    assert res.metrics == {"acc": 0.5, "f1": 0.2} and res.dir == sub


def test_analyze_plots_curves_from_every_reader_and_the_hook(project: Path) -> None:
    from metarunlog import report

    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    for i in (1, 2):
        (exp.subexp_dir(i) / "metrics.csv").write_text("epoch,val_acc\n0,0.5\n1,0.6\n2,0.7\n")
    (project / "mrl_analyze.py").write_text(
        "def metrics(d):\n    return [{'step': s, 'bleu': 10.0 * s} for s in range(4)]\n"
    )
    rep = report.build_report(exp, project, exp.dir / "analysis")
    assert {p.metric for p in rep.plots} >= {"val_acc", "bleu"}


def test_tensorboard_is_imported_only_when_event_files_exist(project: Path) -> None:
    one_sub(project, {"metrics.jsonl": '{"step": 1, "loss": 0.5}\n'})
    code = (
        "import sys\nfrom metarunlog.main import main\nmain(['table'])\n"
        "print('TB:' + str('tensorboard' in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert "TB:False" in proc.stderr, proc.stderr


def _int_then_float(text: str) -> Any:
    """What a CSV cell was read as before the fast path: int(), then float(), else the text."""
    s = text.strip()
    for kind in (int, float):
        try:
            return kind(s)
        except ValueError:
            pass
    return s


def test_a_cell_is_read_as_int_then_float_would_read_it() -> None:
    import math

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from metarunlog.metrics.csvfiles import parse_value

    def same(text: str) -> None:
        got, want = parse_value(text), _int_then_float(text)
        assert type(got) is type(want), (text, got, want)
        assert got == want or (isinstance(got, float) and math.isnan(got) and math.isnan(want)), (text, got, want)

    for text in ["", " ", "-", "+", "0", "-0", "+7", "0007", " 12 ", "1_000", "1__0", "_1", "1.5", "-1e-3",
                 "1e5", "nan", "-inf", "Infinity", "0x10", "١٢", "²", "1.", ".5", "1,5", "n/a", "True"]:  # fmt: skip
        same(text)
    alphabet = st.sampled_from(list("0123456789+-._eEnaifINFx ,٢²\t"))

    @settings(max_examples=500, deadline=None)
    @given(st.text(alphabet, max_size=8) | st.text(max_size=6))
    def check(text: str) -> None:
        same(text)

    check()


def test_csv_rows_read_a_batch_at_a_time_are_the_rows_read_cell_by_cell(tmp_path: Path) -> None:
    # The column-by-column fast path must give the same rows, keys in the same order, the
    # same types (1 int, 1.0 float), blank cells left out, as parse_value cell by cell.
    import csv as csv_module
    import math

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from metarunlog.metrics import csvfiles

    cell = st.sampled_from(["0", "7", "-3", " 12 ", "1_000", "1", "1.0", "0.5", "-2.5e-3", "1e5", "nan", "inf",
                            "-inf", "1" * 400, "", " ", "n/a", "١٢", "0x10", ".5"]) | st.floats().map(repr)  # fmt: skip
    names = st.lists(st.sampled_from(["step", "loss", "acc", "", "loss ", "x", "epoch"]), min_size=1, max_size=4)

    def same(a: Any, b: Any) -> bool:
        return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))

    @settings(max_examples=200, deadline=None)
    @given(names, st.integers(1, 3).flatmap(lambda w: st.lists(st.lists(cell, min_size=w, max_size=w), max_size=14)))
    def check(header: list[str], body: list[list[str]]) -> None:
        path = tmp_path / "metrics.csv"
        with path.open("w", newline="") as f:
            csv_module.writer(f).writerows([header, *body])
        saved = csvfiles.BATCH_ROWS, csvfiles.ROW_BY_ROW_AFTER_BLANKS
        try:  # several batches, some with blank cells, some without, row by row between
            csvfiles.BATCH_ROWS, csvfiles.ROW_BY_ROW_AFTER_BLANKS = 3, 2
            got = list(csvfiles.iter_csv(path, ended=True))
        finally:
            csvfiles.BATCH_ROWS, csvfiles.ROW_BY_ROW_AFTER_BLANKS = saved
        keys = [h.strip() for h in header]
        want = []
        for cells in body:
            row = {k: csvfiles.parse_value(c) for k, c in zip(keys, cells, strict=False) if k and c.strip() != ""}
            if row:
                want.append(row)
        assert [list(r) for r in got] == [list(r) for r in want]
        assert all(same(r[k], w[k]) for r, w in zip(got, want, strict=True) for k in r), (got, want)
        # the table folds the columns as read (no dict per row): the same last and best values
        for best in (True, False):
            by_columns, by_rows = (metrics.Accumulator(("step", "epoch"), best=best) for _ in "ab")
            try:
                csvfiles.BATCH_ROWS, csvfiles.ROW_BY_ROW_AFTER_BLANKS = 3, 2
                by_columns.add(csvfiles.CsvReader(metrics.Settings()).read_rows([path], ended=True))
            finally:
                csvfiles.BATCH_ROWS, csvfiles.ROW_BY_ROW_AFTER_BLANKS = saved
            by_rows.add(want)
            a, b = by_columns.result(), by_rows.result()
            assert list(a.last) == list(b.last) and all(same(a.last[k], b.last[k]) for k in a.last), (a, b)
            assert list(a.best) == list(b.best) and a.has_rows == b.has_rows, (a, b)
            for k, x in a.best.items():  # a step may be NaN (a step column holding `nan`)
                y = b.best[k]
                assert same(x.value, y.value) and same(x.step, y.step) and x.goal == y.goal, (a, b)

    check()


# -- a last line without its line end: cut while the run goes on, whole once it ended ------------

PRINTS = r"epoch (?P<epoch>\d+) val_acc=(?P<val_acc>[0-9.]+)"


def _printing_project(project: Path, script: str, command: str | list[str] | None = None) -> None:
    (project / "train.py").write_text(script)
    (project / "conf.lua").write_text("lr = {{lr}}\n-- MRL:grid['lr'] = [0.1]\n")
    set_cfg(project, run={"command": command or "python3 {{codeDir}}/train.py"}, metrics={"patterns": [PRINTS]})
    commit_all(project, "a script that prints")
    assert run_mrl("new", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0


def _table(project: Path, *args: str) -> list[dict[str, Any]]:
    proc = run_mrl("table", "--json", *args, cwd=project)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("tail", "state"), [("", "done"), ("raise SystemExit(3)\n", "failed")])
def test_a_last_printed_line_without_a_newline_counts_once_the_run_has_ended(
    project: Path, tail: str, state: str
) -> None:
    # print(..., end="") or sys.stdout.write without "\n" as the script's last output: the run
    # is over (done, or failed by itself: Python flushed it), the line is whole, yet it was
    # held back as if still being written.
    _printing_project(
        project,
        "import sys\nprint('epoch 0 val_acc=0.51')\nsys.stdout.write('epoch 1 val_acc=0.9')\n" + tail,
    )
    assert run_mrl("run", cwd=project).returncode == (0 if state == "done" else 1)
    rows = _table(project, "--summary", "both")
    assert rows[0]["state"] == state
    assert (rows[0]["val_acc"], rows[0]["val_acc_best"], rows[0]["val_acc_best_step"]) == (0.9, 0.9, 1)
    curves = run_mrl("analyze", cwd=project)
    assert curves.returncode == 0, curves.stderr


def test_a_last_csv_row_without_a_newline_counts_once_the_run_has_ended(project: Path) -> None:
    # a hand-written logger joining its rows with "\n" leaves the last one without it
    _printing_project(
        project,
        "rows = ['epoch,val_loss', '0,0.5', '1,0.3']\nopen('metrics.csv', 'w').write('\\n'.join(rows))\n",
    )
    assert run_mrl("run", cwd=project).returncode == 0
    rows = _table(project, "--summary", "both")
    assert (rows[0]["val_loss"], rows[0]["val_loss_best"], rows[0]["val_loss_best_step"]) == (0.3, 0.3, 1)


def test_a_cut_last_line_of_a_running_sub_experiment_is_held_back_until_it_is_whole(project: Path) -> None:
    # Block-buffered stdout reaches run.log cut anywhere: while the run goes on, `val_acc=0.7`
    # of `val_acc=0.75` must not be the last or the best value; once the line is whole it counts.
    go = project / "go"
    _printing_project(
        project,
        "import os, sys, time\n"
        "sys.stdout.write('epoch 0 val_acc=0.51\\nepoch 1 val_acc=0.7'); sys.stdout.flush()\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "sys.stdout.write('5\\n')\n",
    )
    runner = start_mrl("run", cwd=project)
    try:
        wait_for(lambda: b"val_acc=0.7" in _run_log(project), what="the cut line")
        rows = _table(project, "--summary", "both")
        assert rows[0]["state"] == "running"
        assert (rows[0]["val_acc"], rows[0]["val_acc_best"]) == (0.51, 0.51)
        curves = api.load_metrics("last")
        assert list(curves["val_acc"]) == [0.51]
    finally:
        go.touch()
        runner.wait(timeout=60)
    assert runner.returncode == 0
    rows = _table(project, "--summary", "both")
    assert (rows[0]["val_acc"], rows[0]["val_acc_best"]) == (0.75, 0.75)


def test_a_cut_last_line_left_by_a_cancelled_run_is_not_a_result(project: Path) -> None:
    # A step killed mid-line (cancel, time limit, OOM) never completes its line: `val_acc=0.7`
    # of `0.75` would be a result that never happened.
    _printing_project(
        project,
        "import sys, time\n"
        "sys.stdout.write('epoch 0 val_acc=0.51\\nepoch 1 val_acc=0.7'); sys.stdout.flush()\n"
        "time.sleep(600)\n",
    )
    runner = start_mrl("run", cwd=project)
    try:
        wait_for(lambda: b"val_acc=0.7" in _run_log(project), what="the cut line")
        assert run_mrl("cancel", cwd=project).returncode == 0
    finally:
        runner.wait(timeout=60)
    rows = _table(project, "--summary", "both")
    assert rows[0]["state"] == "cancelled" and rows[0]["val_acc"] == 0.51


def test_a_step_whose_output_ends_without_a_newline_does_not_glue_the_next_steps_header_to_it(
    project: Path,
) -> None:
    # Step 1 ends with `val_acc=0.6` and no newline; step 2's `==== mrl attempt 1 step 2/2 ...`
    # header was appended to that line, so the header (which quotes the command) was read as
    # metrics and the line's value was cut from its own.
    _printing_project(
        project,
        "import sys\nsys.stdout.write(f'epoch {sys.argv[1]} val_acc={sys.argv[2]}')\n",
        command=[
            "python3 {{codeDir}}/train.py 0 0.6",
            "python3 {{codeDir}}/train.py 1 0.8 # epoch 7 val_acc=0.99",
        ],
    )
    assert run_mrl("run", cwd=project).returncode == 0
    log_lines = _run_log(project).decode().splitlines()
    assert [line[:20] for line in log_lines if "step 2/2" in line] == ["==== mrl attempt 1 s"]
    curves = api.load_metrics("last")
    assert list(curves["val_acc"]) == [0.6, 0.8] and list(curves["epoch"]) == [0, 1]


def _run_log(project: Path) -> bytes:
    log = next(project.rglob("001/run.log"), None)
    return log.read_bytes() if log is not None else b""


def test_an_integer_too_large_for_a_float_is_a_value_not_an_internal_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # math.isnan() of a 400-digit int raises OverflowError: `mrl table --summary best` on a
    # run that logged one (a diverged counter, a hash) was an internal error with a traceback.
    huge = 10**400
    one_sub(project, {"metrics.csv": f"step,loss\n0,nan\n1,{huge}\n2,0.5\n"}, metrics={"checksum": huge})
    code, rows, err = table_json(capsys, "--summary", "both")
    assert code == 0 and "Traceback" not in err
    assert (rows[0]["loss"], rows[0]["loss_best"], rows[0]["loss_best_step"]) == (0.5, 0.5, 2)
    assert rows[0]["checksum"] == huge


# -- metrics.jsonl lines that are not JSON objects ------------------------------------------------


def test_jsonl_lines_that_are_not_objects_are_one_warning_naming_the_file_line_and_count(project: Path) -> None:
    # a bare number, a list and garbage were skipped without a word
    text = '{"step": 0, "loss": 1}\n3\n[1, 2]\n\ngarbage\n{"step": 1, "loss": 0.5}\n'
    sub = one_sub(project, {"metrics.jsonl": text})
    got = run_mrl("table", "--json", cwd=project)
    assert got.returncode == 0 and json.loads(got.stdout)[0]["loss"] == 0.5, got.stderr
    path = sub / "metrics.jsonl"
    assert got.stderr.splitlines() == [
        f"mrl: warning: {path}: skipped 3 line(s) that are not JSON objects (the first: line 2)"
    ]


def test_a_half_written_last_jsonl_line_is_a_warning_only_once_the_run_has_ended(project: Path) -> None:
    text = '{"step": 0, "loss": 1}\n{"step": 1, "lo'
    one_sub(project, {"metrics.jsonl": text}, status=running(os.getpid()))
    got = run_mrl("table", "--json", cwd=project)
    assert got.returncode == 0 and got.stderr == "", got.stderr  # still being written: no word
    sub = one_sub(project, {"metrics.jsonl": text})  # done: that line is whole, and bad
    got = run_mrl("table", "--json", cwd=project)
    assert f"{sub / 'metrics.jsonl'}: skipped 1 line(s) that are not JSON objects (the first: line 2)" in got.stderr


@pytest.mark.parametrize("command", ["table", "analyze"])
def test_a_metrics_file_that_cannot_be_read_is_its_error_not_also_no_metrics_found(project: Path, command: str) -> None:
    # "no metrics in 0001: looked for ... metrics.json ..." came beside "corrupt ... metrics.json",
    # which says mrl found no such file where it found one and could not read it
    sub = one_sub(project, {})
    (sub / "metrics.json").write_text("{loss: 1}\n")  # an `echo` that lost its quotes
    proc = run_mrl(command, cwd=project)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "metrics.json" in lines[0] and "no metrics in" not in lines[0], lines
