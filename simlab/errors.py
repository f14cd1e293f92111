"""The exceptions every layer raises: a problem names its key and what is allowed.

Bad input is reported whole: a :class:`ScenarioError` carries every :class:`Problem` found, so
the user can fix them in one go; the CLI prints them and exits 2. An engine that does not cover a
scenario raises :class:`EngineRefusal`, naming each feature it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass


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
