"""The chooser's answer as text (``simlab choose``), answer first.

The default fits one screen: the recommendation and the bounds it meets, its figures in
brief, the alternatives one line each, each library's options, and where the rest is.
``verbose`` adds every figure with its interval, what rules out the cheaper settings, each
library's code, meaning and caveats, and the notes (the report shows them all too).

The functions take a :class:`simlab.lab.choose.Choice` and its ``Option`` objects; they are
not annotated with those types because the chooser imports this module (``Choice.__str__``),
and this module importing the chooser back would close an import cycle."""

from __future__ import annotations

import math

from simlab.lab.question import (
    FALSE_DISCONNECTS,
    OBJECTIVES,
    Constraints,
    amount,
    format_rate,
    seconds,
)

MORE = (
    "more: --verbose (each library's code and caveats, why cheaper settings fail, the notes);",
    "  simlab report with the same arguments and --out FILE.html (all that, with figures)",
)
MORE_WITHOUT_ANSWER = (
    "more: --verbose (every figure of the closest setting, with its interval);",
    "  simlab report with the same arguments and --out FILE.html (the trade-off's figures)",
)


def _rate(o, key: str, unit: str) -> str:
    e = o.figures[key]
    return f"{format_rate(e.value, unit)} (95 % CI {format_rate(e.low, unit)} to {format_rate(e.high, unit)})"


def _secs(o, key: str) -> str:
    e = o.figures[key]
    if math.isnan(e.value):
        return "unknown (no detections)"
    return f"{seconds(e.value)} (95 % CI {seconds(e.low)} to {seconds(e.high)})"


def _figure_lines(o, c: Constraints) -> list[str]:
    """Every figure the chooser judges, with its 95 % interval (``--verbose``)."""
    unit = c.rate_unit

    def plain(key):
        e = o.figures[key]
        return f"{amount(e.value)} (95 % CI {amount(e.low)} to {amount(e.high)})"

    lines = [
        f"  false disconnects    {_rate(o, FALSE_DISCONNECTS, unit)}",
        f"    false positives    {_rate(o, 'fp_per_conn_hour', unit)}",
        f"    middlebox expiries {_rate(o, 'nat_breaks_per_conn_hour', unit)}",
        f"  detection {c.detection:<10} {_secs(o, c.detection_key)}",
        f"  detection mean       {_secs(o, 'detection_latency_mean_s')}",
        f"  bytes/conn-hour      {plain('overhead_bytes_per_conn_hour')}",
        f"  messages/conn-hour   {plain('overhead_msgs_per_conn_hour')}",
        f"  wake-ups/conn-hour   {plain('wakeups_per_conn_hour')}",
    ]
    if o.worst_condition:
        lines.append(f"  worst condition      {o.worst_condition}")
    return lines


def _brief_figures(o, c: Constraints) -> list[str]:
    """The figures the bounds and the cost are about, in three lines."""
    f = o.figures
    where = f" on its worst condition ({o.worst_condition})" if o.worst_condition else ""
    costs = [
        f"{amount(f[key].value)} {unit}"
        for key, unit in (
            ("overhead_bytes_per_conn_hour", "bytes"),
            ("overhead_msgs_per_conn_hour", "messages"),
            ("wakeups_per_conn_hour", "wake-ups"),
        )
        # left out: a cost the engine does not count (wake-ups over TCP on the fast engine)
        if f[key].value is not None and not math.isnan(f[key].value)
    ]
    return [
        f"its figures{where}:",
        f"  false disconnects {_rate(o, FALSE_DISCONNECTS, c.rate_unit)}",
        f"  detection {c.detection} {_secs(o, c.detection_key)}",
        f"  per connection-hour: {', '.join(costs) or 'no cost counted'}",
    ]


def _question_lines(c: Constraints, lead: str) -> list[str]:
    *bounds, _ = c.describe()  # the last line is what is minimized: said in the first line
    return [
        f"{lead} the cheapest in {OBJECTIVES[c.minimize][1]} that meets, by upper 95 % bounds:",
        *(f"  - {text}" for text in bounds),
    ]


def _alternative_lines(choice, verbose: bool) -> list[str]:
    c, o = choice.constraints, choice.recommendation
    if verbose:
        lines = ["", "runner-up alternatives:"]
    else:
        lines = [
            f"alternatives (extra {c.minimize}; upper bounds of false disconnects, detection {c.detection}):"
        ]
    for i, alt in enumerate(choice.alternatives, 1):
        extra = alt.cost / o.cost - 1 if o.cost else 0.0
        fd = format_rate(alt.figures[FALSE_DISCONNECTS].high, c.rate_unit)
        det = seconds(alt.figures[c.detection_key].high)
        if verbose:
            lines.append(
                f"  {i}. {alt.label()}: {extra:+.0%} {c.minimize}; false disconnects up to {fd};"
                f" detection {c.detection} up to {det}"
            )
        else:
            lines.append(f"  {i}. {alt.label()}: {extra:+.0%}; {fd}; {det}")
    return lines


def _library_lines(choice, verbose: bool) -> list[str]:
    o = choice.recommendation
    lines = [
        "" if verbose else None,
        "application-level recipe:" if o.adaptive else "library settings:",
    ]
    for lib in choice.libraries:
        opts = ", ".join(f"{k}={_num(v)}" for k, v in lib.options.items())
        if not verbose:
            lines.append(
                f"  {lib.library}: {opts}" + (" (a caveat: --verbose)" if lib.caveat else "")
            )
            continue
        lines.append(f"  {lib.library}: {opts}")
        lines.append(f"      {lib.snippet}")
        lines.append(f"      {lib.semantics}")
        if lib.caveat:
            lines.append(f"      caveat: {lib.caveat}")
    return [line for line in lines if line is not None]


def _recommended(choice, verbose: bool) -> list[str]:
    c, o = choice.constraints, choice.recommendation
    lines = [f"recommended: {o.label()}"]
    if o.adaptive:
        lines.append(
            f"  (an adaptive heartbeat policy, {o.policy}: no library has it built in;"
            " the application-level recipe is below)"
        )
    elif o.interval_s is not None and o.deadline_s is not None:
        lines.append(
            f"  (ping every {seconds(o.interval_s)}; give up after"
            f" {seconds(o.deadline_s)} without a pong)"
        )
    lines += _question_lines(c, "it is")
    if verbose:
        lines += ["", "its figures:", *_figure_lines(o, c)]
        lines += ["", "binding constraint:"] + [f"  - {n}" for n in choice.binding_notes]
    else:
        lines += ["", *_brief_figures(o, c)]
    if choice.alternatives:
        lines += _alternative_lines(choice, verbose)
    if choice.policies is not None:
        lines += ["", "adaptive policies against fixed settings:"] if verbose else []
        lines.append(f"{'  ' if verbose else 'adaptive policies: '}{choice.policies['note']}")
    if choice.libraries:
        lines += _library_lines(choice, verbose)
    return lines


def _no_recommendation(choice, verbose: bool) -> list[str]:
    c = choice.constraints
    lines = ["no setting in the sweep meets the bounds."]
    for name in choice.unmet:
        lines.append(f"  cannot be met: {name} (no setting in the sweep meets it)")
    lines += _question_lines(c, "asked:")
    if choice.closest is not None:
        lines += ["", f"closest: {choice.closest_note}"]
        if verbose:
            lines += _figure_lines(choice.closest, c)
        else:
            lines += _brief_figures(choice.closest, c)[1:]
    else:
        lines.append(f"  {choice.closest_note}")
    return lines


def format_choice(choice, *, verbose: bool = False) -> str:
    """The answer as text, answer first: the recommendation (or why there is none) and the
    bounds it meets, its figures, the alternatives, each library's settings.

    The default fits one screen and ends saying where the rest is; ``verbose`` adds every
    figure's interval, the binding constraints, each library's code, meaning and caveats,
    and the notes. Without a recommendation the notes say why, so both show them."""
    if choice.feasible:
        lines = _recommended(choice, verbose)
    else:
        lines = _no_recommendation(choice, verbose)
    if verbose or not choice.feasible:
        lines += ["", "notes:"] + [f"  - {n}" for n in choice.notes]
    more = MORE if choice.feasible else MORE_WITHOUT_ANSWER
    lines += [f"sweep: {choice.source}"] if verbose else ["", *more]
    return "\n".join(lines)


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
