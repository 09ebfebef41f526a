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


def test_an_mrl_line_of_assignments_separated_by_semicolons_reads_each_as_the_originals_exec_did() -> None:
    # the original exec'ed the line: `grid['a'] = [1, 2]; grid['b'] = [5, 6]` set both axes
    assert combos_of("a = {{a}}\n# MRL:grid['a'] = [1, 2]; grid['b'] = [5, 6];\n") == [
        {"a": 1, "b": 5},
        {"a": 1, "b": 6},
        {"a": 2, "b": 5},
        {"a": 2, "b": 6},
    ]
    assert combos_of("# MRL:grid['a'] = [1, 2]; grid['b'] = [x * 10 for x in grid['a']]\n")[-1] == {"a": 2, "b": 20}
    with pytest.raises(BatchError, match=r"conf.lua: line 2: MRL line 'import os' is not an assignment"):
        spec_of("x\n# MRL:grid['a'] = [1]; import os\n")
    with pytest.raises(BatchError, match=r"conf.lua: line 1: .*'a'"):
        spec_of("# MRL:grid['a'] = [1]; grid['a'] = [2]\n")


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
        '    #MRL:grid["x"] = [1, 2]',
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


@pytest.mark.parametrize(
    "line",
    [
        "REM MRL:grid['x'] = [1, 2]",  # a .bat template
        "@REM MRL:grid['x'] = [1, 2]",
        "c MRL:grid['x'] = [1, 2]",  # Fortran 77
        "C MRL:grid['x']=[1, 2]",
        "dnl MRL:grid['x'] = [1, 2]",  # m4
        "##### MRL:grid['x'] = [1, 2]",
        "  !! MRL:grid['x'] = [1, 2]",
        "REM MRL: grid['x'] = [1, 2]",
    ],
)
def test_any_first_word_is_a_comment_symbol_as_in_the_original(line: str) -> None:
    """The original split off the line's first word whatever it was (`line.split(None,
    1)[-1]`), so `REM MRL:grid[...]` made a grid; it must not render as text into one run."""
    t = split_template("run.bat", f"set X={{{{x}}}}\n{line}\n")
    assert t.body == "set X={{x}}\n"
    assert spec_of(f"x: {{{{x}}}}\n{line}\n").grid == {"x": [1, 2]}


@pytest.mark.parametrize(
    "line",
    [
        "see MRL: the docs",
        "Note: MRL: is the prefix",
        "see MRL:params for more",
        "if MRL:repeat == 3 then",
        "two words MRL:grid['x'] = [1]",
        "echo 'MRL:grid['x'] = [1]'",
    ],
)
def test_prose_after_a_word_is_template_text_not_an_mrl_line(line: str) -> None:
    t = split_template("notes.md", f"{line}\n")
    assert t.mrl_lines == [] and t.body == f"{line}\n"


def test_a_typo_after_a_word_opener_is_an_error_naming_the_line_not_silent_text() -> None:
    with pytest.raises(BatchError, match=r"line 2: cannot assign to 'gird\['x'\]' in an MRL line"):
        spec_of("x: {{x}}\nREM MRL:gird['x'] = [1, 2]\n")
    with pytest.raises(BatchError, match=r"line 2: unknown MRL directive 'parms' \(did you mean 'params'\?\)"):
        spec_of("x: {{x}}\nREM MRL:parms = [{'x': 1}]\n")


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
    with pytest.raises(BatchError, match=r"conf.lua: line 1: .*cannot be evaluated"):
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
        ("# MRL:grid['my x'] = [1]", "must start with an ASCII letter"),
        ("# MRL:grid['-x'] = [1]", "must start with an ASCII letter"),
        ("# MRL:params = {'a': 1}", "list of dicts"),
        ("# MRL:params = []", "empty list"),
        ("# MRL:repeat = 0", "positive integer"),
        ("# MRL:sample = 'all'", "positive integer"),
        ("# MRL:seed = 1.5", "seed must be an integer"),
        ("# MRL:grid['x'] = [{1, 2}]", "cannot be stored in a JSON record"),
        ("# MRL:grid['x'] = [1e999]", "cannot be stored"),
        ("# MRL:grid['x'] == [1]", "not an assignment"),
        ("# MRL:import os", "not an assignment"),
        ("# MRL:grid['x'] = [a]", "the name 'a' is not known"),
        ("# MRL:grid['x'] = range", "must be a list of values"),
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
        ("shape=[1, 2],[3]", [[1, 2], [3]]),  # two values, as `1,2` is: not one [[1, 2], [3]]
        ("s='a,b',c", ["a,b", "c"]),  # a quoted comma is inside its value, as in Python
        ('s="a, b", it\'s', ["a, b", " it's"]),
        ("f=g(a,b),c", ["g(a,b)", "c"]),
    ],
)
def test_grid_values_are_split_on_commas_or_read_as_a_list(item: str, values: list[Any]) -> None:
    assert parse_grid(item) == (item.split("=")[0], values)


@pytest.mark.parametrize("item", ["opt=adam,sgd,", "opt=adam,,sgd", "opt=,"])
def test_an_empty_grid_value_from_a_stray_comma_is_an_error_not_an_extra_run(item: str) -> None:
    with pytest.raises(BatchError, match="is empty: remove the extra comma"):
        parse_grid(item)


@pytest.mark.parametrize("item", ["lr", "=1", "lr=", "my lr=1,2", "-lr=1"])
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
comments = st.sampled_from(["--", "#", "//", "%", ";", "", "REM", "c", "#####"])


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


# -- the safe subset in MRL lines (issue 11) ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("grid['x'] = range(3)", [0, 1, 2]),
        ("grid['x'] = range(10, 31, 10)", [10, 20, 30]),
        ("grid['x'] = [10**-i for i in range(1, 4)]", [0.1, 0.01, 0.001]),
        ("grid['x'] = [2**k for k in range(6, 9)]", [64, 128, 256]),
        ("grid['x'] = [1e-3 * k for k in (1, 3, 10)]", [0.001, 0.003, 0.01]),
        ("grid['x'] = [[512]*2, [1024]*3]", [[512, 512], [1024, 1024, 1024]]),
        ("grid['x'] = [dict(opt='sgd', lr=0.1)]", [{"opt": "sgd", "lr": 0.1}]),
        ("grid['x'] = logspace(-4, -1, 4)", [0.0001, 0.001, 0.01, 0.1]),
        ("grid['x'] = ['run%d' % i for i in range(2)]", ["run0", "run1"]),
    ],
)
def test_idiomatic_sweeps_the_original_ran_are_evaluated(line: str, values: list[Any]) -> None:
    assert spec_of(f"# MRL:{line}\n").grid == {"x": values}


def test_params_from_zip_and_a_filtered_comprehension_have_no_literal_equivalent_but_work() -> None:
    text = "# MRL:params = [{'lr': a, 'wd': b} for a, b in zip([0.1, 0.01], [1e-4, 1e-5])]\n# MRL:grid['bs'] = [1, 8]\n"
    assert combos_of(text) == [
        {"lr": 0.1, "wd": 1e-4, "bs": 1},
        {"lr": 0.1, "wd": 1e-4, "bs": 8},
        {"lr": 0.01, "wd": 1e-5, "bs": 1},
        {"lr": 0.01, "wd": 1e-5, "bs": 8},
    ]
    filtered = "# MRL:params = [{'lr': lr, 'bs': bs} for lr in [0.1, 1, 2] for bs in [1, 4, 8] if lr*bs < 5]\n"
    assert [(c["lr"], c["bs"]) for c in combos_of(filtered)] == [(0.1, 1), (0.1, 4), (0.1, 8), (1, 1), (1, 4), (2, 1)]


def test_a_line_reads_the_axes_of_earlier_lines() -> None:
    spec = spec_of("# MRL:grid['lr'] = [0.1, 0.2]\n# MRL:grid['wd'] = [lr / 10 for lr in grid['lr']]\n")
    assert spec.grid["wd"] == [0.01, 0.02]
    with pytest.raises(BatchError, match=r"line 1: .*grid\['lr'\] is not defined on an earlier line"):
        spec_of("# MRL:grid['wd'] = grid['lr']\n# MRL:grid['lr'] = [1]\n")


def test_a_later_line_sees_the_command_line_value_of_an_axis() -> None:
    lines = split_template("c", "# MRL:grid['lr'] = [0.1]\n# MRL:grid['wd'] = [x / 10 for x in grid['lr']]\n")
    spec = parse_spec(lines.mrl_lines, grids={"lr": [1.0, 2.0]})
    assert spec.grid == {"lr": [1.0, 2.0], "wd": [0.1, 0.2]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("np.logspace(-3, -1, 3)", "attribute access"),
        ("__import__('os').system('true')", "attribute access"),
        ("[f(x) for x in range(3)]", "'f' is not known"),
        ("lambda: 1", "lambda"),
        ("range(10**12)", "over the limit"),
        ("[0] * 10**10", "over 1,000,000 elements"),
    ],
)
def test_anything_outside_the_subset_names_the_line_and_shows_the_literal_form(value: str, message: str) -> None:
    with pytest.raises(BatchError, match=message) as e:
        spec_of(f"x\n# MRL:grid['lr'] = {value}\n")
    text = str(e.value)
    assert text.startswith("conf.lua: line 2: the value ") and "like grid['lr'] = [0.1, 0.01]" in text
    assert "\n" not in text


def test_an_import_line_is_not_an_assignment() -> None:
    with pytest.raises(BatchError, match="line 1: .*not an assignment"):
        spec_of("# MRL:import os\n")


# -- names, reserved names ---------------------------------------------------------------


def test_param_names_may_contain_dots_and_dashes() -> None:
    spec = spec_of("# MRL:grid['model.dropout'] = [0.1, 0.2]\n# MRL:params = [{'learning-rate': 1}]\n")
    assert expand(spec).combos == [
        {"learning-rate": 1, "model.dropout": 0.1},
        {"learning-rate": 1, "model.dropout": 0.2},
    ]
    assert parse_grid("model.dropout=0.1,0.2") == ("model.dropout", [0.1, 0.2])
    assert parse_set("learning-rate=3") == ("learning-rate", 3)


RESERVED = ["resource", "expId", "subExpId", "subExpNum", "expDir", "subExpDir", "codeDir", "params"]


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize(
    "form",
    [
        "# MRL:grid['{n}'] = [1]",
        "# MRL:params = [{{'{n}': 1}}]",
        "# MRL:defaults = {{'{n}': 1}}",
        "# MRL:grids = [{{'{n}': [1]}}]",
    ],
)
def test_every_reserved_variable_name_is_refused_by_name(name: str, form: str) -> None:
    with pytest.raises(BatchError, match=f"line 1: param '{name}' has the name of a variable mrl sets"):
        spec_of(form.format(n=name) + "\n")


@pytest.mark.parametrize("name", RESERVED)
def test_every_reserved_variable_name_is_refused_on_the_command_line(name: str) -> None:
    with pytest.raises(BatchError, match=f"param '{name}' has the name of a variable mrl sets"):
        parse_set(f"{name}=1")
    with pytest.raises(BatchError, match=f"param '{name}' has the name"):
        parse_grid(f"{name}=1,2")


def test_the_reserved_names_include_every_variable_the_run_command_gets() -> None:
    from metarunlog.render import BUILTINS

    assert set(BUILTINS) | {"resource", "params"} <= set(batch.reserved_names())


def test_set_repeat_points_to_the_repeat_option() -> None:
    with pytest.raises(BatchError, match="use --repeat N"):
        parse_set("repeat=5")


@pytest.mark.parametrize(
    ("item", "values"),
    [
        ("lr=range(3)", [0, 1, 2]),
        ("lr=logspace(-3, -1, 3)", [0.001, 0.01, 0.1]),
        ("bs=[2**k for k in range(6, 8)]", [64, 128]),
    ],
)
def test_grid_option_values_may_be_expressions(item: str, values: list[Any]) -> None:
    assert parse_grid(item)[1] == values


def test_a_bad_grid_option_expression_is_an_error_not_a_string() -> None:
    with pytest.raises(BatchError, match="--grid lr: cannot evaluate"):
        parse_grid("lr=range(10**12)")


# -- defaults and several grids (issue 12) -----------------------------------------------


def test_the_mlrunner_readme_example_gives_five_sub_experiments() -> None:
    text = (
        "# MRL:defaults = {'data': 'iwslt14', 'norm': 'batch', 'moment': 0.1, 'early_stop': False}\n"
        "# MRL:grids = [{'norm': ['new', 'batch'], 'moment': [0.1, 0.05]},"
        " {'norm': ['batch'], 'early_stop': [True, False]}]\n"
    )
    exp = expand(spec_of(text))
    d = {"data": "iwslt14"}
    assert exp.combos == [
        {**d, "norm": "new", "moment": 0.1, "early_stop": False},
        {**d, "norm": "new", "moment": 0.05, "early_stop": False},
        {**d, "norm": "batch", "moment": 0.1, "early_stop": False},
        {**d, "norm": "batch", "moment": 0.05, "early_stop": False},
        {**d, "norm": "batch", "moment": 0.1, "early_stop": True},
    ]
    assert exp.total == 6 and exp.duplicates == 1


def test_defaults_are_merged_under_params_and_grid() -> None:
    text = "# MRL:defaults = {'a': 0, 'b': 0, 'c': 0}\n# MRL:params = [{'b': 1}]\n# MRL:grid['c'] = [2]\n"
    assert combos_of(text) == [{"a": 0, "b": 1, "c": 2}]


def test_each_of_several_grids_is_crossed_with_params_and_the_common_axes() -> None:
    text = (
        "# MRL:params = [{'opt': 'sgd'}, {'opt': 'adam'}]\n"
        "# MRL:grid['seed'] = [0, 1]\n"
        "# MRL:grids = [{'lr': [1]}, {'wd': [5]}]\n"
    )
    combos = combos_of(text)
    assert len(combos) == 8
    assert combos[:2] == [{"opt": "sgd", "seed": 0, "lr": 1}, {"opt": "sgd", "seed": 1, "lr": 1}]
    assert combos[-1] == {"opt": "adam", "seed": 1, "wd": 5}


def test_an_axis_both_common_and_in_grids_is_an_error() -> None:
    with pytest.raises(BatchError, match=r"grid\['a'\] is also an axis of grids"):
        combos_of("# MRL:grid['a'] = [1]\n# MRL:grids = [{'a': [2]}]\n")


def test_command_line_overrides_reach_into_grids() -> None:
    spec = spec_of("# MRL:grids = [{'a': [1, 2], 'b': [0]}, {'c': [3, 4]}]\n")
    batch.apply_overrides(spec, [("b", 9)], [("c", [7])])
    assert combos_of_spec(spec) == [{"a": 1, "b": 9}, {"a": 2, "b": 9}, {"c": 7, "b": 9}]


def combos_of_spec(spec: BatchSpec) -> list[dict[str, Any]]:
    return expand(spec).combos


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("# MRL:grids = {'a': [1]}", "grids must be a list of dicts"),
        ("# MRL:grids = []", "empty list"),
        ("# MRL:grids = [{'a': 1}]", r"grids\[0\]\['a'\] must be a list"),
        ("# MRL:grids = [{'a': []}]", "is empty"),
        ("# MRL:defaults = [1]", "defaults must be a dict"),
        ("# MRL:defaults = {1: 2}", "keys must be strings"),
        ("# MRL:grid['a'] = {1, 2}", "a set, which has no order"),
    ],
)
def test_bad_defaults_and_grids_are_errors_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(BatchError, match=message) as e:
        spec_of(line + "\n")
    assert str(e.value).startswith("conf.lua: line 1: ")


# -- sampling without building the product (issue 10, 16) ---------------------------------


def huge_grid(side: int, axes: int = 5) -> str:
    return "".join(f"# MRL:grid['p{a}'] = range({side})\n" for a in range(axes))


def test_sample_of_a_40_to_the_5_grid_never_builds_the_product() -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        exp = expand(spec_of(huge_grid(40) + "# MRL:sample = 5\n# MRL:seed = 1\n"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(exp.combos) == 5 and exp.total == 40**5
    assert peak < 5_000_000  # the 10^8 combinations would be tens of GB
    again = expand(spec_of(huge_grid(40) + "# MRL:sample = 5\n# MRL:seed = 1\n")).combos
    assert again == exp.combos
    order = [sum(c[f"p{a}"] * 40 ** (4 - a) for a in range(5)) for c in exp.combos]
    assert order == sorted(order)  # in grid order


def test_a_larger_sample_of_a_huge_grid_keeps_the_smaller_ones_picks() -> None:
    small = expand(spec_of(huge_grid(30) + "# MRL:sample = 4\n")).combos
    large = expand(spec_of(huge_grid(30) + "# MRL:sample = 40\n")).combos
    assert all(c in large for c in small)


def test_sampling_a_grid_with_duplicates_still_gives_distinct_combinations() -> None:
    exp = expand(spec_of("# MRL:grid['a'] = [1] * 50 + [2, 3]\n# MRL:sample = 3\n"))
    assert sorted(c["a"] for c in exp.combos) == [1, 2, 3]
    short = expand(spec_of("# MRL:grid['a'] = [1] * 50 + [2]\n# MRL:sample = 3\n"))
    assert sorted(c["a"] for c in short.combos) == [1, 2] and short.sample_short


def test_the_lazy_permutation_is_a_permutation_and_prefix_stable() -> None:
    for n in (1, 2, 7, 100):
        assert sorted(batch.draw(n, n, 3)) == list(range(n))
        assert batch.draw(n, n // 2, 3) == batch.draw(n, n, 3)[: n // 2]


def test_a_huge_batch_without_sample_is_an_error_not_a_memory_error() -> None:
    with pytest.raises(BatchError, match="would make 102,400,000 sub-experiments .*MRL:sample"):
        expand(spec_of(huge_grid(40)))


def test_a_grid_larger_than_an_index_can_count_is_sampled_or_refused_not_a_crash() -> None:
    # 10^5 values on 5 axes: 10^25 combinations, past what len() can return (sys.maxsize).
    exp = expand(spec_of(huge_grid(10**5) + "# MRL:sample = 5\n"))
    assert len(exp.combos) == 5 and exp.total == 10**25
    with pytest.raises(BatchError, match="would make 10,000,000,000,000,000,000,000,000 sub-experiments"):
        expand(spec_of(huge_grid(10**5)))


def test_a_sample_bigger_than_the_limit_is_refused_before_drawing_it() -> None:
    # Before: `MRL:sample = 10**8` of 40^5 (a typo of 10**3) drew for minutes past 1.4 GB,
    # though the same grid without a sample is refused at once by the 1,000,000 limit.
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(BatchError, match=r"MRL:sample = 100,000,000 would make 100,000,000 sub-experiments"):
            expand(spec_of(huge_grid(40) + "# MRL:sample = 10**8\n"))
        with pytest.raises(BatchError, match=r"would make 4,000,000 sub-experiments"):
            expand(spec_of(huge_grid(40) + "# MRL:sample = 10**6\n# MRL:repeat = 4\n"))
        assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    finally:
        tracemalloc.stop()
    assert len(expand(spec_of(huge_grid(40) + "# MRL:sample = 7\n# MRL:repeat = 2\n")).combos) == 14


def test_the_jinja_names_no_param_may_take_are_every_global_of_a_jinja_environment() -> None:
    import jinja2

    from metarunlog.render import JINJA_NAMES

    assert set(jinja2.Environment().globals) <= set(JINJA_NAMES)
    assert {"loop", "self"} <= set(JINJA_NAMES)


@pytest.mark.parametrize("name", ["range", "loop", "dict", "namespace", "cycler", "joiner", "lipsum", "self"])
def test_a_param_named_like_a_jinja_global_or_loop_variable_is_refused_by_name(name: str) -> None:
    said = f"param '{name}' has the name of one Jinja gives every template"
    with pytest.raises(BatchError, match=f"line 1: {said}"):
        spec_of(f"# MRL:grid['{name}'] = [1, 2]\n")
    with pytest.raises(BatchError, match=said):
        parse_set(f"{name}=1")
