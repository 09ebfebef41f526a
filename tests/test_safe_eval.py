"""metarunlog.safe_eval: the safe subset of Python MRL lines are evaluated in, never exec/eval."""

from __future__ import annotations

import builtins
import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarunlog import safe_eval
from metarunlog.safe_eval import EvalError, evaluate


@pytest.mark.parametrize(
    ("source", "value"),
    [
        # the idioms of issue 11, as the original (exec) gave them
        ("range(3)", [0, 1, 2]),
        ("range(10, 31, 10)", [10, 20, 30]),
        ("[10**-i for i in range(1, 4)]", [0.1, 0.01, 0.001]),
        ("[2**k for k in range(6, 9)]", [64, 128, 256]),
        ("[1e-3 * k for k in (1, 3, 10)]", [0.001, 0.003, 0.01]),
        ("[[512]*2, [1024]*3]", [[512, 512], [1024, 1024, 1024]]),
        ("dict(opt='sgd', lr=0.1)", {"opt": "sgd", "lr": 0.1}),
        (
            "[{'lr': a, 'wd': b} for a, b in zip([0.1, 0.01], [1e-4, 1e-5])]",
            [{"lr": 0.1, "wd": 1e-4}, {"lr": 0.01, "wd": 1e-5}],
        ),
        (
            "[{'lr': lr, 'bs': bs} for lr in [0.1, 1, 2] for bs in [1, 4, 8] if lr*bs < 5]",
            [{"lr": lr, "bs": bs} for lr in [0.1, 1, 2] for bs in [1, 4, 8] if lr * bs < 5],
        ),
        # the rest of the subset
        ("logspace(-3, -1, 3)", [0.001, 0.01, 0.1]),
        ("logspace(1, 3, 3, base=2)", [2.0, 4.0, 8.0]),
        ("linspace(0, 1, 5)", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("linspace(0, 1, 11)[3]", 0.3),
        ("linspace(2, 3, 1)", [2.0]),
        ("'%s_%03d' % ('run', 7)", "run_007"),
        ("'%(a)s' % {'a': 1}", "1"),
        ("'{}-{:.2f}'.format('x', 1/3)", "x-0.33"),
        ("'{0[1]}'.format('ab')", "b"),
        ("f'{3:03d}-{\"a\"!r}'", "003-'a'"),
        ("format(0.5, '.1%')", "50.0%"),
        ("[len('abc'), min(3, 1), max([2, 5]), sum(range(4)), abs(-2), round(2.567, 1)]", [3, 1, 5, 6, 2, 2.6]),
        ("[int('7'), float(1), str(2), bool(0), list((1, 2)), tuple([3])]", [7, 1.0, "2", False, [1, 2], (3,)]),
        ("sum([[1], [2, 3]], [])", [1, 2, 3]),
        ("sum(x * x for x in range(4))", 14),
        ("sorted({3, 1, 2}, reverse=True)", [3, 2, 1]),
        ("list(enumerate('ab', start=1))", [(1, "a"), (2, "b")]),
        ("{k: v for k, v in zip('ab', [1, 2]) if v > 1}", {"b": 2}),
        ("{x % 3 for x in range(10)}", {0, 1, 2}),
        ("[*range(2), *[5]]", [0, 1, 5]),
        ("{**{'a': 1}, 'b': 2}", {"a": 1, "b": 2}),
        ("[x if x > 1 else -x for x in range(3)]", [0, -1, 2]),
        ("[1, 2, 3][1:]", [2, 3]),
        ("1 < 2 <= 2 and not (3 in [1, 2]) or None", True),
        ("'a' in 'cat' and None is None", True),
        ("[x for x in [1, 2] for x in [x, x * 10]]", [1, 10, 2, 20]),
        ("7 // 2 + 7 % 2 - 2 ** -1", 3.5),
        ("any([0, 1]) and all([])", True),
    ],
)
def test_the_safe_subset_evaluates_as_python_does(source: str, value: Any) -> None:
    assert evaluate(source) == value


def test_earlier_axes_are_read_through_the_names_given() -> None:
    names = {"grid": {"lr": [0.1, 0.01]}}
    assert evaluate("[lr * 10 for lr in grid['lr']]", names) == [1.0, 0.1]
    with pytest.raises(EvalError, match=r"grid\['wd'\] is not defined on an earlier line"):
        evaluate("grid['wd']", names)


def test_comprehension_variables_do_not_leak_out_of_their_comprehension() -> None:
    with pytest.raises(EvalError, match="'i' is not known"):
        evaluate("[[i for i in range(2)], i]")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("os.system('true')", "attribute access"),
        ("(1).real", "attribute access"),
        ("[].append", "attribute access"),
        ("'{0.__class__}'.format(1)", "attribute access in a format field"),
        ("'{0.__class__.__mro__}'.format(1)", "attribute access in a format field"),
        ("open('/etc/passwd')", "'open' is not known"),
        ("eval('1')", "'eval' is not known"),
        ("exec('1')", "'exec' is not known"),
        ("getattr(1, 'real')", "'getattr' is not known"),
        ("type(1)", "'type' is not known"),
        ("np.logspace(-3, -1, 3)", "attribute access"),
        ("__builtins__", "'__builtins__' is not allowed"),
        ("[__x for __x in range(2)]", "'__x' is not allowed"),
        ("(lambda: 1)()", "lambda"),
        ("(x := 3)", "':='"),
        ("1 << 3", "'<<'"),
        ("~1", "'~'"),
        ("b'x'", "bytes"),
        ("1j", "complex"),
        ("grid('a')", "not a function"),
        ("(len)(1, 2)", "len()"),
        ("{[1]: 2}", "use a tuple"),
        ("1 / 0", "division by zero"),
        ("'a' < 1", "cannot compare"),
        ("[i for i in 3]", "not a list"),
        ("[a for a, b in [(1, 2, 3)]]", "cannot unpack"),
        ("max([])", "max()"),
        ("int('9' * 5000)", "int()"),
        ("round(5, -10**9)", "ndigits"),
        ("range(1.5)", "integers"),
        ("linspace(0, 1, 0)", "positive integer"),
        ("logspace(0, 400, 2)", "out of range"),
        ("1e308 ** 2", r"1e\+308 \*\* 2: numerical result out of range \(beyond a float"),
    ],
)
def test_everything_else_is_an_error_naming_the_construct(source: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        evaluate(source, {"grid": {}})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("range(10**12)", "range of 1,000,000,000,000 values is over the limit"),
        ("list(range(10**12))", "over the limit"),
        ("[0] * 10**10", "makes over 1,000,000 elements"),
        ("10**10 * [0]", "makes over 1,000,000 elements"),
        ("[[0] * 1000] * 1001", "makes over 1,000,000 elements"),
        ("[[[0] * 100] * 100] * 1000", "makes over 1,000,000 elements"),
        ("'a' * 10**12", "makes a string of over"),
        ("10 ** 10 ** 10", "too large"),
        ("2 ** (2 ** 20)", "too large"),
        ("(2 ** 4000) * (2 ** 4000)", "bits is over the limit"),
        ("2.0 ** 5000", "out of range"),
        ("'%1000000000d' % 1", "width or precision"),
        ("'%*d' % (10**9, 1)", "'\\*' widths"),
        ("'{:1000000000}'.format(1)", "width or precision"),
        ("'{:{}}'.format(1, 10**9)", "width or precision"),
        ("f'{1:1000000000}'", "width or precision"),
        ("format(1, '1000000000')", "width or precision"),
        ("linspace(0, 1, 10**9)", "over the limit"),
        ("[x for x in range(999999) for y in range(3)]", "too much work"),
    ],
)
def test_budgets_turn_a_typo_into_an_error_instead_of_a_hang(source: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        evaluate(source)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(EvalError, match="nested"):
        evaluate("-" * 500 + "1")
    with pytest.raises(EvalError, match="nested"):
        evaluate("[" * 150 + "]" * 150)


def test_exec_and_eval_are_never_called(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("exec/eval called")

    for name in ("exec", "eval"):
        monkeypatch.setattr(builtins, name, refuse)
    assert evaluate("[2**k for k in range(3)]") == [1, 2, 4]
    marker = tmp_path / "pwned"
    with pytest.raises(EvalError):
        evaluate(f"__import__('os').system('touch {marker}')")
    assert not marker.exists()


# Any expression built from this grammar is either evaluated or refused with EvalError:
# never another exception, never a hang.
atoms = st.sampled_from(
    ["0", "1", "-2", "2.5", "'ab'", "True", "None", "[1, 2]", "(3,)", "{'a': 1}", "range(3)", "x", "grid"]
)


@st.composite
def expressions(draw: Any, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(atoms)
    a, b = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    form = draw(
        st.sampled_from(
            [
                "({a}) + ({b})",
                "({a}) * ({b})",
                "({a}) ** ({b})",
                "({a}) % ({b})",
                "({a}) / ({b})",
                "({a}) < ({b})",
                "({a}) and ({b})",
                "[{a}, {b}]",
                "{{{a}: {b}}}",
                "({a})[{b}]",
                "[x for x in ({a})]",
                "[x for x in ({a}) if ({b})]",
                "len({a})",
                "max({a})",
                "sum({a})",
                "str({a})",
                "list({a})",
                "dict({a})",
                "zip({a}, {b})",
                "({a}).format({b})",
                "range({a})",
                "round({a}, {b})",
                "logspace(0, {a}, 3)",
                "'%s' % ({a})",
            ]
        )
    )
    return form.format(a=a, b=b)


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_any_expression_is_evaluated_or_refused_with_one_error(source: str) -> None:
    with contextlib.suppress(EvalError):
        evaluate(source, {"grid": {"a": [1]}})


def test_the_budgets_are_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "makebatch.md").read_text()
    for value in (safe_eval.MAX_ELEMENTS, safe_eval.MAX_STEPS, safe_eval.MAX_INT_BITS, safe_eval.MAX_STR):
        assert f"{value:,}" in doc


def test_a_set_is_iterated_in_sorted_order_so_a_batch_is_the_same_in_every_process() -> None:
    import subprocess
    import sys

    code = "from metarunlog.safe_eval import evaluate; print(evaluate(\"[x for x in {'b', 'a', 'c', 'd'}]\"))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        ).stdout
        for seed in range(4)
    }
    assert outs == {"['a', 'b', 'c', 'd']\n"}
    assert evaluate("list({3, 1, 2})") == [1, 2, 3]
