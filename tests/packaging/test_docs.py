"""What README.md, docs/ARCHITECTURE.md and BENCHMARKS.md name exists: files of the repository, and the
subcommands and options of every `geopurify ...` command they show (so a renamed option or test file
cannot leave a stale instruction behind)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from geopurify.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/ARCHITECTURE.md", "BENCHMARKS.md"]


def _text(doc: str) -> str:
    return (REPO / doc).read_text(encoding="utf-8")


def _code_spans(text: str) -> list[str]:
    """Lines of fenced code blocks and inline `code` spans."""
    spans = [ln for blk in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for ln in blk.splitlines()]
    return spans + re.findall(r"`([^`\n]+)`", text)


def _options() -> tuple[dict[str, set[str]], set[str]]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    top = {s for a in parser._actions for s in a.option_strings}
    return {name: {s for a in sp._actions for s in a.option_strings} for name, sp in sub.choices.items()}, top


def stale_commands(text: str) -> list[str]:
    """`geopurify SUB ... --opt` uses whose SUB or --opt the CLI does not have."""
    subs, top = _options()
    bad = []
    for span in _code_spans(text):
        for m in re.finditer(r"(?<![\w/.-])(?<!from )geopurify\s+([a-z][\w-]*)([^#|`]*)", span):
            name, rest = m.group(1), m.group(2)
            if name not in subs:
                bad.append(f"unknown subcommand {name!r}: {span.strip()}")
                continue
            for opt in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest):
                if opt not in subs[name] | top:
                    bad.append(f"geopurify {name} has no {opt}: {span.strip()}")
    return bad


@pytest.mark.parametrize("doc", DOCS)
def test_repository_paths_named_in_the_docs_exist(doc):
    named = set(re.findall(r"\b((?:tests|benchmarks|docs|src/geopurify|geopurify)/[\w./-]*\w)", _text(doc)))
    assert named or doc != "README.md", "the pattern found no paths: stale"
    missing = sorted(p for p in named
                     if not (REPO / p).exists() and not (REPO / "src" / p).exists())
    assert not missing, f"{doc} names paths that do not exist: {missing}"


def test_architecture_module_paths_exist():
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py)", _text("docs/ARCHITECTURE.md")))
    assert len(named) > 5
    missing = sorted(p for p in named if not (REPO / "src" / "geopurify" / p).exists())
    assert not missing, missing


@pytest.mark.parametrize("doc", DOCS)
def test_commands_in_the_docs_name_real_subcommands_and_options(doc):
    assert not stale_commands(_text(doc))


def test_the_command_check_can_fail():
    assert stale_commands("`geopurify segment SCENE --no-such-option`")
    assert stale_commands("```bash\ngeopurify segmnt SCENE\n```")
    assert not stale_commands("`geopurify segment SCENE --no-purify --out OUT -k 48` `from geopurify import api`")


def test_readme_data_flow_names_every_top_level_module():
    """The README's "How it works" (the picture and the table) accounts for the package's folder tree."""
    section = _text("README.md").split("## How it works", 1)[1].split("\n## ", 1)[0]
    pkg = REPO / "src" / "geopurify"
    tops = sorted(p.name for p in pkg.iterdir() if (p.is_dir() and (p / "__init__.py").exists())
                  or (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py", "version.py")))
    assert len(tops) > 15
    missing = [n for n in tops if (n + "/" if not n.endswith(".py") else n) not in section]
    assert not missing, f"README's data flow does not name: {missing}"


def test_help_examples_name_real_options_and_parse():
    import shlex

    from geopurify.cli import commands

    parser = build_parser()
    for cmd in commands():
        for line in cmd.example.splitlines():
            line = line.split("#")[0].strip()
            assert line.startswith(f"geopurify {cmd.name}"), (cmd.name, line)
            assert not stale_commands(f"`{line}`"), (cmd.name, line)
            a = parser.parse_args(shlex.split(line)[1:])  # argparse exits on a wrong argument count or value
            assert a.command == cmd.name


def test_commands_named_in_messages_and_docstrings_are_real():
    """A `geopurify ...` command that an error message or docstring tells a user to run exists as written."""
    pkg = REPO / "src" / "geopurify"
    spans = [(p, s) for p in pkg.rglob("*.py") for s in re.findall(r"`(geopurify [^`\n]+)`", p.read_text("utf-8"))]
    assert len(spans) > 3
    bad = [(str(p.relative_to(REPO)), b) for p, s in spans for b in stale_commands(f"`{s}`")]
    assert not bad, bad
