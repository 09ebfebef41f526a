"""`--where`: parsed with ast, walked by hand, never eval."""

from __future__ import annotations

import pytest

from metarunlog.errors import MrlError
from metarunlog.where import compile_where, filter_rows

COLUMNS = ["id", "lr", "state", "val_loss", "metric.lr", "train/loss"]
ROWS = [
    {"id": "001", "lr": 0.1, "state": "done", "val_loss": 0.2, "metric.lr": 0.05, "train/loss": 1.0},
    {"id": "002", "lr": 0.01, "state": "done", "val_loss": 0.5, "metric.lr": 0.01, "train/loss": 2.0},
    {"id": "003", "lr": 0.1, "state": "failed", "val_loss": None, "metric.lr": None, "train/loss": None},
]


def ids(text: str) -> list[str]:
    return [r["id"] for r in filter_rows(ROWS, text, COLUMNS)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("val_loss < 0.3 and lr == 0.1 and state == 'done'", ["001"]),
        ("val_loss < 0.3 or state == 'failed'", ["001", "003"]),
        ("not state == 'done'", ["003"]),
        ("state in ['done', 'stale']", ["001", "002"]),
        ("state not in ('done',)", ["003"]),
        ("0.1 <= val_loss < 0.4", ["001"]),
        ("val_loss is None", ["003"]),
        ('col["train/loss"] > 1.5', ["002"]),
        ("val_loss * 2 - 0.1 > 0.5", ["002"]),
        ("-val_loss > -0.3", ["001"]),
        ("val_loss > 'a'", []),  # a string against a number: false, not an error
        ("id == '002'", ["002"]),
    ],
)
def test_where_keeps_the_rows_the_expression_holds_for(text: str, expected: list[str]) -> None:
    assert ids(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo pwned')",
        "lr.__class__",
        "state.upper() == 'DONE'",
        "open('/etc/passwd')",
        "(lambda: 1)()",
        "[x for x in lr]",
        "lr ** 999999999",
        "ROWS[0]",
        "__builtins__",
    ],
)
def test_hostile_or_unsupported_input_is_refused_before_any_row_is_read(text: str) -> None:
    with pytest.raises(MrlError, match="--where"):
        compile_where(text, COLUMNS)


def test_an_unknown_name_lists_the_columns() -> None:
    with pytest.raises(MrlError, match=r"no column 'val_acc'; the columns are: id, lr, state, val_loss"):
        compile_where("val_acc > 0.5", COLUMNS)


@pytest.mark.parametrize(
    ("text", "column"), [("train/loss < 1.5", "train/loss"), ("learning-rate == 0.1", "learning-rate")]
)
def test_a_name_with_a_slash_or_dash_written_bare_gets_the_col_form_to_write(text: str, column: str) -> None:
    """`train/loss` (TensorBoard's tags) and `learning-rate` parse as a division and a
    subtraction: the error named a column `train` and left the user guessing."""
    with pytest.raises(MrlError) as e:
        compile_where(text, [*COLUMNS, "learning-rate"])
    assert f'for the column {column} write col["{column}"]' in str(e.value)


def test_a_name_with_a_space_written_bare_gets_the_col_form_in_the_syntax_error() -> None:
    # `Train Loss < 0.5` (a hand-written CSV header) said only "invalid syntax"
    with pytest.raises(MrlError) as e:
        compile_where("Train Loss < 0.5", [*COLUMNS, "Train Loss"])
    said = str(e.value)
    assert 'cannot parse it (invalid syntax, column 7); for the column Train Loss write col["Train Loss"]' in said


def test_bad_syntax_is_one_clear_error() -> None:
    with pytest.raises(MrlError, match="cannot parse"):
        compile_where("val_loss <", COLUMNS)


def test_a_prefixed_metric_can_be_named_without_its_prefix_when_unambiguous() -> None:
    assert compile_where("metric_lr_alias == 1", ["metric.metric_lr_alias"])({"metric.metric_lr_alias": 1})


def test_exp_and_id_compare_with_a_number_as_the_folder_number_the_command_line_takes() -> None:
    # `mrl table 2 3` names experiment 0002 as 2; `--where "exp == 2"` matched nothing.
    rows = [{"exp": "0002", "id": "001"}, {"exp": "0003", "id": "010"}, {"exp": "0010", "id": "2a"}]
    cols = ["exp", "id"]
    assert [r["exp"] for r in filter_rows(rows, "exp == 2", cols)] == ["0002"]
    assert [r["exp"] for r in filter_rows(rows, "exp in [3, 10]", cols)] == ["0003", "0010"]
    assert [r["id"] for r in filter_rows(rows, "id >= 10", cols)] == ["010"]
    assert [r["id"] for r in filter_rows(rows, "id != 1", cols)] == ["010", "2a"]
    assert [r["exp"] for r in filter_rows(rows, "exp == '0003'", cols)] == ["0003"]  # as text, as before


def test_a_dotted_column_name_written_bare_is_that_column() -> None:
    # mrl itself names a metric shadowed by a param `metric.lr`, and a param `id` of an older
    # batch `param.id`; a user types them as shown (it was refused: "write col[...]")
    assert ids("metric.lr > 0.02") == ids('col["metric.lr"] > 0.02') == ["001"]
    rows = [{"id": "001", "param.id": 7}, {"id": "002", "param.id": 1}]
    assert [r["id"] for r in filter_rows(rows, "param.id == 1", ["id", "param.id"])] == ["002"]
    assert [r["id"] for r in filter_rows(rows, "param.id > id", ["id", "param.id"])] == ["001"]
    for text in ("lr.__class__", "metric.lr.__class__", "metric.__class__", "(1).real", "'a'.upper"):
        with pytest.raises(MrlError, match=r"Attribute is not allowed"):
            compile_where(text, [*COLUMNS, "metric.__class__"])
    with pytest.raises(MrlError, match=r"^--where: no column 'param.idd'; the columns are: id, lr, state"):
        compile_where("param.idd == 1", COLUMNS)  # a typo of a dotted column: as any unknown name


@pytest.mark.parametrize(
    "text",
    [
        "not " * 30000 + "lr",  # the parser runs out of memory
        "lr+" * 30000 + "lr",  # the parser's recursion limit
        "-" * 500 + "lr",  # parses, but too deep for the walker and the predicate
        "lr == 1 and " * 400 + "lr == 1",  # long
        "lr == '\x00'",
    ],
    ids=["30000 not", "30000 +", "500 minus", "long", "NUL"],
)
def test_input_too_long_or_deep_for_the_parser_is_one_clear_error(text: str) -> None:
    with pytest.raises(MrlError, match="--where"):
        compile_where(text, COLUMNS)


def test_a_deep_but_allowed_expression_still_filters() -> None:
    assert ids("not " * 21 + "state == 'failed'") == ["001", "002"]


@pytest.mark.parametrize(
    "text",
    ["[1] * 9999999999 == [1]", "(1,) * 9999999999 == 1", "lr in [1] * 99999999999", "layers * 9999999999 == []"],
)
def test_arithmetic_on_lists_is_no_number_and_never_builds_a_huge_list(text: str) -> None:
    # a list times a number was a MemoryError traceback ("internal error") after minutes of swap
    rows = [{"id": "001", "lr": 0.1, "layers": [64, 64]}]
    assert filter_rows(rows, text, ["id", "lr", "layers"]) == []
