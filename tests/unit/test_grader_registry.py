"""The grader registry: every grader is declared once, found by itself, and what users read is produced from
it (the CLI's --grader help) or checked against it (the README's grader list)."""

import argparse
import pkgutil
import re

import pytest

import core.data.graders as graders
from core.data.graders import Grade, GraderKind, kind_of, kinds, parse_grader
from core.data.graders._registry import _KINDS
from core.errors import TunelabError
from core.evals.judge import is_judge
from tests.conftest import REPO
from tui.cli.main import build_parser


def eval_help() -> str:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices["eval"].format_help().split())


def readme_grader_list() -> str:
    """The README's paragraph that lists the graders (from `Graders:` to the blank line)."""
    found = re.search(r"^Graders: .*?(?=\n\n)", (REPO / "README.md").read_text(), re.S | re.M)
    assert found, "README.md has no paragraph starting `Graders:`"
    return found.group(0)


@pytest.fixture
def shout(monkeypatch):
    """A grader registered for one test (as a new module would register it), gone after."""
    kind = GraderKind("shout", "shout[:x]", "is in capitals", lambda spec: lambda out, exp: Grade(out.isupper(), 1.0))
    kinds()  # the real modules are found first, as they would be
    monkeypatch.setitem(_KINDS, "shout", kind)
    return kind


def test_every_module_of_the_package_is_found_and_declares_graders():
    modules = {f"core.data.graders.{m.name}" for m in pkgutil.iter_modules(graders.__path__) if m.name[0] != "_"}
    assert {k.module for k in kinds()} == modules
    names = [k.name for k in kinds()]
    assert len(names) == len(set(names))
    assert {"exact", "labels", "contains", "not_contains", "regex", "json", "levenshtein", "chrf", "judge"} <= set(
        names
    )


def test_the_readme_grader_list_names_every_registered_grader():
    """A grader added without a line in the README fails here: each one's usage, as the help writes it."""
    text = readme_grader_list()
    assert [k.usage for k in kinds() if f"`{k.usage}`" not in text] == []


def test_the_cli_grader_help_names_every_registered_grader(shout):
    text = eval_help()
    assert [k.usage for k in kinds() if f"{k.usage}: {' '.join(k.help.split())}" not in text] == []
    assert "shout[:x]: is in capitals" in text  # produced from the registry, not written by hand


def test_a_registered_grader_parses_and_the_unknown_error_lists_the_registry(shout):
    assert parse_grader("shout")("HEY", None).passed and not parse_grader("SHOUT:x")("hey", None).passed
    with pytest.raises(TunelabError, match=r"unknown grader 'vibes' \(use chrf, .*shout.* or judge\)"):
        parse_grader("vibes")


def test_the_judge_is_declared_as_needing_a_model_and_only_an_eval_builds_it():
    judge = kind_of("judge:Is it polite?")
    assert judge is not None and judge.needs_model and judge.factory is None
    assert [k.name for k in kinds() if k.needs_model] == ["judge"]
    with pytest.raises(TunelabError, match="grader 'judge' grades with a model: only an eval can use it"):
        parse_grader("judge:Is it polite?")
    assert is_judge("judge:Is it polite?") and is_judge(" JUDGE :x") and is_judge("judge")
    assert not is_judge("judgement:x") and not is_judge("exact")


def test_a_grader_is_declared_once_with_a_name_its_usage_starts_with():
    with pytest.raises(ValueError, match="declared twice"):
        graders.register(GraderKind("exact", "exact", "again", lambda spec: lambda out, exp: Grade(True, 1.0)))
    with pytest.raises(ValueError, match="usage"):
        GraderKind("Loud", "loud", "x", lambda spec: lambda out, exp: Grade(True, 1.0))
    with pytest.raises(ValueError, match="factory exactly when it needs no model"):
        GraderKind("oracle", "oracle", "x", needs_model=False)
