"""metarunlog/report/palette.py: categorical colours (Okabe & Ito up to 8, Tol's muted for 9 or
10, cycling past), dashes, and the sequential palette's name, as bokeh takes them."""

from __future__ import annotations

import re

import pytest

from metarunlog.report import palette


@pytest.mark.parametrize("n", range(0, 9))
def test_up_to_eight_keys_get_okabe_and_ito_s_colours_in_order(n: int) -> None:
    assert palette.categorical(n) == list(palette.OKABE_ITO[:n])


def test_yellow_and_black_are_used_only_from_the_seventh_key_on() -> None:
    # the hardest to see as thin lines on white: a plot of six combinations never needs them
    assert not {"#F0E442", "#000000"} & set(palette.categorical(6))


@pytest.mark.parametrize("n", [9, 10])
def test_nine_or_ten_keys_get_tol_s_muted_colours_all_distinct(n: int) -> None:
    colors = palette.categorical(n)
    assert colors == list(palette.TOL_MUTED[:n]) and len(set(colors)) == n


def test_past_ten_keys_the_colours_come_round_in_the_same_order() -> None:
    colors = palette.categorical(25)
    assert len(colors) == 25 and len(set(colors)) == palette.N_COLORS == 10
    assert all(colors[i] == colors[i % 10] for i in range(25))


def test_dashes_cycle_and_the_first_is_solid() -> None:
    assert [palette.dash(i) for i in range(7)] == ["solid", "dashed", "dotted", "dotdash", "dashdot", "solid", "dashed"]


def test_every_colour_is_a_hex_colour_bokeh_draws_and_every_dash_a_bokeh_dash() -> None:
    bokeh = pytest.importorskip("bokeh.plotting")
    fig = bokeh.figure()
    for i, color in enumerate([*palette.OKABE_ITO, *palette.TOL_MUTED]):
        assert re.fullmatch(r"#[0-9A-F]{6}", color)
        fig.line([0, 1], [i, i], line_color=color, line_dash=palette.dash(i))  # a ValueError for a bad one


def test_the_sequential_palette_is_a_bokeh_palette_of_256_colours() -> None:
    palettes = pytest.importorskip("bokeh.palettes")
    assert len(getattr(palettes, palette.SEQUENTIAL)) == 256
