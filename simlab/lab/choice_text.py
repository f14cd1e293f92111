"""The chooser's answer as text: the question, the recommendation or why there is none, the
alternatives and each library's settings (``simlab choose``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simlab.lab.question import FALSE_DISCONNECTS, Constraints, amount, format_rate, seconds

if TYPE_CHECKING:  # annotations only: the chooser imports this module
    from simlab.lab.choose import Choice, Option


def _figure_lines(o: Option, c: Constraints) -> list[str]:
    unit = c.rate_unit
    f = o.figures

    def rate(key):
        e = f[key]
        return f"{format_rate(e.value, unit)} (95 % CI {format_rate(e.low, unit)} to {format_rate(e.high, unit)})"

    def secs(key):
        e = f[key]
        if math.isnan(e.value):
            return "unknown (no detections)"
        return f"{seconds(e.value)} (95 % CI {seconds(e.low)} to {seconds(e.high)})"

    def plain(key):
        e = f[key]
        return f"{amount(e.value)} (95 % CI {amount(e.low)} to {amount(e.high)})"

    lines = [
        f"  false disconnects    {rate(FALSE_DISCONNECTS)}",
        f"    false positives    {rate('fp_per_conn_hour')}",
        f"    middlebox expiries {rate('nat_breaks_per_conn_hour')}",
        f"  detection {c.detection:<10} {secs(c.detection_key)}",
        f"  detection mean       {secs('detection_latency_mean_s')}",
        f"  bytes/conn-hour      {plain('overhead_bytes_per_conn_hour')}",
        f"  messages/conn-hour   {plain('overhead_msgs_per_conn_hour')}",
        f"  wake-ups/conn-hour   {plain('wakeups_per_conn_hour')}",
    ]
    if o.worst_condition:
        lines.append(f"  worst condition      {o.worst_condition}")
    return lines


def format_choice(choice: Choice) -> str:
    """The answer as text: question, recommendation or why none, alternatives, libraries."""
    c = choice.constraints
    lines = [f"sweep: {choice.source}", "question: the cheapest heartbeat setting such that"]
    lines += [f"  - {text}" for text in c.describe()]
    if choice.feasible:
        o = choice.recommendation
        lines += ["", f"recommended: {o.label()}"]
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
        lines += _figure_lines(o, c)
        lines += ["", "binding constraint:"] + [f"  - {n}" for n in choice.binding_notes]
        if choice.alternatives:
            lines += ["", "runner-up alternatives:"]
            for i, alt in enumerate(choice.alternatives, 1):
                extra = alt.cost / o.cost - 1 if o.cost else 0.0
                fd = alt.figures[FALSE_DISCONNECTS].high
                det = alt.figures[c.detection_key].high
                lines.append(
                    f"  {i}. {alt.label()}: {extra:+.0%} {c.minimize};"
                    f" false disconnects up to {format_rate(fd, c.rate_unit)};"
                    f" detection {c.detection} up to {seconds(det)}"
                )
        if choice.policies is not None:
            lines += ["", "adaptive policies against fixed settings:"]
            lines.append(f"  {choice.policies['note']}")
        if choice.libraries:
            lines += ["", "application-level recipe:" if o.adaptive else "library settings:"]
            for lib in choice.libraries:
                opts = ", ".join(f"{k}={_num(v)}" for k, v in lib.options.items())
                lines.append(f"  {lib.library}: {opts}")
                lines.append(f"      {lib.snippet}")
                lines.append(f"      {lib.semantics}")
                if lib.caveat:
                    lines.append(f"      caveat: {lib.caveat}")
    else:
        lines += ["", "no setting in the sweep meets the bounds."]
        for name in choice.unmet:
            lines.append(f"  cannot be met: {name} (no setting in the sweep meets it)")
        if choice.closest is not None:
            lines += ["", f"closest: {choice.closest_note}"]
            lines += _figure_lines(choice.closest, c)
        else:
            lines.append(f"  {choice.closest_note}")
    lines += ["", "notes:"] + [f"  - {n}" for n in choice.notes]
    return "\n".join(lines)


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
