"""Curated field data: middlebox idle timeouts, library keepalive defaults, network presets.

The CSV files live in the top-level ``data/`` folder, one row per item, each with
a ``source`` and a ``confidence`` (H read in source or official docs, M secondary
sources agree, L a single secondary source or an assumption). Every table is
checked when it is loaded and every problem is reported at once, with the file,
row and column, so a bad edit fails loudly instead of moving a number downstream.
Unknown names get the project's usual error: the option, the value, the allowed
names and a "did you mean".
"""

from __future__ import annotations

import difflib
import functools
import io
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from simlab.errors import Problem, ScenarioError
from simlab.io import read_text
from simlab.scenario.distributions import DIMENSIONLESS, FAMILIES
from simlab.scenario.reader import safe_yaml
from simlab.units import parse_duration

CONFIDENCE = ("H", "M", "L")
_RANK = {c: i for i, c in enumerate(CONFIDENCE)}  # H is the strongest
_SLUG = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class FieldDataError(ScenarioError):
    """A data file is missing or broken: carries every problem found."""


@dataclass(frozen=True)
class Schema:
    """What one CSV must hold: columns, the ones that may not be blank, numbers and choices."""

    file: str
    columns: tuple[str, ...]
    filled: tuple[str, ...]
    numbers: tuple[str, ...] = ()
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()


MIDDLEBOXES = Schema(
    "middleboxes.csv",
    columns=(
        "name",
        "kind",
        "protocol",
        "idle_timeout_s",
        "timeout_kind",
        "expiry",
        "refresh",
        "configurable",
        "notes",
        "source",
        "confidence",
    ),
    filled=("name", "kind", "protocol", "idle_timeout_s", "timeout_kind", "expiry", "refresh"),
    numbers=("idle_timeout_s",),
    choices=(
        ("kind", ("load-balancer", "proxy", "nat", "carrier-nat", "cdn", "spec")),
        ("protocol", ("tcp", "udp")),
        ("timeout_kind", ("idle", "lifetime")),
        ("expiry", ("drop", "reset", "close", "unknown")),
        ("refresh", ("outbound", "both", "any-data", "downstream", "none", "unknown")),
    ),
)

KEEPALIVE_DEFAULTS = Schema(
    "keepalive_defaults.csv",
    columns=(
        "name",
        "library",
        "initiator",
        "style",
        "interval_s",
        "timeout_s",
        "detector",
        "detector_side",
        "liveness",
        "jitter",
        "first_beat",
        "extra_settings",
        "semantics",
        "approximation",
        "notes",
        "source",
        "confidence",
    ),
    filled=(
        "name",
        "library",
        "initiator",
        "style",
        "interval_s",
        "timeout_s",
        "detector",
        "detector_side",
        "liveness",
        "jitter",
        "first_beat",
        "semantics",
    ),
    numbers=("interval_s", "timeout_s", "jitter"),
    choices=(
        ("initiator", ("client", "server", "both")),
        ("style", ("pingpong", "oneway")),
        ("detector", ("timeout", "missed", "phi")),
        ("detector_side", ("client", "server")),
        ("liveness", ("heartbeats", "any")),
    ),
)

NETWORKS = Schema(
    "networks.csv",
    columns=(
        "name",
        "description",
        "delay",
        "uplink_delay",
        "loss",
        "outage_mtbf",
        "outage_duration",
        "middlebox",
        "nat_idle_timeout",
        "nat_refresh",
        "nat_on_expiry",
        "notes",
        "source",
        "confidence",
    ),
    filled=("name", "description"),
    choices=(("nat_refresh", ("", "outbound", "both")), ("nat_on_expiry", ("", "drop", "reset"))),
)

SCHEMAS = {
    "middleboxes": MIDDLEBOXES,
    "keepalive_defaults": KEEPALIVE_DEFAULTS,
    "networks": NETWORKS,
}


# -- value syntax shared by the CSVs and the presets ---------------------------------------


def parse_dist(text: str) -> dict:
    """``lognormal:60ms:0.6`` -> ``{dist: lognormal, median: 0.06, sigma: 0.6}``; ``20ms`` -> constant.

    The family, then its parameters in the order of ``simlab.scenario.distributions.FAMILIES``.
    """
    name, *params = text.strip().split(":")
    if not params:
        return {"dist": "constant", "value": parse_duration(name)}
    if name not in FAMILIES:
        raise ValueError(f"{text!r}: the family must be one of {', '.join(FAMILIES)}")
    names = FAMILIES[name][1]
    if len(params) != len(names):
        raise ValueError(f"{text!r}: {name} takes {len(names)} parameter(s): {', '.join(names)}")
    out: dict = {"dist": name}
    for key, value in zip(names, params, strict=True):
        out[key] = _number(value) if key in DIMENSIONLESS else parse_duration(value)
    return out


def parse_loss(text: str) -> dict:
    """``0.01`` -> Bernoulli; ``gilbert:p_gb:p_bg:loss_good:loss_bad`` -> Gilbert-Elliott."""
    name, *params = text.strip().split(":")
    if not params:
        return {"model": "bernoulli", "p": _probability(name)}
    keys = ("p_gb", "p_bg", "loss_good", "loss_bad")
    if name != "gilbert" or len(params) != len(keys):
        raise ValueError(f"{text!r}: expected a probability or gilbert:{':'.join(keys)}")
    return {"model": "gilbert"} | {k: _probability(v) for k, v in zip(keys, params, strict=True)}


def parse_settings(text: str) -> dict[str, object]:
    """``a.b=1; c.d=2s`` -> ``{'a.b': 1, 'c.d': '2s'}`` (values read as YAML, like ``--set``)."""
    out: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: expected dotted.key=value")
        out[key.strip()] = safe_yaml(value)  # bounded nesting and aliases, as --set
    return out


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r} is not a probability (0 to 1)")
    return value


# -- reading and checking ------------------------------------------------------------------


def data_dir() -> Path:
    """The folder holding the CSVs: the checkout's ``data/``, else the installed copy."""
    candidates = [
        Path(__file__).resolve().parents[2] / "data",
        Path(sys.prefix) / "share" / "simlab" / "data",
    ]
    for folder in candidates:
        if (folder / MIDDLEBOXES.file).is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FieldDataError([Problem("", f"no field data found (looked in {looked})")], "field data")


def read(table: str, folder: str | Path | None = None) -> pd.DataFrame:
    """Load and check one table (``middleboxes``, ``keepalive_defaults``, ``networks``).

    Raises FieldDataError listing every problem. Returns a fresh copy each call.
    """
    folder = Path(folder) if folder is not None else data_dir()
    return _read(table, folder.resolve()).copy()


@functools.cache
def _read(table: str, folder: Path) -> pd.DataFrame:
    schema = SCHEMAS[table]
    path = folder / schema.file
    text = read_text(path, what="field-data CSV", error=FieldDataError)  # 1 MiB, a regular file
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FieldDataError([Problem("", f"cannot read: {exc}")], str(path)) from None
    df = df.apply(lambda col: col.str.strip())
    problems = _check(df, schema)
    if not problems and table == "networks":
        problems += _check_networks(df, _read("middleboxes", folder))
    if not problems and table == "keepalive_defaults":
        problems += _check_keepalive(df)
    if problems:
        raise FieldDataError(problems, str(path))
    for column in schema.numbers:
        df[column] = df[column].astype(float)
    return df


def _where(df: pd.DataFrame, i: int, column: str) -> str:
    return f"row {i + 2} ({df.at[i, 'name'] or '?'}).{column}"  # row 1 is the header


def _check(df: pd.DataFrame, schema: Schema) -> list[Problem]:
    """Columns, blanks, numbers, choices, slugs, source and confidence: every problem at once."""
    missing = [c for c in schema.columns if c not in df.columns]
    if missing:
        expected = ", ".join(schema.columns)
        return [Problem("columns", f"missing {', '.join(missing)} (expected: {expected})")]
    problems = []
    choices = dict(schema.choices)
    for i in df.index:
        row = df.loc[i]
        for column in (*schema.filled, "source"):
            if not row[column]:
                problems.append(Problem(_where(df, i, column), "empty: every row needs one"))
        if row["name"] and not _SLUG.match(row["name"]):
            problems.append(
                Problem(
                    _where(df, i, "name"),
                    f"{row['name']!r} is not a slug (lower-case letters, digits, '-' and '.')",
                )
            )
        if row["confidence"] not in CONFIDENCE:
            problems.append(
                Problem(
                    _where(df, i, "confidence"),
                    f"{row['confidence']!r}: must be one of {', '.join(CONFIDENCE)}",
                )
            )
        for column in schema.numbers:
            if not row[column]:
                continue
            try:
                value = _number(row[column])
            except ValueError as exc:
                problems.append(Problem(_where(df, i, column), str(exc)))
                continue
            low_ok = value >= 0 if column == "jitter" else value > 0
            if not low_ok or (column == "jitter" and value >= 1):
                rule = ">= 0 and < 1" if column == "jitter" else "> 0"
                problems.append(Problem(_where(df, i, column), f"{value:g}: must be {rule}"))
        for column, allowed in choices.items():
            if row[column] and row[column] not in allowed:
                shown = ", ".join(a for a in allowed if a) + (" or blank" if "" in allowed else "")
                problems.append(
                    Problem(_where(df, i, column), f"{row[column]!r}: must be one of {shown}")
                )
    repeated = df["name"][df["name"].duplicated() & (df["name"] != "")]
    for name in dict.fromkeys(repeated):
        problems.append(Problem("name", f"{name!r} appears more than once"))
    return problems


def _check_keepalive(df: pd.DataFrame) -> list[Problem]:
    problems = []
    for i in df.index:
        try:
            parse_settings(df.at[i, "extra_settings"])
        except (ValueError, yaml.YAMLError) as exc:
            problems.append(Problem(_where(df, i, "extra_settings"), str(exc)))
    return problems


def _check_networks(df: pd.DataFrame, boxes: pd.DataFrame) -> list[Problem]:
    """Value syntax, complete groups, known middleboxes, confidence no higher than theirs."""
    problems = []
    known = dict(zip(boxes["name"], boxes["confidence"], strict=True))
    parsers = {
        "delay": parse_dist,
        "uplink_delay": parse_dist,
        "loss": parse_loss,
        "outage_mtbf": parse_duration,
        "outage_duration": parse_dist,
        "nat_idle_timeout": parse_dist,
    }
    for i in df.index:
        row = df.loc[i]
        for column, parse in parsers.items():
            if row[column] and row[column] != "none":
                try:
                    parse(row[column])
                except ValueError as exc:
                    problems.append(Problem(_where(df, i, column), str(exc)))
        link = [c for c in ("delay", "uplink_delay", "loss", "outage_mtbf") if row[c]]
        if link and not (row["delay"] and row["loss"]):
            problems.append(
                Problem(_where(df, i, "delay"), "a row that sets the link needs delay and loss")
            )
        if (row["outage_mtbf"] not in ("", "none")) != bool(row["outage_duration"]):
            problems.append(
                Problem(
                    _where(df, i, "outage_duration"),
                    "outages need both outage_mtbf and outage_duration (or outage_mtbf: none)",
                )
            )
        box = row["middlebox"]
        if box and box not in known:
            problems.append(Problem(_where(df, i, "middlebox"), _unknown_text(box, list(known))))
        elif box and _RANK.get(row["confidence"], 0) < _RANK[known[box]]:
            problems.append(
                Problem(
                    _where(df, i, "confidence"),
                    f"{row['confidence']} is higher than its middlebox {box}'s ({known[box]})",
                )
            )
        if not box and row["nat_idle_timeout"] not in ("", "none"):
            for column in ("nat_refresh", "nat_on_expiry"):
                if not row[column]:
                    problems.append(
                        Problem(_where(df, i, column), "a NAT without a middlebox row needs it")
                    )
    return problems


# -- the tables ----------------------------------------------------------------------------


def middleboxes() -> pd.DataFrame:
    """NATs, load balancers, proxies and specs with their idle timeouts (``data/middleboxes.csv``)."""
    return read("middleboxes")


def keepalive_defaults() -> pd.DataFrame:
    """Heartbeat defaults of libraries and protocols (``data/keepalive_defaults.csv``)."""
    return read("keepalive_defaults")


def networks() -> pd.DataFrame:
    """Network presets: link and middlebox values a path implies (``data/networks.csv``)."""
    return read("networks")


# -- lookups by name -----------------------------------------------------------------------


def _unknown_text(value: str, names: list[str]) -> str:
    hint = difflib.get_close_matches(value, names, n=1, cutoff=0.5)
    tip = f"; did you mean '{hint[0]}'?" if hint else ""
    return f"{value!r} is not a known name{tip} (allowed: {', '.join(names)})"


def unknown_name(option: str, value: str, names: list[str], source: str) -> ScenarioError:
    """The error for a name that is not in a table: the option, the value, the allowed names."""
    return ScenarioError([Problem(option, _unknown_text(value, names))], source)


def row(table: str, name: str, option: str | None = None) -> pd.Series:
    """One row of a table by its slug; an unknown slug raises ScenarioError naming ``option``."""
    df = read(table)
    match = df[df["name"] == name]
    if match.empty:
        names = list(df["name"])
        raise unknown_name(option or table, str(name), names, f"data/{SCHEMAS[table].file}")
    return match.iloc[0]


def middlebox(name: str, option: str = "middlebox") -> pd.Series:
    """A middlebox row by slug, e.g. ``middlebox('aws-alb')['idle_timeout_s'] == 60``."""
    return row("middleboxes", name, option)


def middlebox_timeout(name: str, option: str = "middlebox") -> float:
    """The idle timeout of a middlebox in seconds (``aws-alb`` -> 60.0).

    For a ``timeout_kind`` of ``lifetime`` (GCP's external load balancer) it is the
    longest a connection may live, which no heartbeat extends.
    """
    return float(middlebox(name, option)["idle_timeout_s"])


def keepalive_default(name: str, option: str = "preset") -> pd.Series:
    """A library default's row by slug (``websockets-default``)."""
    return row("keepalive_defaults", name, option)


def network(name: str, option: str = "network") -> pd.Series:
    """A network preset's row by slug (``lte``, ``behind-alb``)."""
    return row("networks", name, option)
