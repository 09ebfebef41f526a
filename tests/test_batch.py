"""metarunlog.batch: MRL lines -> combinations, parsed with ast and never executed."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarunlog import batch
from metarunlog.batch import BatchSpec, MrlLine, expand, parse_grid, parse_set, parse_spec, split_template
from metarunlog.errors import BatchError

README_CONF = """\
local cfg = {
    learning_rate = {{lr}},
    wdecay    = {{wdecay}},
}
-- MRL:grid['lr'] = [0.01, 0.04, 0.1]
-- MRL:grid['wdecay'] = [0.1, 1.0, 10.0]
"""


def spec_of(text: str, name: str = "conf.lua") -> BatchSpec:
    return parse_spec(split_template(name, text).mrl_lines)


def combos_of(text: str) -> list[dict[str, Any]]:
    return expand(spec_of(text)).combos


def test_the_readme_grid_gives_nine_combinations_first_line_slowest() -> None:
    combos = combos_of(README_CONF)
    assert len(combos) == 9
    assert combos[:4] == [
        {"lr": 0.01, "wdecay": 0.1},
        {"lr": 0.01, "wdecay": 1.0},
        {"lr": 0.01, "wdecay": 10.0},
        {"lr": 0.04, "wdecay": 0.1},
    ]
    assert combos[-1] == {"lr": 0.1, "wdecay": 10.0}


def test_mrl_lines_are_removed_and_the_rest_keeps_its_line_numbers() -> None:
    t = split_template("conf.lua", "a\n-- MRL:grid['x'] = [1]\nb\n# MRL:repeat = 2\nc")
    assert t.body == "a\nb\nc"
    assert [line.lineno for line in t.mrl_lines] == [2, 4]
    assert t.original_line(2) == 3 and t.original_line(3) == 5


@pytest.mark.parametrize(
    "line",
    [
        "-- MRL:grid['x'] = [1, 2]",
        "# MRL:grid['x'] = [1, 2]",
        "// MRL:grid['x'] = [1, 2]",
        "% MRL:grid['x'] = [1, 2]",
        "; MRL:grid['x'] = [1, 2]",
        "    #MRL:grid[\"x\"] = [1, 2]",
        "MRL:grid['x'] = [1, 2]",
        "<!-- MRL:grid['x'] = [1, 2] -->",
        "/* MRL:grid['x'] = [1, 2] */",
    ],
)
def test_mrl_lines_may_carry_any_comment_symbol(line: str) -> None:
    assert spec_of(f"x: {{{{x}}}}\n{line}\n").grid == {"x": [1, 2]}


def test_a_comment_that_merely_mentions_mrl_is_template_text() -> None:
    t = split_template("c", "# see MRL: the docs\nx = 'MRL:grid'\n")
    assert t.mrl_lines == [] and t.body == "# see MRL: the docs\nx = 'MRL:grid'\n"


def test_params_are_crossed_with_the_grid_params_outermost_and_grid_winning() -> None:
    combos = combos_of(
        "# MRL:grid['lr'] = [1, 2]\n# MRL:params = [{'opt': 'sgd'}, {'opt': 'adam', 'lr': 9, 'b': 0.9}]\n"
    )
    assert combos == [
        {"opt": "sgd", "lr": 1},
        {"opt": "sgd", "lr": 2},
        {"opt": "adam", "lr": 1, "b": 0.9},
        {"opt": "adam", "lr": 2, "b": 0.9},
    ]


def test_repeat_makes_each_combination_n_times_with_a_repeat_param() -> None:
    combos = combos_of("# MRL:grid['lr'] = [1, 2]\n# MRL:repeat = 3\n")
    assert combos == [{"lr": lr, "repeat": r} for lr in (1, 2) for r in range(3)]


def test_a_repeat_param_already_defined_is_an_error() -> None:
    with pytest.raises(BatchError, match="rename one"):
        combos_of("# MRL:grid['repeat'] = [1, 2]\n# MRL:repeat = 3\n")


def test_sample_keeps_a_seeded_subset_in_order_and_a_larger_sample_keeps_it() -> None:
    base = "# MRL:grid['a'] = [" + ",".join(map(str, range(20))) + "]\n# MRL:grid['b'] = [0, 1]\n"
    small = combos_of(base + "# MRL:sample = 5\n# MRL:seed = 3\n")
    again = combos_of(base + "# MRL:sample = 5\n# MRL:seed = 3\n")
    large = combos_of(base + "# MRL:sample = 12\n# MRL:seed = 3\n")
    other = combos_of(base + "# MRL:sample = 5\n# MRL:seed = 4\n")
    full = combos_of(base)
    assert small == again and len(small) == 5 and small != other
    assert [full.index(c) for c in small] == sorted(full.index(c) for c in small)
    assert all(c in large for c in small)


def test_identical_combinations_are_made_once_and_counted() -> None:
    exp = expand(spec_of("# MRL:grid['a'] = [1, 1, 2]\n# MRL:params = [{'b': 1}, {'b': 1}]\n"))
    assert exp.combos == [{"b": 1, "a": 1}, {"b": 1, "a": 2}]
    assert exp.total == 6 and exp.duplicates == 4


def test_one_and_one_point_zero_are_different_combinations() -> None:
    assert len(combos_of("# MRL:grid['a'] = [1, 1.0, True]\n")) == 3


def test_the_injection_line_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    line = f"# MRL:grid['x'] = __import__('os').system('touch {marker}')\n"
    with pytest.raises(BatchError, match=r"conf.lua: line 1: .*not a Python literal"):
        spec_of(line)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("# MRL:grid['x'] = [1, 2", "cannot read MRL line"),
        ("# MRL:gird['x'] = [1]", "cannot assign to"),
        ("# MRL:prams = [{'a': 1}]", "did you mean 'params'"),
        ("# MRL:grid = {'x': [1]}", "one axis per line"),
        ("# MRL:grid['x'] = []", "is empty"),
        ("# MRL:grid['x'] = 3", "must be a list"),
        ("# MRL:grid['my-x'] = [1]", "must be an identifier"),
        ("# MRL:params = {'a': 1}", "list of dicts"),
        ("# MRL:params = []", "empty list"),
        ("# MRL:repeat = 0", "positive integer"),
        ("# MRL:sample = 'all'", "positive integer"),
        ("# MRL:seed = 1.5", "seed must be an integer"),
        ("# MRL:grid['x'] = [{1, 2}]", "cannot be stored in a JSON record"),
        ("# MRL:grid['x'] = [1e999]", "cannot be stored"),
        ("# MRL:grid['x'] == [1]", "not an assignment"),
        ("# MRL:import os", "not an assignment"),
        ("# MRL:grid['x'] = [a]", "not a Python literal"),
        ("# MRL:grid['x'] = list(range(3))", "not a Python literal"),
    ],
)
def test_a_bad_mrl_line_is_an_error_naming_file_and_line(line: str, message: str) -> None:
    with pytest.raises(BatchError, match=message) as e:
        spec_of(f"x = 1\n{line}\n", name="conf.yaml")
    assert str(e.value).startswith("conf.yaml: line 2: ")


def test_an_axis_set_twice_is_an_error_naming_both_lines() -> None:
    with pytest.raises(BatchError, match=r"line 2: grid\['x'\] is already set at conf.lua: line 1"):
        spec_of("# MRL:grid['x'] = [1]\n# MRL:grid['x'] = [2]\n")


def test_a_template_without_mrl_lines_is_a_single_job() -> None:
    spec = spec_of("lr = {{ lr }}\n")
    assert spec.is_single and expand(spec).combos == [{}]


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("lr=0.1", "lr", 0.1),
        ("opt=adam", "opt", "adam"),
        ("opt='adam'", "opt", "adam"),
        ("layers=[1, 2]", "layers", [1, 2]),
        ("flag=True", "flag", True),
        ("x=", "x", ""),
        ("name=a=b", "name", "a=b"),
    ],
)
def test_set_values_are_literals_falling_back_to_strings(item: str, key: str, value: Any) -> None:
    assert parse_set(item) == (key, value)


@pytest.mark.parametrize(
    ("item", "values"),
    [
        ("lr=0.1,0.01", [0.1, 0.01]),
        ("lr=[0.1, 0.01]", [0.1, 0.01]),
        ("lr=0.1", [0.1]),
        ("opt=adam,sgd", ["adam", "sgd"]),
        ("opt=adam,0.5", ["adam", 0.5]),
        ("shape=[[1, 2], [3, 4]]", [[1, 2], [3, 4]]),
    ],
)
def test_grid_values_are_split_on_commas_or_read_as_a_list(item: str, values: list[Any]) -> None:
    assert parse_grid(item) == (item.split("=")[0], values)


@pytest.mark.parametrize("item", ["lr", "=1", "lr=", "my-lr=1,2"])
def test_a_malformed_grid_option_is_an_error(item: str) -> None:
    with pytest.raises(BatchError):
        parse_grid(item)


def test_set_fixes_a_grid_axis_and_overrides_params_without_duplicates() -> None:
    spec = spec_of("# MRL:grid['lr'] = [1, 2]\n# MRL:grid['wd'] = [0, 1]\n# MRL:params = [{'e': 1}]\n")
    batch.apply_overrides(spec, [("lr", 5), ("e", 3), ("new", "x")], [("wd", [7, 8, 9])])
    exp = expand(spec)
    assert exp.duplicates == 0
    assert exp.combos == [{"e": 3, "lr": 5, "wd": w, "new": "x"} for w in (7, 8, 9)]


# -- properties --------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.5, 1.0, -2.25, 1e-3]),
    st.text("ab' \"\\{}#", max_size=4),
    st.booleans(),
    st.none(),
)
names = st.sampled_from(["a", "b", "lr", "wd", "opt_1"])
grids = st.dictionaries(names, st.lists(scalars, min_size=1, max_size=3), max_size=3)
param_lists = st.one_of(st.none(), st.lists(st.dictionaries(names, scalars, max_size=2), min_size=1, max_size=3))
comments = st.sampled_from(["--", "#", "//", "%", ";", ""])


def mrl_text(grid: dict[str, list[Any]], params: list[dict[str, Any]] | None, comment: str) -> str:
    lines = ["config {{ a is defined }}", "# see MRL: a mention is template text"]
    lines += [f"{comment} MRL:grid[{k!r}] = {v!r}" for k, v in grid.items()]
    if params is not None:
        lines.append(f"{comment} MRL:params = {params!r}")
    lines.append("end")
    return "\n".join(lines) + "\n"


def reference(grid: dict[str, list[Any]], params: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    points = [dict(zip(grid, vals, strict=True)) for vals in itertools.product(*grid.values())]
    return [{**p, **g} for p in (params or [{}]) for g in points]


def canon(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True)


@settings(max_examples=150, deadline=None)
@given(grids, param_lists, comments)
def test_every_distinct_combination_appears_exactly_once(
    grid: dict[str, list[Any]], params: list[dict[str, Any]] | None, comment: str
) -> None:
    text = mrl_text(grid, params, comment)
    exp = expand(spec_of(text))
    want = reference(grid, params)
    distinct = {canon(d) for d in want}
    assert len(exp.combos) == len(distinct) == exp.total - exp.duplicates
    assert exp.total == math.prod(len(v) for v in grid.values()) * len(params or [{}])
    assert sorted(canon(c) for c in exp.combos) == sorted(distinct)


@settings(max_examples=150, deadline=None)
@given(grids, param_lists, comments)
def test_a_rendered_body_contains_no_mrl_line(
    grid: dict[str, list[Any]], params: list[dict[str, Any]] | None, comment: str
) -> None:
    t = split_template("t", mrl_text(grid, params, comment))
    assert all(batch._mrl_statement(line) is None for line in t.body.splitlines())
    assert len(t.mrl_lines) == len(grid) + (params is not None)
    assert t.body.startswith("config") and t.body.endswith("end\n")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_after_mrl_is_parsed_or_refused_never_run(stmt: str) -> None:
    line = MrlLine("f", 1, stmt)
    try:
        batch.parse_line(line)
    except BatchError as e:
        assert str(e).startswith("f: line 1: ")
