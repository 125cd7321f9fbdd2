"""The graders tunelab knows, by name. Each module of this package declares its own (`@grader`, or `register`
for one that needs a model) and is found by itself: every module here whose name has no leading underscore is
imported, so a new grader is one new file and no list is edited. Parsing a spec, the unknown-grader error,
the CLI's `--grader` help and the README's grader list (a test) all read this registry."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.data.graders._base import Check, Grader, GraderSpec
from core.errors import TunelabError

PACKAGE = __name__.rpartition(".")[0]
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
Factory = Callable[[GraderSpec], Check]


@dataclass(frozen=True)
class GraderKind:
    """One grader: its spec name, its usage as the docs and help write it (`levenshtein[:0.8]`), one line
    of help (what passes), and its factory; a grader that needs a model has none here, as no model is at
    hand: it is built where one is (the judge: core/evals/judge.py) and `parse_grader` refuses it."""

    name: str
    usage: str
    help: str
    factory: Factory | None = None
    needs_model: bool = False
    module: str = ""

    def __post_init__(self) -> None:
        if not NAME.match(self.name) or not self.usage.startswith(self.name):
            raise ValueError(f"grader '{self.name}': a lowercase name that its usage '{self.usage}' starts with")
        if (self.factory is None) != self.needs_model:
            raise ValueError(f"grader '{self.name}': a factory exactly when it needs no model")


_KINDS: dict[str, GraderKind] = {}


def register(kind: GraderKind) -> GraderKind:
    """Declare a grader; two with one name are a mistake, refused when the second module loads."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"grader '{kind.name}' is declared twice ({known.module} and {kind.module})")
    _KINDS[kind.name] = kind
    return kind


def grader(name: str, usage: str, help: str) -> Callable[[Factory], Factory]:
    """Declare the decorated factory as grader `name`: it reads a `GraderSpec` (refusing a bad arg with a
    `TunelabError`) and returns the check, (output, expected) -> Grade."""

    def declare(factory: Factory) -> Factory:
        register(GraderKind(name, usage, help, factory, module=factory.__module__))
        return factory

    return declare


@functools.cache
def _discover() -> None:
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{PACKAGE}.{module.name}")


def kinds() -> list[GraderKind]:
    """Every grader, by name, those that need a model last."""
    _discover()
    return sorted(_KINDS.values(), key=lambda k: (k.needs_model, k.name))


def spec_name(spec: str) -> str:
    """The grader a spec names: `Levenshtein : 0.9` is `levenshtein`."""
    return spec.partition(":")[0].strip().lower()


def kind_of(spec: str) -> GraderKind | None:
    _discover()
    return _KINDS.get(spec_name(spec))


def parse_grader(spec: str, labels: Iterable[str] = ()) -> Grader:
    """The grader a spec describes, its arg checked now (a bad one is refused before anything runs)."""
    name, arg = spec_name(spec), spec.partition(":")[2]
    kind = kind_of(spec)
    if kind is None:
        names = [k.name for k in kinds()]
        raise TunelabError(f"unknown grader '{name}' (use {', '.join(names[:-1])} or {names[-1]})")
    if kind.factory is None:
        raise TunelabError(f"grader '{name}' grades with a model: only an eval can use it (with --judge)")
    return Grader(spec, kind.factory(GraderSpec(spec, name, arg, tuple(labels))))
