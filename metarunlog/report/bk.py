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

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

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
    import numpy as np

    dtype = getattr(v, "dtype", None)
    if dtype is None or dtype.kind != "f" or dtype.itemsize <= 4:
        return v
    with np.errstate(over="ignore"):  # beyond float32's 3.4e38 a point is drawn at inf: no warning line
        return v.astype("float32")


LEGEND_ROW_PX = 23  # a legend entry at 8pt: bokeh's 20 px glyph plus its 3 px spacing
LEGEND_PAD_PX = 60  # the legend's padding and margins, and the plot's title and toolbar


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
        # bokeh's legend neither scrolls nor wraps: a taller figure shows every entry
        fig.height = max(fig.height or 0, LEGEND_ROW_PX * len(items) + LEGEND_PAD_PX)


def hover(fig: Any, renderers: list[Any], tooltips: list[tuple[str, str]], formatters: Any = None) -> None:
    """One hover tool for these renderers (not one per renderer: fewer models)."""
    from bokeh.models import HoverTool

    if renderers:
        fig.add_tools(HoverTool(renderers=renderers, tooltips=tooltips, formatters=formatters or {}))


# -- bokeh's per-model cost ---------------------------------------------------------------------
#
# Two loops inside bokeh cost most of a report's time on ~800 models. `HasProps.__init__`
# computes, copies and validates the default of every list/dict property a model has
# (tags, js_event_callbacks, ... about a dozen a model) although an untouched one is never
# serialised; and `to_serializable` asks every property for its value, defaults included,
# before dropping those that were never set (bokeh's own TODO there). While `lean()` is
# on, the first leaves those defaults to be made when first read (as bokeh does for any
# default it has not made yet), and the second only reads the properties it will
# serialise. The page is byte for byte the same (tests/report/test_bk.py compares the
# JSON of a whole report with and without); with another bokeh than the ones checked,
# nothing is changed.
LEAN_BOKEH = ((3, 9), (3, 10))  # the bokeh versions these replacements were checked against (3.9.x);
# a newer bokeh takes its own (slower, always right) path until it is checked too

_lean_depth = 0
_plans: dict[type, Plan] = {}


def lean(fn: F) -> F:
    """Decorator: run `fn` with `lean_models()` on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lean_models():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def lean_models() -> Iterator[None]:
    """Bokeh models are made and serialised without the work that changes nothing in
    the page (see above); reentrant, undone on leaving."""
    global _lean_depth
    from bokeh.core.has_props import HasProps

    if _lean_depth or not _lean_applies():
        _lean_depth += bool(_lean_depth)
        try:
            yield
        finally:
            _lean_depth -= bool(_lean_depth)
        return
    from bokeh.model import util

    init, values, visit = HasProps.__init__, HasProps.properties_with_values, util.visit_immediate_value_references
    HasProps.__init__, HasProps.properties_with_values = _lean_init, _lean_values  # type: ignore[method-assign]
    util.visit_immediate_value_references = _lean_visit
    _lean_depth = 1
    try:
        yield
    finally:
        HasProps.__init__, HasProps.properties_with_values = init, values  # type: ignore[method-assign]
        util.visit_immediate_value_references = visit
        _lean_depth = 0


def _lean_applies() -> bool:
    import bokeh

    try:
        version = tuple(int(p) for p in bokeh.__version__.split(".")[:2])
    except ValueError:  # a development version
        return False
    return LEAN_BOKEH[0] <= version < LEAN_BOKEH[1]


@dataclass
class Plan:
    """What `lean()` needs to know of a model class."""

    eager: list[tuple[str, Any]]  # (name, descriptor): defaults `__init__` makes at once
    required: list[str]  # properties without a default (a value must be given)
    refs: list[str]  # properties that may hold models, in bokeh's order
    empty: frozenset[str]  # properties whose default is an empty list, set or dict


def _plan(cls: type) -> Plan:
    """Per model class: the properties whose default `__init__` makes at once (what bokeh
    calls unstable defaults: new models, callables' results), leaving out plain list, set
    and dict defaults; the ones that need a value; those that may hold models."""
    plan = _plans.get(cls)
    if plan is None:
        from bokeh.core.property.container import Dict, List, Set
        from bokeh.core.property.singletons import Undefined

        overrides = cls._overridden_defaults()  # type: ignore[attr-defined]
        plan = Plan([], [], list(cls.properties_with_refs()), frozenset())  # type: ignore[attr-defined]
        empty = set()
        for name in cls.properties(_with_props=True):  # type: ignore[attr-defined]
            desc = cls.lookup(name)  # type: ignore[attr-defined]
            prop = getattr(desc, "property", None)
            default = overrides.get(name, getattr(prop, "_default", None))
            if default is Undefined:
                plan.required.append(name)
            if not desc.has_unstable_default(cls):
                continue
            if not (isinstance(prop, (List, Set, Dict)) and type(default) in (list, set, dict)):
                plan.eager.append((name, desc))
            elif not default:
                empty.add(name)
        plan.empty = frozenset(empty)
        _plans[cls] = plan
    return plan


def _lean_init(self: Any, **properties: Any) -> None:
    """`HasProps.__init__` (bokeh 3.9) without making plain container defaults."""
    from bokeh.core.has_props import HasProps
    from bokeh.core.property.singletons import Intrinsic, Undefined

    super(HasProps, self).__init__()
    self._property_values = {}
    self._unstable_default_values = {}
    self._unstable_themed_values = {}
    for name, value in properties.items():
        if value is Undefined or value is Intrinsic:
            continue
        setattr(self, name, value)
    for name, desc in _plan(type(self)).eager:
        if name not in properties:
            desc._get(self)  # fills in `_unstable_default_values`
    self._initialized = True


def _lean_values(self: Any, *, include_defaults: bool = True, include_undefined: bool = False) -> dict[str, Any]:
    """`HasProps.properties_with_values` reading only the values it returns: those set, made
    defaults and themed ones. A required property without a value takes bokeh's path (and
    its error)."""
    from bokeh.core.has_props import HasProps
    from bokeh.core.property.wrappers import PropertyValueContainer

    cls = type(self)
    if include_defaults or include_undefined or any(n not in self._property_values for n in _plan(cls).required):
        return HasProps.query_properties_with_values(
            self, lambda prop: prop.serialized, include_defaults=include_defaults, include_undefined=include_undefined
        )
    themed = set(self.themed_values() or ())
    made = self._unstable_default_values
    chosen = self._property_values.keys() | made.keys() | themed
    out = {}
    for key in cls.properties(_with_props=True):  # bokeh's order
        if key not in chosen:
            continue
        desc = cls.lookup(key)
        if not desc.serialized:
            continue
        value = desc.get_value(self)
        if key not in themed and key in made and isinstance(value, PropertyValueContainer):
            continue  # an untouched default: bokeh leaves it out too
        out[key] = value
    return out


def _lean_visit(value: Any, visitor: Callable[[Any], None]) -> None:
    """`bokeh.model.util.visit_immediate_value_references` without making the empty
    container defaults that were never read (they refer to no model)."""
    from bokeh.core.has_props import HasProps
    from bokeh.model.util import visit_value_and_its_immediate_references as visit

    if not isinstance(value, HasProps):
        visit(value, visitor)
        return
    plan = _plan(type(value))
    made = value._property_values.keys() | value._unstable_default_values.keys() | (value.themed_values() or {}).keys()
    for attr in plan.refs:
        if attr not in plan.empty or attr in made:
            visit(getattr(value, attr), visitor)
