"""The documentation's commands, paths, module names and links are real.

Every line of every ```sh block in README.md and docs/*.md is one shell command. Each is checked
without running it: its program is a known one (a typo is caught), a ``simlab`` command parses
with simlab's own argparse parser (its subcommand and flags exist), a ``make`` target is in the
Makefile, a ``python -m`` module exists and knows the flags given, and every repository path it
names exists. Then the quick ``simlab`` commands run, in document order, in a temporary directory
holding a copy of ``examples/``: they must exit 0 and write nothing into a ``data/`` folder. The
slow ones (the demo's sweep, the full panel, real sockets) are listed in ``SLOW`` with the reason.

Besides the commands: every relative link (and its #anchor) points at something that exists, every
backticked repository path exists, every backticked ``simlab.x.y`` names a real module or
attribute, and the imports of the ```python blocks resolve.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# the programs a documented command may start with
ALLOWED = {"simlab", "make", "python", "python3", "pip", "jupyter", "conda", "bash", "git", "cd"}

# simlab commands that are parsed but not run, and why; each must match a documented command
SLOW = {
    r"^simlab validate$": "the full panel: about 13 s (simlab validate --quick runs)",
    r"^simlab (choose|report) out/demo/sweep\.csv": "reads make demo's sweep: a minute of CPU",
    r"^simlab crosscheck": "real sockets, for tens of seconds; the netns backend needs root",
    r"^simlab harness load": "holds 5,000 connections for minutes",
    r"^simlab harness cleanup": "deletes the machine's network namespaces",
    r"^simlab net (up|exec|fault|down)": "needs root; builds or changes network namespaces"
    " (tests/harness/test_net.py runs them)",
    r"--clients 100000": "a 100,000-client storm: about 7 s",
    r"--connections 500\b": "500 six-hour connections: about 6 s",
    r"^simlab ask (?!.*--horizon)": "the default question, asked whole: about a minute on 2 cores",
}

# a token naming a file or folder of the repository
REPO_PATH = re.compile(r"^(examples|notebooks|data|docs|tests|simlab)(/|$)")
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


# -- reading the docs ---------------------------------------------------------------------------


def _blocks(path: Path, lang: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced block of ``lang`` in ``path``."""
    out, current, start = [], None, 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped == f"```{lang}":
            current, start = [], number + 1
        elif current is not None and stripped.startswith("```"):
            out.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, f"{path.name}: an unclosed ```{lang} block from line {start}"
    return out


def _commands() -> list[tuple[str, str]]:
    """(where, command line) of every line of every ```sh block, in document order."""
    found = []
    for path in DOCS:
        for start, lines in _blocks(path, "sh"):
            for offset, line in enumerate(lines):
                if line.strip():
                    found.append((f"{path.name}:{start + offset}", line.strip()))
    return found


COMMANDS = _commands()


def _tokens(line: str) -> list[str]:
    """The command's words without its end-of-line comment, its environment assignments and a
    leading ``.venv/bin/``."""
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]
    if words:
        words[0] = words[0].removeprefix(".venv/bin/")
    return words


def _slow(line: str) -> str | None:
    command = " ".join(_tokens(line))
    return next((why for pattern, why in SLOW.items() if re.search(pattern, command)), None)


SIMLAB = [(where, line) for where, line in COMMANDS if _tokens(line)[:1] == ["simlab"]]


def _quick() -> list[tuple[str, str]]:
    """The simlab commands to run: each distinct one once, where it first appears."""
    seen, out = set(), []
    for where, line in SIMLAB:
        key = tuple(_tokens(line))
        if _slow(line) is None and key not in seen:
            seen.add(key)
            out.append((where, line))
    return out


QUICK = _quick()


def _ids(items):
    return [f"{where} {' '.join(_tokens(line)[:3])}" for where, line in items]


# -- the commands, checked without running them ----------------------------------------------


def test_the_docs_show_commands():
    assert len(COMMANDS) > 20 and len(QUICK) > 10
    for path in DOCS:
        assert _blocks(path, "sh"), f"{path.name} has no ```sh block"


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=_ids(COMMANDS))
def test_one_known_command_per_line(where, line):
    assert not line.endswith("\\"), f"{where}: one command per line, no continuation"
    words = _tokens(line)
    assert words, f"{where}: a comment alone in a ```sh block"
    assert words[0] in ALLOWED, f"{where}: {words[0]!r} is not one of {sorted(ALLOWED)}"
    operators = SHELL_OPERATORS.intersection(words)
    assert not operators, f"{where}: one command per line, no {sorted(operators)}"
    assert not any(w.startswith("[") or w.endswith("]") for w in words[1:]), (
        f"{where}: placeholders like [--flag] belong in the prose, not in a command"
    )


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=_ids(COMMANDS))
def test_every_path_a_command_names_exists(where, line):
    for word in _tokens(line)[1:]:
        value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
        if REPO_PATH.match(value):
            assert (ROOT / value).exists(), f"{where}: {value} does not exist"


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=_ids(COMMANDS))
def test_no_command_writes_into_data(where, line):
    words = _tokens(line)
    for flag, value in zip(words, words[1:], strict=False):
        if flag in ("--out", "-o"):
            assert not value.startswith(("data/", "./data/")), (
                f"{where}: {value}: write outputs under out/, never into data/"
            )


@cache
def _parser():
    cli = importlib.import_module(
        "simlab.cli.main"
    )  # the module: simlab.cli.main is also a function
    return cli._parser()


def _parse(words: list[str]):
    """Parse ``simlab`` arguments; argparse's complaint (or --version's exit 0) as SystemExit."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return _parser().parse_args(words)
        except SystemExit as exc:
            if exc.code == 0 and words[:1] in (["--version"], ["--help"], ["-h"]):
                return None
            pytest.fail(f"simlab {' '.join(words)}: {err.getvalue().strip()}")


@pytest.mark.parametrize(("where", "line"), SIMLAB, ids=_ids(SIMLAB))
def test_simlab_commands_parse(where, line):
    _parse(_tokens(line)[1:])


def test_every_slow_entry_is_still_documented():
    for pattern in SLOW:
        assert any(re.search(pattern, " ".join(_tokens(line))) for _, line in SIMLAB), (
            f"SLOW entry {pattern!r} matches no documented command: remove it"
        )


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))


@pytest.mark.parametrize(
    ("where", "line"),
    [c for c in COMMANDS if _tokens(c[1])[0] == "make"],
    ids=_ids([c for c in COMMANDS if _tokens(c[1])[0] == "make"]),
)
def test_make_targets_exist(where, line):
    targets = _makefile_targets()
    for target in _tokens(line)[1:]:
        if not target.startswith("-"):
            assert target in targets, f"{where}: make {target}: no such target in the Makefile"


@cache
def _module_help(module: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"python -m {module} --help: {done.stderr}"
    return done.stdout


PYTHON_M = [c for c in COMMANDS if _tokens(c[1])[0] in ("python", "python3") and "-m" in c[1]]


@pytest.mark.parametrize(("where", "line"), PYTHON_M, ids=_ids(PYTHON_M))
def test_python_modules_exist_and_take_the_flags(where, line):
    words = _tokens(line)
    module = words[words.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
    if module.split(".")[0] != "simlab":
        return
    text = _module_help(module)
    for word in words[words.index("-m") + 2 :]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert re.search(rf"{re.escape(flag)}\b", text), (
                f"{where}: python -m {module} has no {flag}"
            )


# -- the quick commands, run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch directory with a copy of examples/: what the commands read; they write into it."""
    path = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "examples", path / "examples")
    return path


@pytest.mark.parametrize(("where", "line"), QUICK, ids=_ids(QUICK))
def test_quick_simlab_commands_run(where, line, workdir, monkeypatch):
    from simlab.cli.main import main

    monkeypatch.chdir(workdir)
    words = _tokens(line)[1:]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(words)
        except SystemExit as exc:  # --version, --help
            code = exc.code
    assert code == 0, f"{where}: {line}\nexit {code}\n{err.getvalue()[-2000:]}"
    assert out.getvalue().strip() or err.getvalue().strip(), f"{where}: {line}: no output"
    assert not (workdir / "data").exists(), f"{where}: {line} wrote into data/"


# -- links, paths and names in the prose --------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.*)$", _prose(path), re.M)}


def _prose(path: Path) -> str:
    """The text outside fenced blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_relative_links_point_at_existing_files_and_headings(path):
    for target in LINK.findall(_prose(path)):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{path.name}: link to {target}: {dest} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{path.name}: link to {target}: no such heading"


BACKTICKED_PATH = re.compile(r"`((?:examples|notebooks|data|docs|tests|simlab)/[^`\s]*)`")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_backticked_repository_paths_exist(path):
    for name in BACKTICKED_PATH.findall(_prose(path)):
        if re.search(r"[<>*]|NAME|\.\.\.", name):  # a pattern, not a file
            continue
        assert (ROOT / name).exists(), f"{path.name}: `{name}` does not exist"


DOTTED = re.compile(r"`(simlab(?:\.[A-Za-z_]\w*)+)")


def _resolve(dotted: str) -> None:
    """Import the longest module prefix of ``dotted``, then look up the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and (name == exc.name or name.startswith(exc.name + "."))):
                raise  # the module exists but one of its own imports is missing
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"{dotted}: {name} has no {'.'.join(parts[cut:])}"
            obj = getattr(obj, attr)
        return
    pytest.fail(f"{dotted}: no such module")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_backticked_module_names_exist(path):
    names = set(DOTTED.findall(_prose(path)))
    for name in sorted(names):
        _resolve(name)


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_python_examples_import_real_names(path):
    import ast

    for start, lines in _blocks(path, "python"):
        tree = ast.parse("\n".join(lines), f"{path.name}:{start}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("simlab"):
                for alias in node.names:
                    _resolve(f"{node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("simlab"):
                        _resolve(alias.name)


def _layout() -> list[str]:
    """The files and folders of the layout listing in docs/contributing.md, as paths."""
    text = (ROOT / "docs" / "contributing.md").read_text()
    section = text[text.index("## Layout") :]
    listing = _blocks_in(section, "text")[0]
    paths, stack = [], []
    for line in listing:
        m = re.match(r"^( *)(\S+)", line)
        if not m or not m.group(2).endswith((".py", "/")):
            continue
        depth = len(m.group(1)) // 2
        stack = [*stack[:depth], m.group(2)]
        paths.append("".join(stack))
    return paths


def _blocks_in(text: str, lang: str) -> list[list[str]]:
    return [b.splitlines() for b in re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)]


def test_the_layout_lists_every_module_and_only_real_ones():
    listed = _layout()
    assert "simlab/" in listed and "simlab/cli/main.py" in listed
    missing = [p for p in listed if not (ROOT / p).exists()]
    assert not missing, f"docs/contributing.md lists files that do not exist: {missing}"
    modules = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "simlab").rglob("*.py")
        if p.name != "__init__.py" or p.parent == ROOT / "simlab"
    }
    unlisted = sorted(modules - set(listed))
    assert not unlisted, f"docs/contributing.md's layout does not list {unlisted}"
