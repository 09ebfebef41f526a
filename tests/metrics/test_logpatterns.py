"""metarunlog/metrics/logpatterns.py: metrics printed to run.log, matched by `metrics.patterns`.
The run.log files here are written by real executions (`execute.execute`: mrl's own attempt
headers, real `sh` steps); `mrl table` through patterns is in tests/metrics/test_readers.py."""

from __future__ import annotations

from pathlib import Path

from metarunlog.execute import ExecOptions, execute
from metarunlog.metrics.base import Settings
from metarunlog.metrics.logpatterns import LogPatternReader, iter_matches, this_attempt_offset, with_steps
from tests.backends.contract import make_experiment

LOSS = r"loss=(?P<loss>[-0-9.e+naif]+)"
EPOCH = r"epoch (?P<epoch>\d+)"


def reader(*patterns: str, **settings: object) -> LogPatternReader:
    return LogPatternReader(Settings(patterns=patterns, **settings))  # type: ignore[arg-type]


def run_log_of(project: Path, steps: list[str], **options: object) -> Path:
    exp = make_experiment(project, [{"x": 1}], steps)
    sub = exp.sub_experiments()[0]
    execute(sub, ExecOptions(steps=steps, **options))  # type: ignore[arg-type]
    return sub.dir / "run.log"


def test_each_match_is_a_row_of_its_named_groups_as_numbers(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("epoch 1 loss=0.5 acc=80\nnoise\nepoch 2 loss=0.25 acc=90.5\n")
    r = reader(EPOCH + " " + LOSS + r" acc=(?P<acc>[0-9.]+)")
    assert list(r.read_rows([log], ended=True)) == [
        {"epoch": 1, "loss": 0.5, "acc": 80},
        {"epoch": 2, "loss": 0.25, "acc": 90.5},
    ]


def test_a_row_without_a_step_key_takes_the_step_of_the_rows_before(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("loss=9\nepoch 1\nloss=0.5\nloss=0.4\nepoch 2\nloss=0.25\n")
    rows = list(reader(EPOCH, LOSS).read_rows([log], ended=True))
    assert rows == [
        {"loss": 9},  # before any step: as it is
        {"epoch": 1},
        {"epoch": 1, "loss": 0.5},
        {"epoch": 1, "loss": 0.4},
        {"epoch": 2},
        {"epoch": 2, "loss": 0.25},
    ]


def test_with_steps_uses_the_configured_step_keys_only() -> None:
    rows = iter([{"round": 3}, {"loss": 1.0}])
    assert list(with_steps(rows, ("round",))) == [{"round": 3}, {"round": 3, "loss": 1.0}]
    assert list(with_steps(iter([{"round": 3}, {"loss": 1.0}]), ("step",))) == [{"round": 3}, {"loss": 1.0}]


def test_a_group_that_took_no_part_is_left_out_and_a_match_of_none_is_no_row(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("val_acc=0.9\ntrain\n")
    rx = r"(?:val_acc=(?P<val_acc>[0-9.]+))?(?:test_acc=(?P<test_acc>[0-9.]+))?"
    assert list(iter_matches(log, [__import__("re").compile(rx)], ended=True)) == [{"val_acc": 0.9}]


def test_nan_and_inf_printed_by_python_are_float_values(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(f"loss={float('nan')}\nloss={float('inf')}\nloss=-inf\n")
    values = [r["loss"] for r in reader(LOSS).read_rows([log], ended=True)]
    assert values[0] != values[0] and values[1:] == [float("inf"), float("-inf")]


def test_bytes_that_are_not_utf8_are_replaced_and_the_line_still_matches(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"caf\xe9 loss=0.5\n")
    assert list(reader(LOSS).read_rows([log], ended=True)) == [{"loss": 0.5}]


def test_a_last_line_without_its_line_end_is_matched_only_once_the_run_ended(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("loss=0.5\nloss=0.2")  # `loss=0.25` being printed
    assert list(reader(LOSS).read_rows([log], ended=False)) == [{"loss": 0.5}]
    assert list(reader(LOSS).read_rows([log], ended=True)) == [{"loss": 0.5}, {"loss": 0.2}]


def test_a_missing_or_empty_log_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "run.log").write_bytes(b"")
    r = reader(LOSS)
    assert list(r.read_rows([tmp_path / "run.log", tmp_path / "gone.log"], ended=True)) == []
    assert this_attempt_offset(tmp_path / "run.log") == 0 and this_attempt_offset(tmp_path / "gone.log") == 0


def test_without_patterns_the_reader_is_off_and_it_looks_in_the_log_files() -> None:
    assert not reader().active()
    r = reader(LOSS, log_files=("run.log", "train.out"))
    assert r.active() and r.looks_for() == ["run.log", "train.out"]
    assert r.accepts("logs/a.log") and r.accepts("a.txt") and r.accepts("slurm.out") and not r.accepts("m.csv")


def test_mrl_s_header_quoting_the_command_is_never_a_metric(project: Path) -> None:
    log = run_log_of(project, ["echo done"])
    assert "loss" not in log.read_text()
    log = run_log_of(project, ["echo loss=0.5 # loss=99"])  # the header quotes `loss=99`
    assert "==== mrl attempt 1 step 1/1" in log.read_text()
    assert list(reader(LOSS).read_rows([log], ended=True)) == [{"loss": 0.5}]


def test_only_the_latest_attempt_from_step_one_counts(project: Path) -> None:
    # attempt 1 fails, attempt 2 (a retry) starts again at step 1: attempt 1's metrics are not its
    steps = ["echo loss=$(cat n 2>/dev/null || echo 9); test -f n || { echo 1 > n; exit 1; }"]
    log = run_log_of(project, steps, retries=1)
    text = log.read_text()
    assert "attempt 1 step 1/1" in text and "attempt 2 step 1/1" in text
    assert list(reader(LOSS).read_rows([log], ended=True)) == [{"loss": 1}]


def test_every_step_of_the_latest_attempt_counts(project: Path) -> None:
    log = run_log_of(project, ["echo loss=1.0", "echo loss=2.0"])
    assert [r["loss"] for r in reader(LOSS).read_rows([log], ended=True)] == [1.0, 2.0]


def test_a_later_step_whose_command_reads_like_a_first_step_header_keeps_the_steps_before(project: Path) -> None:
    # The attempt's start was found by " step 1/" anywhere in a header line, the command it
    # quotes included: step 2's header `... step 2/2 ...: echo phase step 1/2 over` hid step 1.
    log = run_log_of(project, ["echo loss=1.0", "echo loss=2.0 phase step 1/2 over"])
    assert [r["loss"] for r in reader(LOSS).read_rows([log], ended=True)] == [1.0, 2.0]


def test_a_header_quoted_inside_a_line_is_no_attempt_start(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "==== mrl attempt 1 step 1/1 on h at t: python train.py\n"
        "loss=1.0\n"
        "the log says ==== mrl attempt 2 step 1/1 on h at t: x\n"
        "loss=2.0\n"
    )
    assert this_attempt_offset(log) == 0
    assert [r["loss"] for r in reader(LOSS).read_rows([log], ended=True)] == [1.0, 2.0]


def test_another_log_file_is_read_whole_headers_and_all(tmp_path: Path) -> None:
    log = tmp_path / "train.log"  # not mrl's run.log: a header-like line there is the script's
    log.write_text("==== mrl attempt 1 step 1/1 on h at t: loss=3\nloss=1\n==== mrl attempt 2 step 1/1 x\nloss=2\n")
    assert [r["loss"] for r in reader(LOSS).read_rows([log], ended=True)] == [3, 1, 2]


def test_a_group_that_matched_nothing_is_no_value_as_a_blank_csv_cell_is_none(tmp_path: Path) -> None:
    # `acc=(?P<acc>[0-9.]*)` on "acc= n/a": the group matched "", which became the last
    # value of acc (an empty string shown as the final result)
    log = tmp_path / "train.log"
    log.write_text("epoch 1 acc=0.5\nepoch 2 acc= n/a\n")
    rows = list(reader(EPOCH + r" acc=(?P<acc>[0-9.]*)").read_rows([log], ended=True))
    assert rows == [{"epoch": 1, "acc": 0.5}, {"epoch": 2}]


def test_a_pattern_that_can_match_the_empty_string_gives_no_empty_rows(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("starting\nloss 0.5\n")
    assert list(reader(r"(?P<loss>[0-9.]*)").read_rows([log], ended=True)) == [{"loss": 0.5}]


def test_a_log_line_past_the_line_cap_is_skipped_with_a_warning(tmp_path: Path) -> None:
    from metarunlog.metrics.base import MAX_LINE

    path = tmp_path / "train.log"
    path.write_text("epoch 1 loss=0.5\n" + "epoch 2 loss=0.4 " + "x" * MAX_LINE + "\nepoch 3 loss=0.3\n")
    reader = LogPatternReader(Settings(patterns=(r"epoch (?P<epoch>\d+) loss=(?P<loss>[0-9.]+)",)))
    said: list[str] = []
    rows = list(reader.read_rows_noting([path], ended=True, warn=said.append))
    assert rows == [{"epoch": 1, "loss": 0.5}, {"epoch": 3, "loss": 0.3}]
    assert said == [f"{path}: skipped 1 line(s) longer than 1 MiB, the most mrl reads of one line (the first: line 2)"]
