"""What a report holds between reading the experiment and writing the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from metarunlog.experiment import Experiment
from metarunlog.report.decide import Axes, Primary
from metarunlog.results import SubResult, Table


@dataclass
class Piece:
    """One output of a user function: markup, a bokeh model (by key), or an error box."""

    kind: str  # "html" | "bokeh" | "error"
    header: str | None = None
    html: Markup = Markup("")
    key: str = ""
    error: str = ""
    detail: str = ""


@dataclass
class FunctionOutput:
    name: str
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class SubSection:
    res: SubResult
    log_tail: list[str]
    functions: list[FunctionOutput] = field(default_factory=list)


@dataclass
class Plot:
    metric: str
    key: str
    lines: int


@dataclass
class Report:
    """Everything the page needs: the data read, what the user's functions returned, and
    each section's context (`contexts`, filled by `build_report` from the registry)."""

    exp: Experiment
    project_name: str
    table: Table
    subs: list[SubSection]
    plots: list[Plot] = field(default_factory=list)
    overview: list[FunctionOutput] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)  # key -> bokeh model
    goals: dict[str, str] = field(default_factory=dict)  # metric column -> "min" | "max"
    basis: str = ""  # where the primary metric and its goal came from (`decide.basis`)
    varying: list[str] = field(default_factory=list)  # the params that differ between runs
    axes: Axes = field(default_factory=lambda: Axes([], [], []))  # factors, repeat axes, combinations
    primary: Primary | None = None  # the metric the summary and effects rank runs by
    warnings: list[str] = field(default_factory=list)  # printed as `mrl: warning:`, shown in the summary
    # those of `warnings` already printed as they arose (the readers', through the logger)
    logged: list[str] = field(default_factory=list)
    refresh: float | None = None  # seconds: the page reloads itself (`mrl analyze --watch`) while runs are active
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)  # section id -> its variables

    def add_model(self, model: Any, prefix: str = "model") -> str:
        """Keep a bokeh model for the page; its key, for `bokeh_divs[key]` in a template.
        Anything else is a TypeError here, where its caller (a section, a user function) is
        named, not later where the page is embedded."""
        from bokeh.model import Model

        if not isinstance(model, Model):
            raise TypeError(f"expected a bokeh model (figure, layout...), got {type(model).__name__}")
        n = sum(k.startswith(prefix) for k in self.models)
        while f"{prefix}{n}" in self.models:
            n += 1
        key = f"{prefix}{n}"
        self.models[key] = model
        return key
