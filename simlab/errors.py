"""The exceptions every layer raises: a problem names its key and what is allowed.

Bad input is reported whole: a :class:`ScenarioError` carries every :class:`Problem` found, so
the user can fix them in one go; the CLI prints them and exits 2. An engine that does not cover a
scenario raises :class:`EngineRefusal`, naming each feature it lacks.
"""

from __future__ import annotations

import errno
import reprlib
from dataclasses import dataclass
from pathlib import Path

SHOWN = 60  # characters of a bad value a message quotes

# reprlib bounds the work as well as the text: a few items per level, a few levels, so a
# structure shared through YAML aliases is never expanded to be printed
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, SHOWN + 2, SHOWN, SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def shown(value: object, limit: int = SHOWN) -> str:
    """``repr(value)`` for a message, cut to a prefix of ``limit`` characters.

    A longer string is quoted as its first ``limit`` characters, then ``...`` and its
    length; a longer structure as a prefix of its (bounded) repr and its number of items;
    a huge integer by its number of digits. Short values read exactly as ``repr``.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = _REPR.repr(value)
    n = len(value) if isinstance(value, (list, tuple, dict, set)) else None
    cut = len(text) > limit
    if cut:
        text = text[:limit] + "..."
    if n is not None and (cut or n > _REPR.maxlist):
        text += f" ({n} item{'s' if n != 1 else ''})"
    return text


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ScenarioError(ValueError):
    """Bad input: carries every problem found, so the user can fix them in one go."""

    def __init__(self, problems: list[Problem], source: str = "scenario"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class EngineRefusal(ScenarioError):
    """The engine does not cover the scenario: the problems name what it lacks."""

    def __init__(self, engine: str, features: list[str]):
        problems = [Problem(f"engine {engine}", f"does not cover {f}") for f in features]
        super().__init__(problems, f"--engine {engine}")
        self.engine, self.features = engine, features


class OutputError(ScenarioError):
    """A file simlab cannot write (a read-only or full disk, a path through a file): the path
    and the OS's reason, so the CLI says so in one line and exits 2 instead of a traceback."""

    def __init__(self, path, reason: OSError | str):
        self.path = str(path)
        if isinstance(reason, OSError):
            self.errno = reason.errno
            text = reason.strerror or str(reason)
            parent = reason.filename
            if parent is not None and Path(str(parent)) in Path(self.path).parents:
                if reason.errno in (errno.EEXIST, errno.ENOTDIR):  # --out /etc/passwd/x.csv
                    text = "a part of the path is a file, not a directory"
                text = f"{parent}: {text}"
        else:
            self.errno, text = None, str(reason)
        self.reason = text
        super().__init__([Problem(self.path, f"cannot write: {text}")], "output")
