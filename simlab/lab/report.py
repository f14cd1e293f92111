"""The report: one self-contained HTML file a team can read on a phone, print, or turn into a PDF.

``simlab report SWEEP.csv --out reports/NAME.html --max-detection 60s
--max-false-disconnects 1/conn-month [--behind aws-alb] [--crosscheck FILE] [--pdf]`` writes:
the question and its bounds; the recommendation (:mod:`simlab.lab.choose`) with its figures and
each library's settings; the scenario and its assumptions (the sweep's ``.meta.json`` and
base scenario, when they sit beside the CSV); the trade-off, middlebox and sensitivity
figures (:mod:`simlab.lab.plots`); the model-versus-real-sockets cross-check when a
``simlab crosscheck`` CSV or JSON is given ("not run" otherwise); and a methods appendix
citing the theory used.

Everything is inside the file: figures are PNGs in ``data:`` URIs, the CSS is inline, and
there are no scripts, fonts, links or images fetched from anywhere. The file is written
atomically. ``--pdf`` prints the same file to PDF with a headless Chromium when one is
installed.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import math
import shutil
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg

from simlab.errors import Problem, ScenarioError
from simlab.fleet import plots as fleetplots
from simlab.fleet.spec import is_fleet
from simlab.fleet.spec import load as load_fleet
from simlab.fleet.spec import to_dict as fleet_to_dict
from simlab.io import OUTPUT_LIMIT, read_text, write_atomic
from simlab.lab import plots
from simlab.lab.choose import Choice, choose
from simlab.lab.question import (
    FALSE_DISCONNECTS,
    OBJECTIVES,
    ChooseError,
    amount,
    format_rate,
    seconds,
)
from simlab.scenario.reader import load
from simlab.scenario.schema import flatten, to_dict
from simlab.sweeps import data as sweepdata
from simlab.version import __version__

DPI = 110
# figures for screens up to PHONE_MEDIA wide: redrawn at PHONE_SIZE inches (text keeps its
# point size), at PHONE_DPI for high-density screens
PHONE_MEDIA = "(max-width: 40rem)"
PHONE_SIZE = (4.2, 3.9)
PHONE_DPI = 160
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

CSS = """
:root { --fg: #1a1a1a; --muted: #555; --ok: #1b7837; --bad: #b2182b; --line: #d9d9d9; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 76rem; margin: 0 auto; padding: .6rem 1.2rem 3rem; }
h1 { font-size: 1.5rem; line-height: 1.2; margin: .3rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
p, li { max-width: 48rem; overflow-wrap: anywhere; }
header p { margin: .2rem 0; }
.meta, figcaption, .note { color: var(--muted); font-size: .9rem; }
.answer { border-left: 5px solid var(--ok); background: #f2f8f3; padding: .5rem .9rem; margin: .6rem 0; }
.answer p { margin: .3rem 0; }
.answer.infeasible { border-left-color: var(--bad); background: #fbf0f0; }
.answer.none { border-left-color: var(--muted); background: #f6f6f6; }
.answer .big { font-size: 1.2rem; font-weight: 600; }
.lead { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.35fr);
  grid-template-rows: auto auto 1fr;
  grid-template-areas: "answer fig" "bounds fig" "libs fig"; column-gap: 1.6rem; align-items: start; }
.lead > .lead-answer { grid-area: answer; } .lead > figure { grid-area: fig; margin: .6rem 0; }
.lead > .lead-bounds { grid-area: bounds; } .lead > .lead-libs { grid-area: libs; }
.lead h3 { margin: .5rem 0 .2rem; font-size: 1rem; }
figure { margin: 1.2rem 0; max-width: 100%; }
picture { display: block; max-width: 100%; }
img { display: block; max-width: 100%; height: auto; border: 1px solid #eee; }
.tbl { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: .9rem; margin: .4rem 0; max-width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .3rem .55rem; border-bottom: 1px solid var(--line);
  overflow-wrap: break-word; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: .5rem .7rem; }
td code { overflow-wrap: anywhere; } td code.opt { white-space: nowrap; overflow-wrap: normal; }
.kv { columns: 19rem auto; column-gap: 2rem; font-size: .9rem; }
.kv div { break-inside: avoid; padding: .15rem 0; border-bottom: 1px solid #eee; overflow-wrap: anywhere; }
.kv code { color: var(--muted); margin-right: .4rem; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
.warn { color: var(--muted); font-weight: 600; }
ol.refs li { margin-bottom: .4rem; }
@media (max-width: 56rem) {
  .lead { grid-template-columns: minmax(0, 1fr); grid-template-rows: none;
    grid-template-areas: "answer" "fig" "bounds" "libs"; }
}
@media (max-width: 40rem) {
  body { font-size: 15px; } main { padding: .5rem .7rem 2rem; } h1 { font-size: 1.25rem; }
  th, td { padding: .25rem .35rem; } table { font-size: .85rem; }
  td code.opt { white-space: normal; overflow-wrap: anywhere; }
  /* tables of three or more columns stack: one block per row, each cell named by its column */
  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
  table.stack thead { display: none; }
  table.stack tr { border-bottom: 1px solid var(--line); padding: .3rem 0; }
  table.stack td { border: 0; padding: .1rem .2rem; text-align: left; white-space: normal; }
  table.stack td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
  table.stack td:first-child { font-weight: 600; }
}
@media print {
  body { font-size: 10.5pt; } main { max-width: none; padding: 0; }
  h2 { break-after: avoid; } figure, table, .answer, pre { break-inside: avoid; }
  .tbl { overflow: visible; } img { border: 0; max-height: 15cm; width: auto; }
  @page { margin: 14mm; }
}
"""


class ReportError(ScenarioError):
    """Bad input to the report (a crosscheck file it cannot read, ...): every problem."""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _png(fig, dpi: int) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _for_phone(fig, size: tuple[float, float]) -> None:
    """The same Figure redrawn narrow: its text keeps its size in points, so shown at a
    phone's width it reads as well as the wide one does on a desktop (matplotlib's locators
    give the narrower axes fewer ticks); titles wrap and legends stack in one column."""
    fig.set_size_inches(*size)
    texts = [getattr(fig, "_suptitle", None)]
    for ax in fig.axes:
        texts += [ax.title, getattr(ax, "_left_title", None)]
    for text in texts:
        if text is not None and text.get_text():
            text.set_fontsize(min(text.get_fontsize(), 9))
            text.set_text(
                textwrap.fill(" ".join(text.get_text().split()), 52, break_on_hyphens=False)
            )
    for ax in fig.axes:  # a long axis label would run off the short side
        ax.set_ylabel(textwrap.fill(ax.get_ylabel(), 34))
    # A legend's columns are laid out when it is made (set_ncols alone changes nothing
    # drawn), so the figure's legends are made again with as many columns as fit.
    for legend in list(fig.legends):
        labels = [t.get_text() for t in legend.get_texts()]
        wide = len(labels) > 4 or max(map(len, labels), default=0) > 24
        size = legend.get_texts()[0].get_fontsize() if labels else 8
        legend.remove()
        fig.legend(
            legend.legend_handles,
            labels,
            loc="outside lower center",
            ncols=1 if wide else 2,
            fontsize=size,
        )


def figure_html(fig, alt: str, caption: str, phone=PHONE_SIZE, id: str = "") -> str:
    """A Figure as an embedded PNG (data: URI) with its caption. ``phone``: what screens up
    to PHONE_MEDIA wide show instead: the same Figure redrawn at that size (inches), or
    another Figure drawn for a phone; None: the one image everywhere."""
    width, height = (round(v * DPI) for v in fig.get_size_inches())
    data = _png(fig, DPI)
    source = ""
    if phone is not None:
        if isinstance(phone, tuple):
            _for_phone(fig, phone)
            phone = fig
        source = f'<source media="{PHONE_MEDIA}" srcset="data:image/png;base64,{_png(phone, PHONE_DPI)}">'
    ident = f" id={id}" if id else ""
    return (
        f'<figure{ident}><picture>{source}<img src="data:image/png;base64,{data}"'
        f' width="{width}" height="{height}" alt="{_e(alt)}"></picture>'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


EMPTY_CELLS = frozenset({"", "-", "nan", "NaN", "None"})


def _table(header: list[str] | None, rows: list[list], numeric: set[int] = frozenset()) -> str:
    """A table (cells are HTML already, except numeric ones). A column empty in every row is
    left out. On a phone a table of three or more columns stacks: one block per row, each
    cell named by its column; none scrolls sideways."""
    width = max([len(header or [])] + [len(r) for r in rows])
    keep = [
        i
        for i in range(width)
        if any(i < len(r) and str(r[i]).strip() not in EMPTY_CELLS for r in rows) or not rows
    ]
    header = [header[i] for i in keep] if header else None
    numeric = {keep.index(i) for i in numeric if i in keep}
    rows = [[r[i] if i < len(r) else "" for i in keep] for r in rows]
    labels = [f' data-label="{_e(h)}"' for h in header] if header else [""] * len(keep)
    head = "".join(f"<th>{_e(h)}</th>" for h in header or [])
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num"{labels[i]}>{_e(c)}</td>'
            if i in numeric
            else f"<td{labels[i]}>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    stack = ' class="stack"' if header and len(header) >= 3 else ""
    return f'<div class="tbl"><table{stack}>{thead}<tbody>{body}</tbody></table></div>'


# -- cross-check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossCheckFile:
    """A ``simlab crosscheck`` result: rows of comparisons (its --out CSV or --json output)."""

    path: str
    rows: list

    def checks(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for row in self.rows:
            out.setdefault(str(row.get("check", "")), []).append(row)
        return out


def read_crosscheck(path: str | Path) -> CrossCheckFile:
    """Read the CSV (``simlab crosscheck --out``) or JSON (``--json``) a cross-check wrote."""
    path = Path(path)
    where = "--crosscheck"
    # read_text raises ReportError itself for a missing, oversized or non-UTF-8 file
    text = read_text(
        path, limit=OUTPUT_LIMIT, what="cross-check file", error=ReportError, where=where
    )
    rows: list[dict] = []
    if text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(
                [Problem(where, f"{path}: not valid JSON ({exc})")], str(path)
            ) from None
        for check in doc if isinstance(doc, list) else [doc]:
            if isinstance(check, dict):
                for row in check.get("comparisons", []):
                    rows.append({"check": check.get("check", ""), **row})
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    needed = {"metric", "verdict"}
    if not rows or not all(needed <= set(r) for r in rows):
        problem = Problem(
            where,
            f"{path}: expected the rows of simlab crosscheck (its --out CSV or --json output),"
            " each with a metric and a verdict",
        )
        raise ReportError([problem], str(path))
    return CrossCheckFile(str(path), rows)


def _num(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.4g}"


def crosscheck_html(cc: CrossCheckFile | None) -> str:
    if cc is None:
        return (
            "<p><strong>Not run.</strong> The model's agreement with real sockets was not"
            " checked for this report: run <code>simlab crosscheck --out FILE.csv</code> and"
            " pass <code>--crosscheck FILE.csv</code>.</p>"
        )
    parts = [f'<p class="note">From {_e(cc.path)}.</p>']
    for name, rows in cc.checks().items():
        verdicts = [str(r.get("verdict", "")).lower() for r in rows]
        if "disagree" in verdicts:
            status = '<span class="bad">DISAGREE</span>'
        elif "agree" in verdicts:
            status = '<span class="ok">agree</span>'
        else:  # no events on either side is no evidence, never agreement
            status = '<span class="warn">no evidence</span>'
        untested = [
            str(r.get("metric")) for r, v in zip(rows, verdicts, strict=True) if v == "no evidence"
        ]
        parts.append(f"<h3>{_e(name or 'cross-check')}: {status}</h3>")
        if untested:
            parts.append(
                f'<p class="note">No evidence (no events on either side) on: {_e(", ".join(untested))}.</p>'
            )
        table_rows = [
            [
                f"<code>{_e(r.get('metric'))}</code>",
                f"{_num(r.get('model'))} [{_num(r.get('model_low'))}, {_num(r.get('model_high'))}]",
                f"{_num(r.get('harness'))} [{_num(r.get('harness_low'))}, {_num(r.get('harness_high'))}]",
                _e(r.get("test", "")),
                _num(r.get("p_value")),
                _e(r.get("verdict", "")),
            ]
            for r in rows
        ]
        parts.append(
            _table(
                ["metric", "model (95 % CI)", "real sockets (95 % CI)", "test", "p", "verdict"],
                table_rows,
            )
        )
    return "".join(parts)


# -- sections ----------------------------------------------------------------------------------


def _question_html(choice: Choice | None, bounds_given: bool, constraints_lines: list[str]) -> str:
    items = "".join(f"<li>{_e(t)}</li>" for t in constraints_lines)
    text = (
        "<p>Which heartbeat setting (ping interval and timeout) is the cheapest one that"
        " meets these bounds?</p>"
        f"<ul>{items}</ul>"
        "<p class=note>Bounds are checked against the <strong>upper 95 % confidence"
        " bounds</strong> of the simulated figures, not their point estimates: a setting"
        " qualifies only if the sweep shows it meets them.</p>"
    )
    if not bounds_given:
        text += (
            "<p class=note>No bounds were given (<code>--max-detection</code>,"
            " <code>--max-false-disconnects</code>): the report shows the trade-off without"
            " a recommendation.</p>"
        )
    return text


def _figures_rows(o, c) -> list[list]:
    unit = c.rate_unit
    f = o.figures
    rows = []
    for key, name in (
        (FALSE_DISCONNECTS, "false disconnects"),
        ("fp_per_conn_hour", "&nbsp;&nbsp;false positives"),
        ("nat_breaks_per_conn_hour", "&nbsp;&nbsp;middlebox idle expiries"),
    ):
        e = f[key]
        rows.append(
            [name, format_rate(e.value, unit), format_rate(e.low, unit), format_rate(e.high, unit)]
        )
    for key, name in (
        (c.detection_key, f"detection latency ({c.detection})"),
        ("detection_latency_mean_s", "detection latency (mean)"),
    ):
        e = f[key]
        rows.append([name, seconds(e.value), seconds(e.low), seconds(e.high)])
    for key, name in (
        ("overhead_bytes_per_conn_hour", "heartbeat bytes per connection-hour"),
        ("overhead_msgs_per_conn_hour", "heartbeat messages per connection-hour"),
        ("wakeups_per_conn_hour", "radio wake-ups per connection-hour"),
    ):
        e = f[key]
        rows.append([name, amount(e.value), amount(e.low), amount(e.high)])
    return rows


def _answer_box(choice: Choice | None) -> str:
    """The answer, first: the recommendation (or why there is none) in a box."""
    if choice is None:
        return (
            '<div class="answer none"><p class="big">No recommendation: no bounds were'
            " given.</p><p>Give <code>--max-detection</code> and"
            " <code>--max-false-disconnects</code> for one; the trade-off shows every"
            " setting.</p></div>"
        )
    if choice.feasible:
        o = choice.recommendation
        sub = ""
        if o.interval_s is not None and o.deadline_s is not None:
            sub = (
                f"<p>Ping every <strong>{_e(seconds(o.interval_s))}</strong>; give up after"
                f" <strong>{_e(seconds(o.deadline_s))}</strong> without a pong.</p>"
            )
        if o.adaptive:
            sub = (
                f"<p>An adaptive heartbeat policy (<code>{_e(o.policy)}</code>): no library has"
                " it built in; the application-level recipe is below.</p>"
            )
        worst = f" Worst condition: {_e(o.worst_condition)}." if o.worst_condition else ""
        return (
            f'<div class="answer"><p class="big">Recommended: {_e(o.label())}</p>{sub}'
            f'<p class="note">Each figure is the worst over the conditions the sweep'
            f" covers.{worst}</p></div>"
        )
    unmet = ", ".join(choice.unmet) or "no single bound, but not all at once"
    return (
        '<div class="answer infeasible"><p class="big">No setting in the sweep meets the'
        f" bounds.</p><p>Cannot be met: {_e(unmet)}.</p>"
        f"<p>Closest: {_e(choice.closest_note)}</p></div>"
    )


def _bounds_html(choice: Choice | None, c) -> str:
    """The bounds the answer meets: each bound, the setting's upper 95 % bound, met or not."""
    if choice is None:
        return ""
    o = choice.recommendation if choice.feasible else choice.closest
    rows = []
    if c.max_detection_s is not None:
        high = o.figures[c.detection_key].high if o is not None else math.nan
        met = not math.isnan(high) and high <= c.max_detection_s
        rows.append(
            [
                f"detection latency ({_e(c.detection)})",
                f"&le; {_e(seconds(c.max_detection_s))}",
                _e(seconds(high)) if not math.isnan(high) else "-",
                _met(met),
            ]
        )
    if c.max_false_disconnects is not None:
        high = o.figures[FALSE_DISCONNECTS].high if o is not None else math.nan
        met = not math.isnan(high) and high <= c.max_false_disconnects.per_hour
        rows.append(
            [
                "false disconnects",
                f"&le; {_e(c.max_false_disconnects.shown())}",
                _e(format_rate(high, c.rate_unit)) if not math.isnan(high) else "-",
                _met(met),
            ]
        )
    if c.middlebox is not None:
        mb = c.middlebox
        ping = o.interval_s if o is not None else None
        rows.append(
            [
                f"keeps {_e(mb.name)} open",
                f"longest gap + 1 s &lt; {_e(seconds(mb.idle_timeout_s))}",
                f"pings every {_e(seconds(ping))}" if ping is not None else "-",
                _met(choice.feasible or "middlebox" not in " ".join(choice.unmet)),
            ]
        )
    if not rows:
        return ""
    what = "it meets" if choice.feasible else "asked for"
    return (
        f"<h3>The bounds {what}</h3>"
        + _table(["bound", "asked", "this setting (upper 95 %)", ""], rows)
        + f'<p class="note">Cost minimized: {_e(OBJECTIVES[c.minimize][1])}.</p>'
    )


def _met(ok: bool) -> str:
    return '<span class="ok">met</span>' if ok else '<span class="bad">not met</span>'


def _option_text(k, v) -> str:
    return f'<code class="opt">{_e(k)} = {_e(f"{v:g}" if isinstance(v, float) else v)}</code>'


def _libraries_short(choice: Choice | None) -> str:
    """Each library's settings, in two columns, for the first screen."""
    if choice is None or not choice.libraries:
        return ""
    adaptive = choice.feasible and choice.recommendation.adaptive
    rows = [
        [_e(lib.library), "<br>".join(_option_text(k, v) for k, v in lib.options.items())]
        for lib in choice.libraries
    ]
    head = "In your application" if adaptive else "In your library"
    return (
        f"<h3>{head}</h3>"
        + _table(["library", "settings"], rows)
        + '<p class="note"><a href="#libraries">What each option means there</a>.</p>'
    )


def _answer_html(choice: Choice | None) -> str:
    """The rest of the answer: why this one, its figures, the runners-up, the libraries'
    configuration and the chooser's notes."""
    if choice is None:
        return "<p>No recommendation: no bounds were given.</p>"
    c = choice.constraints
    out = []
    o = choice.recommendation if choice.feasible else choice.closest
    if choice.feasible and choice.binding_notes:
        out.append(
            "<p>Binding constraint:</p><ul>"
            + "".join(f"<li>{_e(n)}</li>" for n in choice.binding_notes)
            + "</ul>"
        )
    if choice.policies is not None:
        out.append("<h3>Adaptive policies against fixed settings</h3>")
        out.append(
            f"<p>{_e(choice.policies['note'][:1].upper() + choice.policies['note'][1:])}.</p>"
        )
    if o is not None:
        out.append("<h3>Predicted figures (95 % intervals)</h3>")
        out.append(_table(["figure", "estimate", "low", "high"], _figures_rows(o, c), {1, 2, 3}))
    if choice.alternatives:
        rows = []
        for alt in choice.alternatives:
            extra = alt.cost / o.cost - 1 if o.cost else 0.0
            rows.append(
                [
                    _e(alt.label()),
                    f"{extra:+.0%}",
                    format_rate(alt.figures[FALSE_DISCONNECTS].high, c.rate_unit),
                    seconds(alt.figures[c.detection_key].high),
                ]
            )
        out.append("<h3>Runner-up alternatives</h3>")
        out.append(
            _table(
                [
                    "setting",
                    f"{c.minimize} vs the recommendation",
                    "false disconnects (upper bound)",
                    f"detection {c.detection} (upper bound)",
                ],
                rows,
                {1, 2, 3},
            )
        )
    if choice.libraries:
        adaptive = choice.feasible and choice.recommendation.adaptive
        out.append(
            "<h3 id=libraries>In your application (no library has it built in)</h3>"
            if adaptive
            else "<h3 id=libraries>In your library</h3>"
        )
        rows = []
        for lib in choice.libraries:
            opts = "<br>".join(_option_text(k, v) for k, v in lib.options.items())
            what = _e(lib.semantics) + (
                f'<br><span class="bad">Caveat:</span> {_e(lib.caveat)}' if lib.caveat else ""
            )
            rows.append([_e(lib.library), opts, f"<code>{_e(lib.snippet)}</code>", what])
        out.append(_table(["library", "settings", "configuration", "what it means there"], rows))
    out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in choice.notes) + "</ul>")
    return "".join(out)


def _shown(key: str, value) -> str:
    """A scenario value for people: durations with their unit, whole floats without '.0'."""
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, float) and not math.isnan(value):
        if last in plots.DURATION_KEYS:
            return seconds(value)
        return f"{value:g}"
    return str(value)


DETECTOR_BLOCKS = ("missed", "phi", "nfd", "adaptive")  # detector.<kind>.*: that kind's keys


def engine_line(data: sweepdata.SweepData) -> str:
    """Which engine ran the points: "auto: fast for 48 points, analytic for 0, simpy for 0"."""
    asked = str((data.meta or {}).get("engine") or "unknown")
    column = data.summary.get("engine")
    if column is None or not column.map(lambda v: isinstance(v, str) and bool(v.strip())).any():
        return f"{asked} (which engine ran each point was not recorded)"
    ran: dict[str, int] = {}
    for value in data.summary["engine"].tolist():
        name = str(value).strip() if isinstance(value, str) and str(value).strip() else "unknown"
        name = "several (replications differ)" if "(" in name else name
        ran[name] = ran.get(name, 0) + 1
    if asked == "auto":
        from simlab.engines import registry

        for name in registry.REGISTRY:
            ran.setdefault(name, 0)
    first, *rest = sorted(ran.items(), key=lambda kv: (-kv[1], kv[0]))
    text = f"{first[0]} for {first[1]} point{'s' if first[1] != 1 else ''}"
    text += "".join(f", {name} for {n}" for name, n in rest)
    return f"{asked}: {text}" if asked not in ran or len(ran) > 1 else text


def _used(flat: dict, data: sweepdata.SweepData, key: str) -> set[str]:
    """The values of ``key`` the sweep's points use: the base's, or the varied column's."""
    if key in data.summary:
        return {str(v) for v in data.summary[key].dropna().tolist()}
    return {str(flat.get(key))}


def matters(flat: dict, data: sweepdata.SweepData) -> list[str]:
    """The base's resolved keys that matter for the sweep's points: a detector's block
    (detector.phi.*, ...) only when a point uses that detector kind; link.tcp.* only over TCP."""
    kinds = _used(flat, data, "detector.kind")
    transports = _used(flat, data, "link.transport")
    out = []
    for key in flat:
        parts = key.split(".")
        block = parts[1] if parts[0] == "detector" and len(parts) > 2 else None
        if block in DETECTOR_BLOCKS and block not in kinds:
            continue
        if key.startswith("link.tcp.") and "tcp" not in transports:
            continue
        out.append(key)
    return out


def _scenario_html(data: sweepdata.SweepData) -> str:
    meta = data.meta or {}
    out = []
    facts = [
        ["sweep", _e(meta.get("sweep") or data.source)],
        ["points", _e(len(data.summary))],
        ["replications per point", _e(data.replications)],
        ["engine", _e(engine_line(data))],
        ["seed", _e(meta.get("seed", "unknown"))],
        [
            "simlab, git revision",
            _e(f"{meta.get('simlab', '?')}, {meta.get('git_revision') or '?'}"),
        ],
        [
            "ran",
            _e(
                f"{meta.get('started', '?')} on {meta.get('host', '?')}, {meta.get('wall_s', math.nan):.0f} s wall"
            ),
        ],
    ]
    if not meta:
        facts.append(["provenance", "no .meta.json beside the CSV"])
    out.append(_table(None, facts))
    values = []
    for key in data.keys:
        shown = ", ".join(_e(_shown(key, v)) for v in dict.fromkeys(data.summary[key].tolist()))
        role = "setting" if key in data.settings else "condition"
        if not data.has_heartbeat:
            role = "varied"
        values.append([f"<code>{_e(key)}</code>", role, shown])
    if values:
        out.append("<h3>What the sweep varies</h3>")
        out.append(
            "<p>Settings are what you choose; conditions are what your users live with."
            " The chooser judges each setting by its worst condition.</p>"
            if data.has_heartbeat
            else "<p>Each point of the sweep is one combination of these values; the"
            " after-the-disconnect section shows every point.</p>"
        )
        out.append(_table(["key", "role", "values"], values))
    if data.base is not None:
        try:
            if is_fleet(data.base):
                fleet, _ = load_fleet(data.base)
                flat = flatten(fleet_to_dict(fleet))
            else:
                scenario, _ = load(data.base)
                flat = flatten(to_dict(scenario))
        except ScenarioError:
            flat = flatten(data.base)
        shown = matters(flat, data) if data.has_heartbeat else list(flat)
        left = len(flat) - len(shown)
        out.append(
            f"<h3>The base scenario</h3><p class=note>From {_e(data.base_source)}; every key a"
            " point does not vary has this value"
            + (
                f" ({left} key(s) of detector kinds or transports no point uses left out)"
                if left
                else ""
            )
            + ".</p>"
        )
        items = "".join(
            f"<div><code>{_e(k)}</code> {_e(_shown(k, flat[k]))}</div>"
            for k in shown
            if k not in data.keys and flat[k] is not None
        )
        out.append(f'<div class="kv">{items}</div>')
        unset = [k for k in shown if k not in data.keys and flat[k] is None]
        if unset:
            out.append(
                '<p class="note">Off or at their automatic value: '
                + ", ".join(f"<code>{_e(k)}</code>" for k in unset)
                + "</p>"
            )
    else:
        out.append(
            "<p class=note>The base scenario was not found (no <code>.meta.json</code> beside"
            " the CSV, or its base file has moved): only the varied keys are known.</p>"
        )
    if meta.get("sweep_text"):
        out.append("<h3>The sweep file</h3><pre>" + _e(meta["sweep_text"]) + "</pre>")
    return "".join(out)


def _best(choice: Choice | None):
    if choice is None:
        return None
    return choice.recommendation if choice.feasible else choice.closest


def _tradeoff_html(data: sweepdata.SweepData, choice: Choice | None, constraints) -> str:
    """The trade-off figure, for the first screen beside the answer."""
    c = constraints
    unit = c.rate_unit if c else "month"
    table = choice.table if choice is not None else data.worst_case()
    best = _best(choice)
    highlight = best.settings if best else None
    options = dict(
        latency=c.detection_key if c else "detection_latency_p95_s",
        cost=c.cost_key if c else "overhead_bytes_per_conn_hour",
        rate_unit=unit,
        max_detection=c.max_detection_s if c else None,
        max_rate=c.max_false_disconnects.per_hour if c and c.max_false_disconnects else None,
        highlight=highlight,
    )
    fig = plots.tradeoff(table, **options)
    return figure_html(
        fig,
        "the trade-off: detection latency against false disconnects for each setting",
        "The trade-off. Each point is one setting at its worst condition: detection latency (x)"
        " against false disconnects (y, log scale), coloured by the cost. Bars: 95 % intervals;"
        " triangles: settings with no false disconnect at all, drawn at their upper bound."
        " Dashed: the bounds; green: where both hold; ringed: the recommendation.",
        phone=plots.tradeoff(table, narrow=True, **options),
        id="tradeoff",
    )


def _figures_html(data: sweepdata.SweepData, choice: Choice | None, constraints) -> str:
    """The figures after the first screen: middleboxes, sensitivity, figures by setting."""
    c = constraints
    unit = c.rate_unit if c else "month"
    table = choice.table if choice is not None else data.worst_case()
    best = _best(choice)
    out = []
    out.append("<h2 id=middlebox>Middleboxes: which intervals survive</h2>")
    mb = c.middlebox if c else None
    try:
        from simlab.scenario import fielddata

        boxes = fielddata.middleboxes()
    except (ImportError, ScenarioError):
        boxes = None
    frame = data.summary if "heartbeat.interval" in data.summary else table
    interval = best.interval_s if best else None
    nat_in_base = bool(((data.base or {}).get("nat") or {}).get("idle_timeout"))
    fig = plots.nat_survival(
        frame,
        simulated=nat_in_base or "nat.idle_timeout" in data.keys,
        middleboxes=boxes,
        behind=(mb.name, mb.idle_timeout_s) if mb and not mb.lifetime else None,
        highlight=interval,
        rate_unit="day",
    )
    simulated = (
        "the sweep's simulated expiries, " if nat_in_base or "nat.idle_timeout" in data.keys else ""
    )
    out.append(
        figure_html(
            fig,
            "middlebox idle expiries against the ping interval",
            f"Middlebox idle expiries per connection-day against the ping interval: {simulated}"
            "the expiries the heartbeats' gaps imply for the chosen middlebox (theory), and each"
            " middlebox's idle timeout from data/middleboxes.csv as a dotted line: an interval at"
            " or beyond it lets the middlebox close an idle connection between two pings.",
        )
    )
    factors = plots.sensitivity_factors(data.summary, data.conditions)
    out.append("<h2 id=sensitivity>Sensitivity to loss and outages</h2>")
    if factors:
        marked = [
            o.settings
            for o in ([best] if best else []) + list(choice.alternatives if choice else [])
        ]
        fig = plots.sensitivity(
            data.summary, factors, data.settings, highlight=marked, rate_unit=unit
        )
        out.append(
            figure_html(
                fig,
                "false disconnects against the loss and outage conditions",
                "False disconnects of each setting against the conditions the sweep varies"
                " (loss, outages; a network name stands for the loss and outage values that come"
                " with it). Coloured: the recommendation and its alternatives, with 95 % bands;"
                " grey: every other setting.",
            )
        )
    else:
        out.append("<p>The sweep does not vary loss or outages: no sensitivity to show.</p>")
    if "detector.timeout" in data.settings or "heartbeat.interval" in data.settings:
        param = "detector.timeout" if "detector.timeout" in data.settings else "heartbeat.interval"
        moving = [k for k in data.conditions if data.summary[k].nunique(dropna=False) > 1]
        by = ["name"] if "name" in moving else moving[:1]
        out.append("<h2 id=detail>Figures by setting</h2>")
        where = "network" if by == ["name"] else by[0] if by else ""
        for metric, text in (
            (FALSE_DISCONNECTS, "false disconnects"),
            (c.detection_key if c else "detection_latency_p95_s", "detection latency"),
        ):
            fig = plots.metric_vs_param(data.summary, param, metric, by=by, rate_unit=unit)
            panels = sum(ax.get_visible() for ax in fig.axes)
            narrow = plots.metric_vs_param(
                data.summary,
                param,
                metric,
                by=by,
                rate_unit=unit,
                columns=1,
                size=(4.2, 2.4 + 2.3 * panels),
            )
            out.append(
                figure_html(
                    fig,
                    f"{text} against {param}" + (f", one panel per {where}" if where else ""),
                    f"{text.capitalize()} against {param} for every point of the sweep"
                    + (f", one panel per {where}" if where and panels > 1 else "")
                    + "; one labelled line per value of the other varied settings (the legend"
                    " names them). Dots: estimates; bars: 95 % intervals; a triangle: no event"
                    " at all, drawn at its 95 % upper bound.",
                    phone=narrow,
                )
            )
    return "".join(out)


# -- after the disconnect (a fleet sweep) -------------------------------------------------------

STORM_COLUMNS = (
    ("time_to_50pct_reconnected_s", "50 %", "time"),
    ("time_to_95pct_reconnected_s", "95 %", "time"),
    ("time_to_99pct_reconnected_s", "99 %", "time"),
    ("time_to_100pct_reconnected_s", "100 %", "time"),
    ("peak_attempts_per_s", "peak attempts /s", "interval"),
    ("attempts_refused", "refused attempts", "count"),
    ("gave_up", "gave up", "count"),
    ("messages_lost", "messages lost", "count"),
)


def storm_question_html(bounds_given: bool) -> str:
    text = (
        "<p>When the clients lose their connections at once (a server restart, a network"
        " blip, a rolling deploy), how fast does each reconnect policy and server setting"
        " bring them back, how hard do they hit the servers, and what do they lose?</p>"
        "<p class=note>The sweep's base is a fleet file (<code>kind: fleet</code>): its"
        " figures are the reconnect storm's, not a heartbeat setting's, so there is no"
        " heartbeat recommendation, trade-off or middlebox figure in this report.</p>"
    )
    if bounds_given:
        text += (
            "<p class=note>The heartbeat bounds given (<code>--max-detection</code>,"
            " <code>--max-false-disconnects</code>) do not apply to a reconnect-storm sweep"
            " and were not used.</p>"
        )
    return text


def storm_labels(data: sweepdata.SweepData) -> list[str]:
    """One label per point of a fleet sweep: the keys it varies, with their values."""
    moving = [k for k in data.keys if data.summary[k].nunique(dropna=False) > 1]
    if not moving:
        return ["the sweep's only setting"] * len(data.summary)
    return [
        ", ".join(f"{k} = {_shown(k, row[k])}" for k in moving)
        for _, row in data.summary.iterrows()
    ]


def _storm_cell(row, key: str, how: str) -> str:
    mean = _float(row.get(f"{key}_mean"))
    if mean is None:
        return "not reached" if how == "time" else "-"
    if how == "count":
        return amount(mean)
    low, high = _float(row.get(f"{key}_ci_low")), _float(row.get(f"{key}_ci_high"))
    shown = seconds(mean) if how == "time" else amount(mean)
    if low is None or high is None or high - low <= 1e-9 * max(1.0, abs(mean)):
        return shown
    fmt = seconds if how == "time" else amount
    return f"{shown} [{fmt(low)}, {fmt(high)}]"


def _float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def after_disconnect_html(data: sweepdata.SweepData) -> str:
    """The section of a sweep with fleet metrics: how each point recovers from the storm."""
    summary = data.summary
    labels = storm_labels(data)
    out = ["<h2 id=after-disconnect>After the disconnect</h2>"]
    out.append(
        "<p>What each reconnect policy and setting the sweep varies does once the clients"
        " are knocked off: the time from the trigger until 50, 95, 99 and 100 % of the"
        " disconnected clients are connected again, the peak of connection attempts per"
        " second the servers see, the attempts refused, the clients that gave up and the"
        " messages lost (fallen out of the replay buffer before their client came back).</p>"
    )
    rows = [
        [_e(label)] + [_storm_cell(row, key, how) for key, _, how in STORM_COLUMNS]
        for label, (_, row) in zip(labels, summary.iterrows(), strict=True)
    ]
    header = ["setting"] + [
        f"{name} reconnected" if how == "time" else name for _, name, how in STORM_COLUMNS
    ]
    out.append(_table(header, rows, set(range(1, len(header)))))
    out.append(
        f'<p class="note">Means over {data.replications} replication(s) per point, with 95 %'
        " intervals in brackets where the replications differ; counts are per run of the"
        " whole fleet; &ldquo;not reached&rdquo;: that share of the clients was not back by the"
        " horizon.</p>"
    )
    fig = fleetplots.recovery_figure(summary, labels)
    out.append(
        figure_html(
            fig,
            "time to reconnect and peak connection attempts per second for each setting",
            "Left: seconds from the trigger until 50, 95, 99 and 100 % of the disconnected"
            " clients were connected again (bars: 95 % intervals; a share not reached by the"
            " horizon is left out). Right: the peak connection attempts per second (1 s"
            " windows) the servers saw.",
        )
    )
    return "".join(out)


FLEET_METHODS = """
<p><strong>Reconnect storms.</strong> A fleet file's clients all start connected; the trigger
(restart, blip, rolling deploy) knocks them off, each notices (told at once, or when its own
detector declares) and reconnects through its policy's delays. Each server admits handshakes
first come, first served at its handshake rate, refuses or drops attempts beyond its backlog
and while down; a resumed session replays the messages still in its buffer, the rest are
lost. Times are measured from the trigger over the clients it disconnected; peaks over 1 s
windows. Figures other than counts get a bootstrap interval of the mean over
replications.</p>
"""


METHODS = """
<p><strong>Model.</strong> Each connection slot is simulated by a SimPy discrete-event model
of the path client &ndash; access link (loss, outages) &ndash; NAT &ndash; wide area (loss,
delay) &ndash; server. Over TCP each message has its own retransmission ladder with the
RFC&nbsp;6298 estimator (RTO = SRTT + max(4&middot;RTTVAR, 200 ms), doubling up to 120 s, Linux's
15 retries), so random loss becomes delay and in-order delivery holds later messages back.
A connection is <em>broken</em> from the first instant it can never deliver again (the peer
crashed, the NAT mapping expired, TCP will give up); a declaration on a broken connection is
a detection, on a live one a false positive. Where an engine other than the model ran
(<code>engine: auto</code> picks the exact analytic engine, else the vectorized fast engine,
else the model), it covers the same figures and is cross-checked against the model by
<code>simlab validate</code>.</p>
<p><strong>Figures.</strong> Detection latency is measured from the break to the
declaration. False disconnects are false positives plus middlebox idle expiries, per
connection-hour of exposure. Failure-detector quality follows Chen, Toueg and Aguilera [1]:
detection time T<sub>D</sub>, mistake recurrence T<sub>MR</sub>, mistake duration
T<sub>M</sub>, query accuracy P<sub>A</sub>. Cost counts heartbeat frames with their
IPv4+TCP headers (52 bytes), retransmissions and pure ACKs; radio wake-ups count client
packets after the 10 s idle tail of a cellular radio.</p>
<p><strong>Statistics.</strong> Counts and rates are pooled over replications with exact
(Garwood [6]) Poisson 95 % intervals; other figures get a bootstrap interval of the mean
over replications. Each setting is judged by its worst condition, and the chooser checks the
bounds against the upper 95 % bounds, so a recommendation is one the evidence supports, not
one the point estimates merely allow.</p>
<p><strong>Theory behind the settings.</strong> The timeout and k-missed detectors over
datagrams are Chen et al.'s NFD-S with a shift &delta;; their closed forms (mistake rate,
mistake duration, crash-detection latency) check the model. Phi accrual [2] and the adaptive
NFD-E are available as detectors; the libraries' fixed deadlines correspond to the timeout
detector. NAT and load-balancer idle timeouts follow RFC&nbsp;5382 [4] (TCP: at least 2 h 4 min
for established sessions, which middleboxes such as load balancers do not honour) and
RFC&nbsp;4787 [5] (UDP: at least 2 min, 5 min recommended); the middlebox figure's theory
line is a renewal argument: a mapping refreshed every interval &times; (1 &plusmn; jitter)
expires in the first gap that reaches its idle timeout. TCP's RTO [3] is why random loss
rarely causes false positives over TCP: a pong is late only when one message needs several
retransmissions, so outages, stalls and backlogs dominate.</p>
<p><strong>Library semantics.</strong> The translation keeps the ping interval and the
longest silence before giving up: python websockets' ping_timeout counts from each ping;
gorilla/websocket's pongWait is a read deadline pushed forward by each pong; Socket.IO's
client gives up after pingInterval + pingTimeout; SignalR's ClientTimeoutInterval is a
silence deadline with a guidance of twice the keepalive interval (each from the library's
source and documentation).</p>
<h3>References</h3>
<ol class="refs">
<li>W. Chen, S. Toueg, M. K. Aguilera. On the Quality of Service of Failure Detectors.
IEEE Transactions on Computers 51(5), 561&ndash;580, 2002.</li>
<li>N. Hayashibara, X. D&eacute;fago, R. Yared, T. Katayama. The &phi; Accrual Failure
Detector. Proc. 23rd IEEE Symposium on Reliable Distributed Systems (SRDS), 2004.</li>
<li>V. Paxson, M. Allman, J. Chu, M. Sargent. Computing TCP's Retransmission Timer.
RFC 6298, IETF, 2011.</li>
<li>S. Guha, K. Biswas, B. Ford, S. Sivakumar, P. Srisuresh. NAT Behavioral Requirements for
TCP. RFC 5382, IETF, 2008.</li>
<li>F. Audet, C. Jennings. Network Address Translation (NAT) Behavioral Requirements for
Unicast UDP. RFC 4787, IETF, 2007.</li>
<li>F. Garwood. Fiducial Limits for the Poisson Distribution. Biometrika 28(3/4),
437&ndash;442, 1936.</li>
</ol>
"""


# -- the document ----------------------------------------------------------------------------------


def build(
    sweep,
    *,
    max_detection=None,
    max_false_disconnects=None,
    nat_timeout=None,
    behind=None,
    minimize: str = "bytes",
    detection: str = "p95",
    crosscheck: str | Path | None = None,
    title: str | None = None,
) -> tuple[str, Choice | None]:
    """The report's HTML text and the chooser's answer (None without bounds).

    Raises ChooseError/ReportError (ScenarioErrors) listing every problem with the input.
    """
    from simlab.lab.question import constraints as make_constraints

    problems: list[Problem] = []
    data = c = cc = None
    try:
        data = sweep if isinstance(sweep, sweepdata.SweepData) else sweepdata.read(sweep)
    except ScenarioError as exc:
        problems += [Problem(p.path or "SWEEP", p.message) for p in exc.problems]
    try:
        c = make_constraints(
            max_detection, max_false_disconnects, nat_timeout, behind, minimize, detection
        )
    except ChooseError as exc:
        problems += exc.problems
    if crosscheck is not None:
        try:
            cc = read_crosscheck(crosscheck)
        except ReportError as exc:
            problems += exc.problems
    if problems:
        raise ReportError(problems, "simlab report")
    bounds = max_detection is not None or max_false_disconnects is not None
    choice = (
        choose(
            data,
            max_detection,
            max_false_disconnects,
            nat_timeout,
            behind,
            minimize,
            detection=detection,
        )
        if bounds and data.has_heartbeat
        else None
    )
    name = (data.meta or {}).get("name") or Path(data.source).stem
    storm_only = data.has_fleet and not data.has_heartbeat
    title = title or (
        f"After the disconnect: {name}" if storm_only else f"Heartbeat settings: {name}"
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if choice is not None:
        verdict = (
            f"Recommended: {choice.recommendation.label()}."
            if choice.feasible
            else "No setting in the sweep meets the bounds."
        )
    elif storm_only:
        verdict = "A reconnect-storm sweep: how each setting recovers after the disconnect."
    else:
        verdict = "No bounds given: the trade-off without a recommendation."
    if storm_only:
        heartbeat_part = [
            "<h2 id=question>The question</h2>",
            storm_question_html(bounds),
            after_disconnect_html(data),  # the answer, before the long scenario listing
        ]
    else:
        # the first screen: the answer, the bounds it meets, the trade-off, the libraries
        heartbeat_part = [
            '<section class="lead" id=answer>',
            f'<div class="lead-answer">{_answer_box(choice)}</div>',
            _tradeoff_html(data, choice, c),
            f'<div class="lead-bounds">{_bounds_html(choice, c)}</div>',
            f'<div class="lead-libs">{_libraries_short(choice)}</div>',
            "</section>",
            "<h2 id=question>The question</h2>",
            _question_html(choice, bounds, c.describe()),
            "<h2 id=why>The answer in full</h2>",
            _answer_html(choice),
        ]
    header = [
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">Generated {_e(now)} by simlab {_e(__version__)} from {_e(data.source)};'
        ' the scenario, the engines and the sweep file are in the <a href="#scenario">appendix</a>.</p>',
        f"<p><strong>{_e(verdict)}</strong></p></header>" if storm_only else "</header>",
    ]
    body = [
        *header,
        *heartbeat_part,
        _figures_html(data, choice, c) if data.has_heartbeat else "",
        after_disconnect_html(data) if data.has_fleet and not storm_only else "",
        "<h2 id=crosscheck>Model against real sockets</h2>",
        crosscheck_html(cc),
        "<h2 id=methods>Methods</h2>",
        METHODS,
        FLEET_METHODS if data.has_fleet else "",
        "<h2 id=scenario>Appendix: scenario, engines and the sweep file</h2>",
        _scenario_html(data),
        f'<footer><p class="meta">simlab {_e(__version__)}; costs are {_e(OBJECTIVES[c.minimize][1])}.</p></footer>',
    ]
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
    return doc, choice


def find_browser() -> str | None:
    """A headless-capable Chromium on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_command(browser: str, profile: str) -> list[str]:
    """Chromium's flags for a quiet, offline, headless run with a throwaway profile."""
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]


def render(
    html_path: str | Path, out_path: str | Path, flags: list[str], what: str, timeout: float = 120.0
) -> str | None:
    """Have headless Chromium turn an HTML file into ``out_path`` (``flags`` name the output:
    ``--print-to-pdf=``/``--screenshot=`` with the path last); None on success, else why not.

    The output is written to a hidden temporary file first and renamed, so a failed render
    never leaves half a file.
    """
    browser = find_browser()
    if browser is None:
        return f"no {what} renderer: install chromium (Debian: apt-get install chromium)"
    out_path = Path(out_path).resolve()
    tmp = out_path.with_name(f".{out_path.stem}.part{out_path.suffix}")  # chromium checks it
    # a helper process may still be writing the profile as the browser exits
    with tempfile.TemporaryDirectory(
        prefix="simlab-render-", ignore_cleanup_errors=True
    ) as profile:
        cmd = browser_command(browser, profile) + [
            *flags[:-1],
            flags[-1] + str(tmp),
            Path(html_path).resolve().as_uri(),
        ]
        try:
            subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            tmp.unlink(missing_ok=True)
            return f"{browser} failed: {exc}"
    if not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        return f"{browser} wrote no {what}"
    tmp.replace(out_path)
    return None


def to_pdf(html_path: str | Path, pdf_path: str | Path, timeout: float = 120.0) -> str | None:
    """Print the HTML file to PDF with headless Chromium; None on success, else why not."""
    why = render(html_path, pdf_path, ["--no-pdf-header-footer", "--print-to-pdf="], "PDF", timeout)
    return why + " for --pdf" if why and why.startswith("no PDF renderer") else why


def report(
    sweep, out: str | Path, *, pdf: bool = False, **options
) -> tuple[Path, Choice | None, str | None]:
    """Write the report to ``out`` (atomically); with ``pdf`` also ``out`` as .pdf.

    Returns (path, the choice, why the PDF was not written or None). ``options`` are
    :func:`build`'s.
    """
    out = Path(out)
    text, choice = build(sweep, **options)
    write_atomic(out, text)
    why = to_pdf(out, out.with_suffix(".pdf")) if pdf else None
    return out, choice, why


def cmd_report(args, question: dict) -> int:
    """``simlab report``: write the file, say where, and print the answer in one line."""
    import sys

    path, choice, why = report(
        args.sweep,
        args.out,
        pdf=args.pdf,
        crosscheck=args.crosscheck,
        title=args.title,
        **question,
    )
    print(f"report written to {path}", file=sys.stderr)
    if choice is not None:
        if choice.feasible:
            print(f"recommended: {choice.recommendation.label()}")
        else:
            print(f"no setting in the sweep meets the bounds; closest: {choice.closest_note}")
    if args.pdf:
        if why:
            print(f"--pdf: {why}", file=sys.stderr)
            return 1
        print(f"PDF written to {path.with_suffix('.pdf')}", file=sys.stderr)
    return 0
