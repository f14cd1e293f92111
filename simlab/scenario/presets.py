"""Presets: partial scenarios for a library's heartbeat defaults and for a network path.

``--preset websockets-default`` sets the heartbeat and detector keys the way that
library behaves; ``--network lte`` sets the link and middlebox keys a path implies.
Both are derived from the rows of ``data/keepalive_defaults.csv`` and
``data/networks.csv`` (the CSVs are the one source of truth) as dotted keys, and
are applied in this order: built-in defaults < scenario file < ``--preset`` <
each ``--network`` in turn < ``--set``, by :func:`load_layered`: the one loader that the
CLI and the Python API (``simlab.load_scenario(path, overrides, preset=, networks=)``)
share. What the scenario format cannot express is said in each preset's
``approximation``, which ``simlab presets`` prints.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simlab.errors import Problem, ScenarioError
from simlab.scenario import fielddata
from simlab.scenario.reader import load, set_dotted
from simlab.scenario.schema import DURATION_KEYS, Scenario
from simlab.units import format_duration, parse_duration


@dataclass(frozen=True)
class Preset:
    """A named partial scenario: dotted keys in the order they are applied."""

    name: str
    kind: str  # heartbeat | network
    summary: str
    settings: tuple[tuple[str, object], ...]
    approximation: tuple[str, ...]
    notes: str
    source: str
    confidence: str

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "settings": dict(self.settings),
            "approximation": list(self.approximation),
            "notes": self.notes,
            "source": self.source,
            "confidence": self.confidence,
        }


# middlebox refresh and expiry -> the scenario's nat.refresh / nat.on_expiry, and what is lost
_REFRESH = {
    "outbound": ("outbound", ""),
    "both": ("both", ""),
    "any-data": (
        "both",
        "only data renews it, not bare TCP ACKs or keepalive probes; simlab counts every packet "
        "(the same thing for WebSocket heartbeats, which are data)",
    ),
    "downstream": (
        "both",
        "only data from the server renews it; simlab counts packets both ways, so heartbeats sent "
        "only by the client (oneway) keep it alive in simlab but not in reality",
    ),
    "none": (
        "both",
        "nothing renews it (a lifetime cap); simlab can only model an idle timeout",
    ),
    "unknown": (
        "outbound",
        "which packets renew it is not documented; simlab assumes outbound only (the stricter rule)",
    ),
}
_EXPIRY = {
    "drop": ("drop", ""),
    "reset": ("reset", ""),
    "close": (
        "reset",
        "it closes the connection at the timeout; simlab's nearest is reset, where an endpoint "
        "learns of the break from its next packet rather than at once",
    ),
    "unknown": (
        "drop",
        "what the endpoints see at expiry is not documented; simlab assumes a silent drop (the "
        "harder case to detect)",
    ),
}
_SERVER_SIDE = ("load-balancer", "proxy", "cdn")


def _heartbeat(row: pd.Series) -> Preset:
    """The keys that make simlab's heartbeat and detector behave like one library's defaults."""
    interval, timeout, kind = float(row["interval_s"]), float(row["timeout_s"]), row["detector"]
    extra = fielddata.parse_settings(row["extra_settings"])
    prefix = f"detector.{kind}."
    section = {k[len(prefix) :]: v for k, v in extra.items() if k.startswith(prefix)}
    settings: list[tuple[str, object]] = [
        ("heartbeat.style", row["style"]),
        ("heartbeat.initiator", row["initiator"]),
        ("heartbeat.interval", interval),
        ("heartbeat.jitter", float(row["jitter"])),
        ("detector.kind", kind),
    ]
    if kind == "timeout":
        settings.append(("detector.timeout", timeout))
    elif kind == "missed":
        missed = {"k": 1, "ack_timeout": timeout, "overlap": timeout > interval}
        settings.append(("detector.missed", missed | section))
    else:  # the whole section, so a scenario file's own values do not leak into the preset
        settings.append((f"detector.{kind}", section))
    settings += [("detector.side", row["detector_side"]), ("detector.liveness", row["liveness"])]
    settings += [(k, v) for k, v in extra.items() if not k.startswith(prefix)]
    notes = [row["approximation"]] if row["approximation"] else []
    if row["first_beat"] != "interval":
        notes.append(
            f"the first beat comes after {row['first_beat']}; simlab sends it one interval "
            "(with jitter) after the connection opens"
        )
    summary = (
        f"{row['library']}: {row['initiator']} {row['style']} every {_duration(interval)}, "
        f"{kind} detector on the {row['detector_side']} ({_duration(timeout)})"
    )
    return Preset(
        row["name"],
        "heartbeat",
        summary,
        tuple(settings),
        tuple(notes),
        row["notes"],
        row["source"],
        row["confidence"],
    )


def _network(row: pd.Series, boxes: pd.DataFrame) -> Preset:
    """Link keys (when the row has a delay) and NAT keys (when it has a middlebox or a NAT)."""
    settings: list[tuple[str, object]] = []
    notes = []
    if row["delay"]:
        outages = None
        if row["outage_mtbf"] not in ("", "none"):
            outages = {
                "mtbf": parse_duration(row["outage_mtbf"]),
                "duration": fielddata.parse_dist(row["outage_duration"]),
            }
        uplink = (
            {"delay": fielddata.parse_dist(row["uplink_delay"])} if row["uplink_delay"] else None
        )
        settings += [
            ("link.delay", fielddata.parse_dist(row["delay"])),
            ("link.loss", fielddata.parse_loss(row["loss"])),
            ("link.uplink", uplink),
            ("link.downlink", None),
            ("link.outages", outages),
        ]
    box = boxes[boxes["name"] == row["middlebox"]].iloc[0] if row["middlebox"] else None
    if row["nat_idle_timeout"] == "none":
        settings.append(("nat.idle_timeout", None))
    elif row["nat_idle_timeout"] or box is not None:
        if row["nat_idle_timeout"]:
            idle: object = fielddata.parse_dist(row["nat_idle_timeout"])
        else:
            idle = float(box["idle_timeout_s"])
        refresh, expiry = row["nat_refresh"], row["nat_on_expiry"]
        if box is not None:
            if not refresh:
                refresh, note = _REFRESH[box["refresh"]]
                notes += [f"refresh ({box['refresh']}): {note}"] if note else []
            if not expiry:
                expiry, note = _EXPIRY[box["expiry"]]
                notes += [f"expiry ({box['expiry']}): {note}"] if note else []
            if box["kind"] in _SERVER_SIDE:
                notes.append(
                    f"simlab puts its one middlebox at the client end of the path; a "
                    f"{box['kind'].replace('-', ' ')} "
                    "sits by the server, which only changes which lost packets still reach it"
                )
        settings += [
            ("nat.idle_timeout", idle),
            ("nat.refresh", refresh),
            ("nat.on_expiry", expiry),
        ]
    remarks = row["notes"]
    if not row["delay"]:
        remarks = "Sets only the middlebox: the link comes from the scenario or an earlier "
        remarks += f"--network. {row['notes']}".rstrip()
    elif row["nat_idle_timeout"] != "none" and any(k.startswith("nat.") for k, _ in settings):
        notes.append("the model has one middlebox: a later --network with a middlebox replaces it")
    return Preset(
        row["name"],
        "network",
        row["description"],
        tuple(settings),
        tuple(notes),
        remarks,
        row["source"],
        row["confidence"],
    )


def heartbeat_presets() -> dict[str, Preset]:
    """One preset per row of ``data/keepalive_defaults.csv``, by name."""
    return {row["name"]: _heartbeat(row) for _, row in fielddata.keepalive_defaults().iterrows()}


def network_presets() -> dict[str, Preset]:
    """One preset per row of ``data/networks.csv``, by name."""
    boxes = fielddata.middleboxes()
    return {row["name"]: _network(row, boxes) for _, row in fielddata.networks().iterrows()}


def heartbeat_preset(name: str, option: str = "--preset") -> Preset:
    return _heartbeat(fielddata.keepalive_default(name, option))


def network_preset(name: str, option: str = "--network") -> Preset:
    return _network(fielddata.network(name, option), fielddata.middleboxes())


_OPTIONS = {"cli": ("--preset", "--network"), "python": ("preset", "networks")}


def layered(
    preset: str | None = None,
    networks: Sequence[str] = (),
    overrides: dict[str, object] | None = None,
    *,
    spelling: str = "cli",
) -> dict[str, object]:
    """Dotted overrides of the preset, then each network, then ``overrides`` (``--set``).

    A key set again moves to the end, so applying the dict in order gives the same
    scenario as applying every layer in turn (a key replaces its whole subtree).
    An unknown name is a ScenarioError naming the option as ``spelling`` spells it
    (``--preset``/``--network`` or the keywords ``preset``/``networks``).
    """
    preset_option, network_option = _OPTIONS[spelling]
    out: dict[str, object] = {}
    layers = [heartbeat_preset(preset, preset_option).settings] if preset else []
    layers += [network_preset(name, network_option).settings for name in networks]
    layers.append(tuple((overrides or {}).items()))
    for layer in layers:
        for key, value in layer:
            out.pop(key, None)
            out[key] = copy.deepcopy(value)  # set_dotted may later change it in place
    return out


def describe(
    source: object,
    preset: str | None = None,
    networks: Sequence[str] = (),
    overrides: dict[str, object] | None = None,
    *,
    spelling: str = "cli",
) -> str:
    """Where a scenario came from: ``demo.yaml with --preset X --network Y --set k=v``.

    ``spelling="python"``: ``demo.yaml with preset=X, network=Y, k=v`` (overrides alone
    read as :func:`simlab.scenario.reader.load` names them).
    """
    if spelling == "python":
        where = "the built-in defaults" if source is None else str(source)
        parts = ([f"preset={preset}"] if preset else []) + [f"network={n}" for n in networks]
        parts += [f"{k}={v}" for k, v in (overrides or {}).items()]
        return where + (" with " + ", ".join(parts) if parts else "")
    parts = [str(source) if source is not None else "the built-in defaults"]
    flags = ([f"--preset {preset}"] if preset else []) + [f"--network {n}" for n in networks]
    flags += [f"--set {k}={v}" for k, v in (overrides or {}).items()]
    return parts[0] + (" with " + " ".join(flags) if flags else "")


def load_layered(
    source: str | Path | dict | None,
    *,
    preset: str | None = None,
    networks: Sequence[str] = (),
    overrides: dict[str, object] | None = None,
    spelling: str = "cli",
) -> tuple[Scenario, list[Problem]]:
    """The scenario loader: the one the CLI and the Python API both use.

    The layers, lowest first; each replaces the keys it sets (a key its whole subtree):

    1. the built-in defaults (those of :class:`~simlab.scenario.schema.Scenario`);
    2. ``source``: a scenario file, a mapping, or None (the defaults alone, named after
       the preset and networks unless a layer sets ``name``);
    3. ``preset``: one library's heartbeat and detector defaults (``--preset``);
    4. each of ``networks`` in turn: link and middlebox keys (``--network``, repeatable);
    5. ``overrides``: dotted keys (``--set``, then the CLI's ``--seed``/``--connections``).

    ``simlab run``/``check``/``crosscheck`` (``simlab.cli.main._load``) and
    :func:`simlab.load_scenario` call it; a sweep's base gets layers 3-4 from
    :func:`apply` (the same :func:`layered` keys) and its points are layer 5.

    ``spelling`` is how problems name the layers: ``"cli"`` (``demo.yaml with --preset X
    --set k=v``) or ``"python"`` (``demo.yaml with preset=X, k=v``; with neither a preset
    nor a network, exactly what :func:`simlab.scenario.reader.load` says).

    Returns (scenario, warnings); raises ScenarioError listing every problem.
    """
    python = spelling == "python"
    if source is None and not preset and not networks:
        wanted = (
            "a scenario file or mapping, or preset= / networks="
            if python
            else "a scenario file, or --preset / --network"
        )
        raise ScenarioError(
            [Problem("scenario", f"missing: give {wanted} to start from the built-in defaults")],
            "simlab.load_scenario" if python else "simlab",
        )
    keys = layered(preset, networks, overrides, spelling=spelling)
    if source is None and "name" not in keys:  # name the run after what it is made of
        keys = {"name": "+".join([*([preset] if preset else []), *networks])} | keys
    if python and not preset and not networks:
        return load(source, keys)  # reader.load names the file and the overrides itself
    try:
        return load({} if source is None else source, keys)
    except ScenarioError as exc:
        shown = ("scenario" if python else "a mapping") if isinstance(source, dict) else source
        where = describe(shown, preset, networks, overrides, spelling=spelling)
        raise ScenarioError(exc.problems, where) from None


def apply(
    raw: dict, preset: str | None = None, networks: Sequence[str] = (), *, spelling: str = "cli"
) -> dict:
    """A copy of a raw scenario mapping with the presets set (a sweep's base): layers 3-4 of
    :func:`load_layered`, whose points are then layer 5."""
    out = copy.deepcopy(raw)
    for key, value in layered(preset, networks, spelling=spelling).items():
        set_dotted(out, key, value)
    return out


# -- simlab presets ------------------------------------------------------------------------

# the last parts of dotted keys shown as durations: the schema's (simlab.scenario.schema)
_DURATION_KEYS = DURATION_KEYS


def _duration(seconds: float) -> str:
    """The largest unit that keeps the number whole (``350s``, ``124m``; minutes from 10 on)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= max(size, 600 * (size == 60)) and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return format_duration(seconds)


def show(key: str, value: object) -> str:
    """A setting as YAML-like text with units: ``{dist: lognormal, median: 60ms, sigma: 0.6}``."""
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(k, v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and last in _DURATION_KEYS:
        return _duration(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _select(names: Sequence[str]) -> list[Preset]:
    beats, nets = heartbeat_presets(), network_presets()
    every = beats | nets
    if not names:
        return list(every.values())
    for name in names:
        if name not in every:
            raise fielddata.unknown_name("presets", name, list(every), "simlab presets")
    return [every[name] for name in names]


def listing(names: Sequence[str] = (), width: int = 100) -> str:
    """The text ``simlab presets`` prints: each preset's settings, caveats, source, confidence."""
    chosen = _select(names)
    wrap = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="      ")
    lines = []
    for kind, title in (
        ("heartbeat", "heartbeat presets (--preset NAME), from data/keepalive_defaults.csv"),
        ("network", "network presets (--network NAME, repeatable), from data/networks.csv"),
    ):
        group = [p for p in chosen if p.kind == kind]
        if not group:
            continue
        lines += [
            title,
            "confidence: H read in source or official docs, M secondary sources "
            "agree, L single secondary source or assumption",
            "",
        ]
        for p in group:
            lines.append(f"  {p.name}  [{p.confidence}]")
            lines += wrap.wrap(p.summary)
            lines.append("    sets:")
            lines += [f"      {k}={show(k, v)}" for k, v in p.settings]
            for note in p.approximation:
                lines += wrap.wrap(f"approximation: {note}")
            if p.notes:
                lines += wrap.wrap(f"notes: {p.notes}")
            lines += wrap.wrap(f"source: {p.source}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_json(names: Sequence[str] = ()) -> list[dict]:
    return [p.to_json() for p in _select(names)]
