"""metarunlog/metrics/csvfiles.py: CSV logs as the csv module, pandas, Keras and Lightning
write them (the files are written by those libraries where they are installed, else in the
exact bytes they write). `mrl table` through these files is in tests/metrics/test_readers.py."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from metarunlog.metrics.base import ColumnarRows, Columns, Settings
from metarunlog.metrics.csvfiles import CsvReader, complete_lines, csv_batches, iter_csv

pd = pytest.importorskip("pandas")


def rows_of(path: Path, **kw: Any) -> list[dict[str, Any]]:
    return list(iter_csv(path, **kw))


def test_a_csv_dictwriter_file_with_crlf_line_ends_gives_numbers_not_strings(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as f:  # the csv module ends rows with \r\n
        w = csv.DictWriter(f, ["step", "loss", "phase"])
        w.writeheader()
        w.writerows([{"step": 1, "loss": 0.5, "phase": "warmup"}, {"step": 2, "loss": 0.25, "phase": "main"}])
    assert b"\r\n" in path.read_bytes()
    assert rows_of(path, ended=True) == [
        {"step": 1, "loss": 0.5, "phase": "warmup"},
        {"step": 2, "loss": 0.25, "phase": "main"},
    ]


def test_pandas_to_csv_with_its_index_drops_the_unnamed_column_and_nan_cells(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    pd.DataFrame({"epoch": [0, 1, 2], "val_loss": [0.9, float("nan"), 0.7]}).to_csv(path)
    assert path.read_text().splitlines()[0] == ",epoch,val_loss"
    assert rows_of(path) == [{"epoch": 0, "val_loss": 0.9}, {"epoch": 1}, {"epoch": 2, "val_loss": 0.7}]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_column_name_holding_a_comma_does_not_make_comma_the_delimiter(tmp_path: Path, sep: str) -> None:
    # pandas quotes a name only when it holds *its* separator: `step;loss, train;loss, val`
    # counts as many commas as semicolons, and the rows were read as one string column.
    path = tmp_path / "metrics.csv"
    frame = pd.DataFrame({"step": [1, 2], "loss, train": [0.5, 0.25], "loss, val": [0.6, 0.3]})
    frame.to_csv(path, sep=sep, index=False)
    assert rows_of(path, ended=True) == [
        {"step": 1, "loss, train": 0.5, "loss, val": 0.6},
        {"step": 2, "loss, train": 0.25, "loss, val": 0.3},
    ]


def test_a_quoted_name_holding_the_delimiter_is_one_column(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    pd.DataFrame({"step": [1], "acc (top-1, val)": [0.75]}).to_csv(path, index=False)
    assert rows_of(path, ended=True) == [{"step": 1, "acc (top-1, val)": 0.75}]


def test_a_semicolon_file_with_decimal_commas_keeps_its_columns(tmp_path: Path) -> None:
    # European Excel / pandas(decimal=","): the columns are right; a "0,5" cell is text (no
    # locale guessing), which the table shows as it is rather than a wrong number.
    path = tmp_path / "metrics.csv"
    pd.DataFrame({"step": [1, 2], "loss": [0.5, 0.25]}).to_csv(path, sep=";", decimal=",", index=False)
    assert rows_of(path, ended=True) == [{"step": 1, "loss": "0,5"}, {"step": 2, "loss": "0,25"}]


def test_lightning_s_sparse_rows_keep_only_the_cells_they_hold(tmp_path: Path) -> None:
    # Lightning's CSVLogger: one DictWriter over every key seen, train and val on their own rows
    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "step", "train_loss", "val_loss"], lineterminator="\n")
        w.writeheader()
        w.writerow({"epoch": 0, "step": 49, "train_loss": 0.8})
        w.writerow({"epoch": 0, "step": 99, "val_loss": 0.7})
    assert rows_of(path) == [
        {"epoch": 0, "step": 49, "train_loss": 0.8},
        {"epoch": 0, "step": 99, "val_loss": 0.7},
    ]


def test_nan_inf_and_huge_integers_are_values(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    big = "9" * 400  # float() makes it inf; it is an int
    path.write_text(f"step,loss,count\n1,nan,{big}\n2,inf,3\n3,-inf,4\n")
    rows = rows_of(path)
    assert math.isnan(rows[0]["loss"]) and rows[0]["count"] == int(big)
    assert [r["loss"] for r in rows[1:]] == [math.inf, -math.inf]


def test_bytes_that_are_not_utf8_are_replaced_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_bytes("step,run\n1,caf\xe9\n".encode("latin-1"))
    assert rows_of(path, ended=True) == [{"step": 1, "run": "caf\ufffd"}]


@pytest.mark.parametrize("text", ["", "step,loss\n", "step,loss"])
def test_an_empty_or_header_only_file_has_no_rows(tmp_path: Path, text: str) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    assert rows_of(path, ended=True) == []


def test_a_missing_file_or_a_folder_of_that_name_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    assert rows_of(tmp_path / "gone.csv") == [] and rows_of(tmp_path / "folder.csv") == []


def test_rows_longer_or_shorter_than_the_header_keep_the_named_cells(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,0.5,extra\n2\n3,0.25\n")
    assert rows_of(path) == [{"step": 1, "loss": 0.5}, {"step": 2}, {"step": 3, "loss": 0.25}]


def test_a_repeated_column_name_takes_the_later_cell(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss,loss\n1,0.5,0.4\n")
    assert rows_of(path) == [{"step": 1, "loss": 0.4}]


def test_a_quoted_cell_spanning_lines_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["step", "note"], [1, "two\nlines"], [2, "ok"]])
    assert rows_of(path, ended=True) == [{"step": 1, "note": "two\nlines"}, {"step": 2, "note": "ok"}]


def test_a_last_row_without_its_line_end_counts_only_once_the_writer_ended(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,0.5\n2,0.0")  # `2,0.0134` being written
    assert rows_of(path, ended=False) == [{"step": 1, "loss": 0.5}]
    assert rows_of(path, ended=True)[-1] == {"step": 2, "loss": 0.0}


def test_complete_lines_holds_back_only_an_unterminated_last_line() -> None:
    assert list(complete_lines(["a\n", "b\r\n", "c"])) == ["a\n", "b\r\n"]
    assert list(complete_lines(["a\n", "b\r"])) == ["a\n", "b\r"]
    assert list(complete_lines([])) == []


def test_training_log_is_read_only_with_keras_s_epoch_header(tmp_path: Path) -> None:
    log = tmp_path / "training.log"
    log.write_text("epoch,loss\n0,1.5\n1,0.5\n")
    reader = CsvReader(Settings())
    assert list(reader.read_rows([log], ended=True)) == [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 0.5}]
    log.write_text("INFO, starting\nINFO, done\n")  # a plain log of that name
    assert list(reader.read_rows([log], ended=True)) == []


def test_a_big_dense_file_comes_as_column_batches_holding_every_row(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    n = 10_000
    pd.DataFrame({"step": range(n), "loss": [1 / (i + 1) for i in range(n)]}).to_csv(path, index=False)
    batches = list(csv_batches(path, ended=True))
    assert all(isinstance(b, Columns) for b in batches) and len(batches) > 1
    steps = [s for b in batches for s in b.columns[0]]  # type: ignore[union-attr]
    assert steps == list(range(n))
    rows = CsvReader(Settings()).read_rows([path], ended=True)
    assert isinstance(rows, ColumnarRows) and sum(1 for _ in rows) == n


def test_the_reader_owns_csv_and_tsv_files_of_source_globs() -> None:
    reader = CsvReader(Settings())
    assert reader.accepts("eval/scores.csv") and reader.accepts("x.tsv")
    assert not reader.accepts("metrics.jsonl") and not reader.accepts("run.log")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_file_with_its_byte_order_mark_is_decoded(tmp_path: Path, encoding: str) -> None:
    # pandas to_csv(encoding="utf-16"), Excel's "Unicode Text" (a tab-separated UTF-16 file):
    # read as UTF-8, every name and cell was NUL-riddled text
    path = tmp_path / "metrics.csv"
    frame = pd.DataFrame({"step": [1, 2], "loss": [0.5, 0.25]})
    if encoding == "utf-16-be":
        path.write_bytes(b"\xfe\xff" + frame.to_csv(index=False, sep="\t").encode("utf-16-be"))
    else:
        frame.to_csv(path, index=False, encoding=encoding)
    assert rows_of(path, ended=True) == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]


def test_a_cell_past_the_csv_field_limit_is_a_corrupt_record_naming_the_line_after_the_rows_before(
    tmp_path: Path,
) -> None:
    # an unterminated quote makes the rest of the file one cell; past csv's 128 KB field
    # limit the csv module raises csv.Error, which was a traceback of `mrl table`
    from metarunlog.errors import CorruptRecord

    path = tmp_path / "metrics.csv"
    path.write_text('step,note\n1,ok\n2,"' + "x" * 200_000 + "\n3,fine\n")
    rows = iter_csv(path, ended=True)
    assert next(rows) == {"step": 1, "note": "ok"}
    with pytest.raises(CorruptRecord, match=f"{path}: line 3: field larger than field limit"):
        next(rows)


def test_mrl_table_over_such_a_csv_shows_the_rows_before_and_one_error_line(project: Path) -> None:
    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}])
    (exp.subexp_dir(1) / "metrics.csv").write_text('step,loss\n1,0.5\n2,"' + "x" * 200_000 + "\n")
    proc = run_mrl("table", "--json", cwd=project)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1 and json.loads(proc.stdout)[0]["loss"] == 0.5
    assert proc.stderr.count("mrl: error: ") == 1
    assert "metrics.csv: line 3: field larger than field limit" in proc.stderr


def test_numpy_savetxt_s_commented_header_names_the_columns(tmp_path: Path) -> None:
    # np.savetxt(header=...) writes "# step,loss": the first column was "# step", so the
    # step was a metric and the curve had no x
    np = pytest.importorskip("numpy")
    path = tmp_path / "metrics.csv"
    np.savetxt(path, np.array([[0, 1.5], [1, 0.5]]), delimiter=",", header="step,loss")
    assert path.read_text().startswith("# step,loss\n")
    assert rows_of(path, ended=True) == [{"step": 0.0, "loss": 1.5}, {"step": 1.0, "loss": 0.5}]


def _noted_csv(path: Path, *, ended: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    said: list[str] = []
    rows = list(CsvReader(Settings()).read_rows_noting([path], ended=ended, warn=said.append))
    return rows, said


def test_a_line_past_the_line_cap_is_skipped_unread_and_the_rows_around_it_kept(tmp_path: Path) -> None:
    # a 300 MB line (a dumped array, or no CSV at all) was read whole into memory
    from metarunlog.metrics.base import MAX_LINE

    path = tmp_path / "metrics.csv"
    long = "9," * (MAX_LINE // 2 + 10) + "9\n"
    path.write_text("step,loss\n1,0.5\n" + long + "3,0.25\n")
    rows, said = _noted_csv(path)
    assert rows == [{"step": 1, "loss": 0.5}, {"step": 3, "loss": 0.25}]
    assert said == [f"{path}: skipped 1 line(s) longer than 1 MiB, the most mrl reads of one line (the first: line 3)"]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_lines_read_in_blocks_are_the_file_s_lines_whatever_the_blocks_cut(tmp_path: Path, end: str) -> None:
    # lines are read in blocks now: a block may end inside a line, or between "\r" and "\n"
    from metarunlog.metrics import base

    path = tmp_path / "metrics.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator=end)
        w.writerow(["step", "loss", "note"])
        w.writerows([s, 1 / (s + 1), f"a{s}" if s % 3 else 'x,"y"'] for s in range(300))
    assert len(rows_of(path, ended=True)) == 300
    with path.open(newline="") as f:
        want = f.readlines()  # how the csv module's file splits them
    for block in (1, 2, 3, 7, 64, 1 << 20):
        said: list[str] = []
        with path.open(newline="") as f:
            lines = [x for chunk in base.line_blocks(f, said.append, block=block, cr=True) for x in chunk]
        assert lines == want and not said
