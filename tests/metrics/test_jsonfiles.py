"""metarunlog/metrics/jsonfiles.py: `metrics.json` summaries and `metrics.jsonl` lines as
`json.dump` / a JSON-lines logger write them, read whole, in chunks, and when they are not
what they should be. `mrl table` through these files is in tests/metrics/test_readers.py."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from metarunlog.errors import CorruptRecord
from metarunlog.metrics.base import Settings
from metarunlog.metrics.jsonfiles import JsonReader, Skipped, iter_jsonl, read_jsonl, read_summary


def write_lines(path: Path, rows: list[Any]) -> None:
    with open(path, "w") as f:  # what a JSON-lines logger does: one json.dumps and a newline a step
        for row in rows:
            f.write(json.dumps(row) + "\n")


def noted(reader: JsonReader, files: list[Path], *, ended: bool) -> tuple[list[dict[str, Any]], list[str]]:
    warnings: list[str] = []
    rows = list(reader.read_rows_noting(files, ended=ended, warn=warnings.append))
    return rows, warnings


def test_a_summary_is_the_object_json_dump_wrote(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test_acc": 0.91, "n": 3, "name": "résumé"}))
    assert read_summary(path) == {"test_acc": 0.91, "n": 3, "name": "résumé"}


def test_nan_and_infinity_that_json_dump_writes_are_read_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"loss": float("nan"), "grad": float("inf")}))  # NaN, Infinity: not strict JSON
    got = read_summary(path)
    assert math.isnan(got["loss"]) and got["grad"] == math.inf


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "corrupt record"),
        (b'{"acc": 0.9', "corrupt record"),
        (b'{"acc": "\xff"}', r"is not UTF-8 \(byte 0xff at offset 9\)"),
        (b"[0.9, 0.8]", "must hold a JSON object"),
        (b"0.9", "must hold a JSON object"),
    ],
)
def test_a_summary_that_is_not_a_json_object_is_a_corrupt_record_naming_the_file(
    tmp_path: Path, data: bytes, match: str
) -> None:
    path = tmp_path / "metrics.json"
    path.write_bytes(data)
    with pytest.raises(CorruptRecord, match=match) as e:
        read_summary(path)
    assert str(path) in str(e.value)


def test_a_missing_summary_is_empty_and_a_folder_of_that_name_is_an_error(tmp_path: Path) -> None:
    assert read_summary(tmp_path / "metrics.json") == {}
    (tmp_path / "metrics.json").mkdir()
    with pytest.raises(CorruptRecord, match="cannot read"):
        read_summary(tmp_path / "metrics.json")


def test_several_summaries_merge_and_the_later_file_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"acc": 0.5, "loss": 1.0}')
    b.write_text('{"acc": 0.75}')
    assert JsonReader(Settings()).summary([a, b]) == {"acc": 0.75, "loss": 1.0}
    assert JsonReader(Settings()).summary([tmp_path / "metrics.jsonl"]) is None  # no .json among them


def test_json_lines_are_read_in_order_across_chunk_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": i, "loss": 1 / (i + 1)} for i in range(500)]
    write_lines(path, rows)
    for chunk in (1, 17, 1 << 20):  # every line its own chunk, lines cut across chunks, one chunk
        assert list(iter_jsonl(path, chunk)) == rows


def test_bad_lines_are_skipped_counted_and_the_first_is_named(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n\n42\n[1, 2]\nnot json\n{"step": 2}\n')
    rows, warnings = noted(JsonReader(Settings()), [path], ended=True)
    assert rows == [{"step": 1}, {"step": 2}]
    assert warnings == [f"{path}: skipped 3 line(s) that are not JSON objects (the first: line 3)"]


def test_line_numbers_of_skipped_lines_count_the_chunks_before(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2}\n{"step": 3}\noops\n')
    skipped = Skipped()
    assert len(list(iter_jsonl(path, 1, skipped=skipped))) == 3
    assert (skipped.count, skipped.first) == (1, 4)


def test_a_line_that_is_not_utf8_is_skipped_with_a_warning_naming_its_line(tmp_path: Path) -> None:
    # read with replacement characters, a latin-1 line gave a name or value not in the file
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 0.5}\n{"step": 2, "tag": "caf\xe9", "l\xf6ss": 0.4}\n{"step": 3}\n')
    assert read_jsonl(path) == [{"step": 1, "loss": 0.5}, {"step": 3}]
    rows, warnings = noted(JsonReader(Settings()), [path], ended=True)
    assert rows == [{"step": 1, "loss": 0.5}, {"step": 3}]
    assert warnings == [
        f"{path}: skipped 1 line(s) that are not UTF-8 (the first: line 2), "
        "so as not to read wrong names or values from them"
    ]


def test_a_last_line_cut_inside_a_character_is_no_warning_while_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"tag": "caf' + "\u00e9".encode()[:1])
    assert noted(JsonReader(Settings()), [path], ended=False) == ([{"step": 1}], [])


def test_a_line_past_the_line_cap_is_skipped_unread_and_named(tmp_path: Path) -> None:
    # a 300 MB value was read whole (and then shown); now no line past MAX_LINE_BYTES is held
    from metarunlog.metrics import jsonfiles

    path = tmp_path / "metrics.jsonl"
    blob = b'{"step": 2, "dump": "' + b"x" * (jsonfiles.MAX_LINE_BYTES + 10) + b'"}\n'
    path.write_bytes(b'{"step": 1, "loss": 0.5}\n' + blob + b'{"step": 3, "loss": 0.25}\n' + blob[:-1])
    for chunk in (jsonfiles.CHUNK_BYTES, 4096, 7):
        skipped = Skipped(True)
        assert list(iter_jsonl(path, chunk, skipped=skipped)) == [{"step": 1, "loss": 0.5}, {"step": 3, "loss": 0.25}]
        assert skipped.messages(path) == [
            f"{path}: skipped 2 line(s) longer than 1 MiB, the most mrl reads of one line (the first: line 2)"
        ]


def test_a_half_written_last_line_is_no_warning_while_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    reader = JsonReader(Settings())
    assert noted(reader, [path], ended=False) == ([{"step": 1, "loss": 0.5}], [])
    rows, warnings = noted(reader, [path], ended=True)  # it ended so: that line is all there is
    assert rows == [{"step": 1, "loss": 0.5}] and warnings == [
        f"{path}: skipped 1 line(s) that are not JSON objects (the first: line 2)"
    ]


def test_a_multi_line_json_array_is_not_taken_for_json_lines(tmp_path: Path) -> None:
    # one pretty-printed json.dump of a list: no line is an object, whatever the chunk joins
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps([{"step": 1}, {"step": 2}], indent=1) + "\n")
    skipped = Skipped()
    assert list(iter_jsonl(path, skipped=skipped)) == [] and skipped.count > 0


def test_a_missing_jsonl_or_a_folder_of_that_name_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    assert read_jsonl(tmp_path / "gone.jsonl") == [] and read_jsonl(tmp_path / "folder.jsonl") == []


def test_rows_come_from_jsonl_files_only_and_summaries_from_json_files(tmp_path: Path) -> None:
    summary, lines = tmp_path / "metrics.json", tmp_path / "metrics.jsonl"
    summary.write_text('{"acc": 0.9}')
    write_lines(lines, [{"step": 0, "loss": 1.0}])
    reader = JsonReader(Settings())
    assert list(reader.rows([summary, lines])) == [{"step": 0, "loss": 1.0}]
    assert reader.summary([summary, lines]) == {"acc": 0.9}
    assert reader.accepts("eval/x.json") and reader.accepts("x.jsonl") and not reader.accepts("x.csv")


def test_a_line_nested_too_deep_for_the_parser_is_a_skipped_line_not_a_crash(tmp_path: Path) -> None:
    # json.loads raises RecursionError (no ValueError) past ~1,000 levels: a garbage file
    # named metrics.jsonl stopped `mrl table` with a traceback
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n' + "[" * 100_000 + "\n" + '{"step": 2}\n')
    skipped = Skipped()
    assert list(iter_jsonl(path, skipped=skipped)) == [{"step": 1}, {"step": 2}]
    assert (skipped.count, skipped.first) == (1, 2)


def test_a_summary_nested_too_deep_for_the_parser_is_a_corrupt_record(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"a": ' + "[" * 100_000)
    with pytest.raises(CorruptRecord, match="corrupt record .*metrics.json: nested too deep"):
        read_summary(path)


def test_mrl_table_over_a_garbage_metrics_file_is_a_warning_and_the_table(project: Path) -> None:
    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "jsonl": '{"loss": 0.5}\n' + "[" * 50_000 + "\n"}])
    proc = run_mrl("table", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["loss"] == 0.5
    assert "skipped 1 line(s) that are not JSON objects (the first: line 2)" in proc.stderr


def test_pandas_to_json_lines_and_its_records_list_are_both_read_as_rows(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"step": [0, 1], "loss": [1.0, float("nan")]})
    lines = tmp_path / "metrics.jsonl"
    frame.to_json(lines, orient="records", lines=True)  # NaN is written as null
    assert read_jsonl(lines) == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": None}]
    summary = tmp_path / "metrics.json"
    frame.to_json(summary, orient="records")  # a list of dicts: the same rows, not an error
    reader = JsonReader(Settings())
    assert reader.read_summary([summary], writing=False) is None
    assert noted(reader, [summary], ended=True) == ([{"step": 0, "loss": 1.0}, {"step": 1, "loss": None}], [])


def test_a_list_of_dicts_is_rows_in_order_and_items_that_are_no_object_are_skipped_and_said(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    json.dump([{"epoch": 1, "loss": 0.5}, 7, {"epoch": 2, "loss": 0.25, "acc": 0.9}], path.open("w"))
    reader = JsonReader(Settings())
    said: list[str] = []
    assert reader.read_summary_noting([path], writing=False, warn=said.append) is None
    assert said == [f"{path}: skipped 1 item(s) that are not JSON objects (the first: item 2)"]
    assert list(reader.rows([path])) == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "acc": 0.9}]
    assert read_summary(path) == {}  # no final values of its own: the rows' last ones are


def test_keras_history_dict_of_lists_is_rows_one_per_epoch(tmp_path: Path) -> None:
    # `json.dump(model.fit(...).history, f)`: one list per metric, one value per epoch
    path = tmp_path / "metrics.json"
    history = {"loss": [0.9, 0.5, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.0, 0.6, 0.7]}
    json.dump(history, path.open("w"))
    reader = JsonReader(Settings())
    assert reader.read_summary([path], writing=False) is None
    assert list(reader.read_rows_noting([path], ended=True, warn=print)) == [
        {"loss": 0.9, "accuracy": 0.5, "val_loss": 1.0},
        {"loss": 0.5, "accuracy": 0.7, "val_loss": 0.6},
        {"loss": 0.4, "accuracy": 0.8, "val_loss": 0.7},
    ]


def test_a_summary_whose_values_are_lists_of_text_stays_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"classes": ["cat", "dog"], "per_class_acc": [0.9, 0.8]}')
    assert JsonReader(Settings()).summary([path]) == {"classes": ["cat", "dog"], "per_class_acc": [0.9, 0.8]}


def test_mrl_table_of_a_list_and_a_keras_history_metrics_json(project: Path) -> None:
    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    epochs = [{"epoch": e, "loss": 1 / e, "val_acc": [0.5, 0.9, 0.7][e - 1]} for e in (1, 2, 3)]
    keras = {"loss": [0.8, 0.3], "val_loss": [0.9, 0.4]}
    make_exp(project, [{"status": done(), "metrics": epochs}, {"status": done(), "metrics": keras}])
    proc = run_mrl("table", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    first, second = json.loads(proc.stdout)
    assert (first["loss"], first["val_acc"], second["loss"], second["val_loss"]) == (1 / 3, 0.7, 0.3, 0.4)
    proc = run_mrl("table", "--json", "--summary", "best", cwd=project)
    first, second = json.loads(proc.stdout)
    assert (first["val_acc"], first["val_acc_step"], second["val_loss"], second["val_loss_step"]) == (0.9, 2, 0.4, 1)


def test_a_keras_history_with_validation_freq_does_not_put_val_values_on_the_first_epochs(project: Path) -> None:
    """`fit(..., validation_freq=2)` for 6 epochs: `val_loss` holds 3 values, measured at
    epochs 2, 4 and 6, which the file does not say. They were put on epochs 0-2: the best
    val_loss (0.35) was said to be reached at step 1."""
    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    keras = {"loss": [0.9, 0.5, 0.4, 0.3, 0.2, 0.1], "val_loss": [0.8, 0.35, 0.7]}
    make_exp(project, [{"status": done(), "metrics": keras}])
    proc = run_mrl("table", "--json", "--summary", "best", cwd=project)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert (row["loss"], row["loss_step"], row["val_loss"]) == (0.1, 5, 0.7)
    assert row.get("val_loss_step") is None  # no epoch is claimed for it
    assert proc.stderr.count("mrl: warning:") == 1 and "'val_loss' (3)" in proc.stderr, proc.stderr
    assert "validation_freq" in proc.stderr
    (row,) = json.loads(run_mrl("table", "--json", cwd=project).stdout)
    assert (row["loss"], row["val_loss"]) == (0.1, 0.7)


def test_a_json_file_past_the_size_cap_is_left_out_with_a_warning(tmp_path: Path, monkeypatch: Any) -> None:
    from metarunlog.metrics import jsonfiles

    monkeypatch.setattr(jsonfiles, "MAX_JSON_BYTES", 1000)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"acc": 0.5, "log": "x" * 2000}))
    said: list[str] = []
    assert JsonReader(Settings()).read_summary_noting([path], writing=False, warn=said.append) is None
    assert said == [
        f"{path} is larger than 0 MiB, the most mrl reads of a .json file, so its values are left out "
        "(write a metrics.jsonl for long series, or keep large data in another file)"
    ]


def test_mrl_table_over_a_huge_string_in_metrics_json_keeps_the_other_values_and_says_what_it_left_out(
    project: Path,
) -> None:
    # a 300 MB string made `mrl table` take 4.4 GB and 68 s; a value past MAX_VALUE_CHARS is left out
    from metarunlog.metrics import jsonfiles
    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    n = jsonfiles.MAX_VALUE_CHARS + 1
    make_exp(project, [{"status": done(), "metrics": {"acc": 0.5, "log": "x" * n, "cm": [[1] * n]}}])
    proc = run_mrl("table", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["acc"] == 0.5 and "log" not in row and "cm" not in row
    assert f"the value of 'log' is {n:,} characters long, more than the 100,000 mrl keeps of a value" in proc.stderr
    assert "the value of 'cm' is" in proc.stderr


def _each_line_alone(data: bytes) -> list[dict[str, Any]]:
    """What reading the file one `json.loads` per line gives: the reference."""
    out = []
    for line in data.split(b"\n"):
        try:
            d = json.loads(line.decode("utf-8-sig", errors="replace")) if line.strip() else None
        except ValueError:
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


@pytest.mark.parametrize(
    "crafted",
    [
        # lines that are each cut, joined by the chunk's commas into one object, and a line
        # holding two objects making the count match: 3 lines, 3 dicts, none of them a line's
        [b'{"x": [1\n', b"2]}\n", b'{"a": 1},{"b": 2}\n'],
        # the same with the brackets balanced by ones inside strings
        [b'{"a": [{"]}": 1}\n', b'{"b": "[{"}]}\n', b'{"c": 1},{"d": 2}\n'],
        # a line that opens no object, continuing the one before
        [b'{"a": 1},{"b": 1\n', b'"c": 2}\n'],
    ],
)
def test_crafted_lines_that_join_into_as_many_objects_are_each_read_as_what_they_are(
    tmp_path: Path, crafted: list[bytes]
) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 0, "loss": 1}\n' + b"".join(crafted) + b'{"step": 1, "loss": 0.5}\n')
    skipped = Skipped()
    assert list(iter_jsonl(path, skipped=skipped)) == [{"step": 0, "loss": 1}, {"step": 1, "loss": 0.5}]
    assert skipped.count == len(crafted) and skipped.first == 2


def test_jsonl_read_in_chunks_is_exactly_each_line_read_alone(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(
        [
            '{"step": 1, "loss": 0.5}',
            '{"a": {"b": 1}}',
            '{"s": "{}[],"}',
            '{"x": [1',
            "2]}",
            '{"a": 1},{"b": 2}',
            '"c": 2}',
            "[1, 2]",
            "7",
            "",
            " ",
            '{"n": NaN}',
            '{"k": [{"]}": 1}',
            '{"b": "[{"}]}',
            '  {"lead": 1}',
            '{"crlf": 1}\r',
        ]
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(pieces, max_size=12), st.integers(min_value=1, max_value=64), st.booleans())
    def check(lines: list[str], chunk: int, last_end: bool) -> None:
        data = "\n".join(lines).encode() + (b"\n" if last_end and lines else b"")
        path = tmp_path / "m.jsonl"
        path.write_bytes(data)
        got = list(iter_jsonl(path, chunk_bytes=chunk))
        want = _each_line_alone(data)
        assert json.dumps(got) == json.dumps(want)  # NaN != NaN: compare as written

    check()


def test_a_summary_in_another_encoding_is_not_utf8_even_while_written_and_one_cut_in_a_character_is_cut_short(
    tmp_path: Path,
) -> None:
    from metarunlog.metrics.base import CutShort, NotUtf8
    from metarunlog.metrics.jsonfiles import read_summary

    path = tmp_path / "metrics.json"
    with open(path, "w", encoding="cp1252") as f:
        json.dump({"loss": 0.25, "note": "naïve"}, f, ensure_ascii=False)
    with pytest.raises(NotUtf8) as e:
        read_summary(path, writing=True)  # a write under way never makes this: said at once
    assert e.value.offset == len('{"loss": 0.25, "note": "na')
    assert "(byte 0xef at offset 26)" in str(e.value)
    whole = json.dumps({"loss": 0.25, "note": "naïve"}, ensure_ascii=False).encode()
    path.write_bytes(whole[: whole.index("ï".encode()) + 1])  # cut inside its two bytes: a write cut short
    assert read_summary(path, writing=True) == {}
    with pytest.raises(CutShort):
        read_summary(path)
    path.write_bytes(b"\xef\xbb\xbf" + whole)  # a UTF-8 byte order mark is still UTF-8
    assert read_summary(path) == {"loss": 0.25, "note": "naïve"}
