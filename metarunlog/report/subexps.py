"""The per-sub-experiment sections of the page, as HTML built here.

`_subexps.html` looped over 1,000 sub-experiments in Jinja (~0.08 s: a few dozen escapes,
filters and lookups each); the same markup made with f-strings takes a fraction of that.
The template still gets `subs` (a copy of it in mrl_templates/ can lay them out itself)
and renders each one's user-function outputs with its macros; `subexp_bodies` is the rest
of each `<details>`. Every text is escaped.
"""

from __future__ import annotations

from markupsafe import Markup

from metarunlog.fmt import format_value
from metarunlog.report.model import SubSection
from metarunlog.report.table import escape


def body(s: SubSection, varying: list[str]) -> Markup:
    """The `<summary>`, the facts table and the run.log tail of one sub-experiment."""
    res = s.res
    name, state = escape(res.name), escape(res.state.value)
    kv = "".join(f'<span class="kv">{escape(k)}={escape(format_value(res.params.get(k)))}</span> ' for k in varying)
    took = res.duration
    duration = "" if took is None else f'<span class="duration">{escape(format_value(took, "duration"))}</span>'
    head = f'<summary><span class="subexp-id">{name}</span> <span class="state state-{state}">{state}</span>\n'
    rows = [_row(k, format_value(v)) for k, v in res.params.items()]
    st = res.status.to_json() if res.status else {}
    if res.unrecorded is not None:
        rows += _unrecorded_rows(res.note, st)
    else:
        rows.append(f"<tr><th>state</th><td>{state}{_state_detail(st)}</td></tr>")
        if res.status is not None and (why := res.status.reason_shown(res.state)):
            # why mrl ended it or never started it ("not started: its Slurm task ..."), as mrl status says
            rows.append(_row("reason", why))
        if st.get("start"):
            rows.append(f"<tr><th>ran</th><td>{_ran(st)}</td></tr>")
    rows += [_row(k, format_value(v)) for k, v in res.metrics.items()]
    parts = [head, f"  {kv}\n  {duration}\n</summary>\n", '<table class="mrl-facts">', *rows, "</table>\n"]
    if s.log_tail:
        log = escape("\n".join(s.log_tail))
        parts.append(
            f'<details class="log"><summary>run.log (last {len(s.log_tail)} lines)</summary><pre>{log}</pre></details>'
        )
    return Markup("".join(parts))


def _unrecorded_rows(note: str, st: dict) -> list[str]:
    """The kill -9 gap: `running` and why, as `mrl status` says; its record is an earlier
    attempt's (or none), shown as that, never as this attempt's exit code or times."""
    rows = ["<tr><th>state</th><td>running</td></tr>", _row("note", note)]
    if st:
        last = f"{escape(st.get('state'))}{_state_detail(st)}"
        rows.append(f"<tr><th>last record</th><td>{last}{', ' + _ran(st) if st.get('start') else ''}</td></tr>")
    return rows


def _row(key: str, text: str) -> str:
    return f"<tr><th>{escape(key)}</th><td>{escape(text)}</td></tr>"


def _state_detail(st: dict) -> str:
    out = f" (exit code {escape(st['exitCode'])})" if st.get("exitCode") is not None else ""
    return out + (f", attempt {escape(st['attempts'])}" if st.get("attempts") else "")


def _ran(st: dict) -> str:
    out = escape(st["start"])
    if st.get("end"):
        out += f" &ndash; {escape(st['end'])}"
    if st.get("host"):
        out += f" on {escape(st.get('node') or st['host'])}"
    if st.get("resource"):
        out += f" (resource {escape(st['resource'])})"
    return out
