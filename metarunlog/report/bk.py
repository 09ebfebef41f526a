"""Lean bokeh building blocks for the report's figures.

`figure.line(...)` and friends make five models per renderer (the glyph, its selection,
non-selection, hover and muted copies) and validate every keyword; a report of 1,000 runs
draws a few hundred renderers, and that alone cost seconds. `add_glyph` makes one glyph
and its renderer (bokeh's JS derives the other looks itself), and `Legend` collects the
entries of a figure, one per label, attached once at the end.

Every model costs about half a millisecond to make, put in a document and serialise, so
the ones that hold no state are shared within a figure: the views' "all rows" filter,
the sources' selection policy and (where nothing can select) their empty selection; each
source and view would otherwise bring its own.
"""

from __future__ import annotations

from typing import Any

# Tools that never change a source's selection (the report's figures have only these).
NO_SELECTION = frozenset({"PanTool", "WheelZoomTool", "BoxZoomTool", "ResetTool", "SaveTool", "HoverTool"})


def add_glyph(
    fig: Any,
    glyph: Any,
    source: Any,
    name: str = "",
    visible: bool = True,
    hover: Any = None,
    like: Any = None,
    rows: Any = None,
) -> Any:
    """Add `glyph` drawn from `source` to `fig`; the renderer. `like`: a renderer of the
    same source whose view this one shares (two models fewer); `rows`: only these rows of
    the source (an IndexFilter view: several renderers can draw from one source)."""
    from bokeh.models import CDSView, GlyphRenderer, IndexFilter  # type: ignore[attr-defined]

    if like is not None and like.data_source is source:
        view = like.view
    else:
        view = CDSView(filter=IndexFilter(list(rows)) if rows is not None else _stateless(fig)[1])  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {"hover_glyph": hover} if hover is not None else {}
    r = GlyphRenderer(data_source=source, glyph=glyph, name=name, visible=visible, view=view, **kwargs)
    fig.renderers.append(r)
    return r


def source(data: dict[str, Any], fig: Any) -> Any:
    """A ColumnDataSource for `fig`; float64 arrays go as float32 (half the bytes to
    embed; a plot needs no more than 7 digits)."""
    from bokeh.models import ColumnDataSource

    policy, _, selected = _stateless(fig)
    kwargs = {"selected": selected} if selected is not None else {}
    return ColumnDataSource({k: _f32(v) for k, v in data.items()}, selection_policy=policy, **kwargs)


def _stateless(fig: Any) -> tuple[Any, Any, Any]:
    """The figure's shared (selection policy, all-rows filter, selection): those of the
    renderers added before, else new ones. The first two hold no state; a view's computed
    indices do (views stay one per source). The selection is shared only while the
    figure's tools are ones that never select (NO_SELECTION; hover uses each source's own
    `inspected`): it stays empty, so one serves every source. Add no selecting tool to a
    figure after its sources are made."""
    from bokeh.models import AllIndices, GlyphRenderer, Selection, UnionRenderers  # type: ignore[attr-defined]

    ours = [r for r in fig.renderers if isinstance(r, GlyphRenderer)]
    policy = next((r.data_source.selection_policy for r in ours), None) or UnionRenderers()
    every = next((r.view.filter for r in ours if isinstance(r.view.filter, AllIndices)), None) or AllIndices()
    if not all(type(t).__name__ in NO_SELECTION for t in fig.tools):
        return policy, every, None
    return policy, every, next((r.data_source.selected for r in ours), None) or Selection()


def _f32(v: Any) -> Any:
    dtype = getattr(v, "dtype", None)
    return v.astype("float32") if dtype is not None and dtype.kind == "f" and dtype.itemsize > 4 else v


class Legend:
    """A figure's legend entries in order; renderers with the same label share an entry
    (clicking it hides or shows them all)."""

    def __init__(self) -> None:
        self.items: dict[str, list[Any]] = {}

    def add(self, label: str, *renderers: Any) -> None:
        self.items.setdefault(label, []).extend(renderers)

    def attach(self, fig: Any) -> None:
        from bokeh.models import Legend as BokehLegend  # type: ignore[attr-defined]
        from bokeh.models import LegendItem  # type: ignore[attr-defined]

        if not self.items:
            return
        items = [LegendItem(label=label, renderers=rs) for label, rs in self.items.items()]
        fig.add_layout(BokehLegend(items=items, click_policy="hide", label_text_font_size="8pt"), "right")


def hover(fig: Any, renderers: list[Any], tooltips: list[tuple[str, str]], formatters: Any = None) -> None:
    """One hover tool for these renderers (not one per renderer: fewer models)."""
    from bokeh.models import HoverTool

    if renderers:
        fig.add_tools(HoverTool(renderers=renderers, tooltips=tooltips, formatters=formatters or {}))
