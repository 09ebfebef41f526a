"""Colours and dashes for the report's plots: categorical and colour-blind safe.

Up to 8 colours: Okabe & Ito's palette (blue first, yellow and black last, as they are the
hardest to see as thin lines on white); 9 or 10: Paul Tol's "muted" scheme plus its pale
grey. Within one colour, combinations differ by dash (past 10, colours come round, dashed).
"""

from __future__ import annotations

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
TOL_MUTED = (
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#888888",
)
N_COLORS = len(TOL_MUTED)  # the most distinct colours; more keys reuse them (with other dashes)
DASHES = ("solid", "dashed", "dotted", "dotdash", "dashdot")
# A sequential palette for heatmaps: viridis, readable in grey and by colour-blind readers.
SEQUENTIAL = "Viridis256"


def categorical(n: int) -> list[str]:
    """n distinct colours (n > 10 cycles through Tol's 10)."""
    if n <= len(OKABE_ITO):
        return list(OKABE_ITO[:n])
    return [TOL_MUTED[i % len(TOL_MUTED)] for i in range(n)]


def dash(i: int) -> str:
    return DASHES[i % len(DASHES)]
