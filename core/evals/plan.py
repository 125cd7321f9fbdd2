"""What an eval will do, decided and checked before anything is written: the request, its variants, the
items, graders and judge, and one cache-keyed call per variant, repeat and item. Bad input (a template
variable a row lacks, a damaged adapter, a sealed row an adapter trained on) fails here, so a refused eval
leaves the data dir as it was."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from core.data.datasets import HOLDOUT, SEALED, Dataset, Item, Selection
from core.data.graders import Grader, final_answer, parse_grader
from core.data.prompts import PromptVersion, item_prompt
from core.data.seals import check_seal, fixed_holdout, repeats_note, unvouched_note
from core.data.shots import Demonstrations
from core.data.templates import Template
from core.engine.adapterfiles import check_adapter
from core.engine.engines import Engines
from core.engine.modelref import folder_fingerprint, resolve
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.served import LISTED, shown
from core.errors import TunelabError
from core.evals.cache import cache_key
from core.evals.judge import Judge, is_judge, rubric_text
from core.history.store import new_id
from core.storage.schemas import EvalHeadline

NO_PROMPT = "no prompt"  # a variant's name when it has no prompt


@dataclass(frozen=True)
class Variant:
    name: str  # the prompt's name, or NO_PROMPT
    version: PromptVersion | None
    model: str = "demo"
    adapter: str | None = None

    @property
    def label(self) -> str:
        """`senti@4ab7b9 raw | demo+t18eb468a`: the prompt version (as `prompts show` takes it), its mode
        and its shots (`4-shot similar`), the model, and the adapter."""
        prompt = "no prompt"
        if self.version:
            shots = f" {self.version.shots_label}" if self.version.demonstrates else ""
            prompt = f"{self.name}@{self.version.id[:6]} {self.version.mode}{shots}"
        if not self.adapter:
            return f"{prompt} | {self.model}"
        run, at, step = Path(self.adapter).name.partition("@")  # run id or folder; a run's checkpoint: @step-N
        return f"{prompt} | {self.model}+{run[:9]}" + (
            f"@{step.removeprefix('step-').lstrip('0') or '0'}" if at else ""
        )


@dataclass
class EvalRequest:
    dataset: str
    split: str | None = "auto"
    grader: str = "exact"
    repeat: int = 1
    use_cache: bool = True
    limit: int | None = None
    expected: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    eval_fraction: float = HOLDOUT  # rows of a file with no splits held out as `eval`
    truncate: str = "left"  # a prompt over the model's context: cut its start (left), its end (right), or skip
    skip_unrenderable: bool = False  # a row the model's template cannot render: skipped (counted), not refused
    holdout: float = 0.0  # of the eval rows, this share sealed as `test` (a dataset's own test split: 0)
    judge: str | None = None  # the model (served or local) that grades `judge:RUBRIC` specs; else config's
    registered: list[str] | None = None  # a final look: the two cells chosen on dev, the only two it tests

    @classmethod
    def of(cls, summary: EvalHeadline) -> EvalRequest:
        """The request an eval ran with (its fields this version knows), to look at its items or run it again."""
        known = {f.name for f in fields(cls)}
        return cls(**{"dataset": summary.dataset, **{k: v for k, v in summary.request.items() if k in known}})

    @property
    def selection(self) -> Selection:
        """The rows it runs on, as a generation would name them."""
        return Selection(self.dataset, self.split, self.expected, self.mapping, self.eval_fraction, self.holdout)

    def load_data(self) -> Dataset:
        """The request's dataset, split as every eval, run and look at it splits it."""
        return self.selection.load()


@dataclass
class Call:
    variant: int
    item: int
    repeat: int
    prompt: Prompt
    params: GenParams
    key: str


@dataclass
class Plan:
    """Everything an eval will do, checked before anything is written: its items, graders and calls."""

    request: EvalRequest
    dataset: Dataset
    items: list[Item]
    answers: dict[str, tuple[str | None, ...]]  # per item: every accepted answer (a list's, or the one)
    graders: dict[str, Grader]
    adapter_paths: dict[str, str]
    calls: list[Call]
    judge: Judge | None = None
    notes: dict[int, list[str]] = field(default_factory=dict)  # per variant: said with its results


def plan_eval(root: Path, request: EvalRequest, variants: list[Variant], engines: Engines) -> Plan:
    """The dataset read, every template and adapter checked, the graders built and one call per variant,
    repeat and item keyed for the cache: any bad input fails here, before the eval exists."""
    if not variants:
        raise TunelabError("an eval needs at least one variant")
    if not 1 <= request.repeat <= 100:
        raise TunelabError(f"repeat must be between 1 and 100, got {request.repeat}")
    request = sealed_request(root, request)
    dataset = request.load_data()
    request = replace(request, split=dataset.resolve_split(request.split))
    items = dataset.split(request.split)[: request.limit]
    if not items:
        raise TunelabError(f"dataset {dataset.name} has no items in split '{request.split}'")
    unvouched = check_seal(root, [v.adapter for v in variants if v.adapter], items) if request.split == SEALED else []
    for v in variants:  # every template error surfaces before the first generation
        if v.version is not None:
            dataset.check_template(Template(v.version.template), items)
            dataset.check_template(Template(v.version.system), items)
    answers = {it.id: tuple(None if a is None else final_answer(a) for a in it.accepted) for it in items}
    labels = sorted({a for accepted in answers.values() for a in accepted if a is not None})
    specs = {c for it in items for c in it.checks or ()} | (
        {request.grader} if any(it.checks is None for it in items) else set()
    )
    graders = {spec: parse_grader(spec, labels) for spec in specs if not is_judge(spec)}
    judged = sorted(spec for spec in specs if is_judge(spec))
    for spec in judged:
        rubric_text(spec)  # an empty rubric or an oversized file fails here
    judge = _judge(root, request, engines, judged)
    request = replace(request, judge=judge.model if judge else request.judge)
    fallback = next((v.version.gen_params for v in variants if v.version), GenParams())
    # pickle weights are refused (or allowed) by the loader; a fingerprint reads no weights
    for model in dict.fromkeys(v.model for v in variants):
        engines(model).check(model)
    fingerprints = {v.model: engines(v.model).fingerprint(v.model) for v in variants}
    adapter_paths = {v.adapter: engines(v.model).adapter(root, v.model, v.adapter) for v in variants if v.adapter}
    for v in variants:  # a damaged adapter, or one for another base, is refused before the eval exists
        path = adapter_paths.get(v.adapter or "")
        if path is not None and engines(v.model) is engines.local:
            source = resolve(v.model, allow_pickle=True)
            check_adapter(Path(path), v.model, Path(source.location) if source.local else None)
    adapter_prints = {
        ref: path if path.startswith(LISTED) else folder_fingerprint(Path(path)) for ref, path in adapter_paths.items()
    }
    demos = _demonstrations(dataset, variants)
    calls: list[Call] = []
    for vi, v in enumerate(variants):
        base = v.version.gen_params if v.version else fallback
        for r in range(request.repeat):
            params = base if r == 0 or base.seed is None else replace(base, seed=base.seed + r)
            params = replace(params, truncate=request.truncate)
            for ii, item in enumerate(items):
                prompt = item_prompt(v.version, item, demos=demos[vi].for_item(item) if vi in demos else ())
                adapter_print = adapter_prints.get(v.adapter or "")
                engine = engines(v.model)
                key = cache_key(
                    fingerprints[v.model], adapter_print, prompt.to_dict(), params.to_dict(), engine.numerics
                )
                if not engine.cacheable(params):  # a sampled served call draws afresh
                    key += f":{new_id()}"
                calls.append(Call(vi, ii, r, prompt, params, key))
    notes = {vi: [unvouched_note(v.adapter)] for vi, v in enumerate(variants) if v.adapter in unvouched}
    for vi, chosen in demos.items():
        notes.setdefault(vi, []).append(chosen.note)
    if dataset.repeats:
        for vi in range(len(variants)):
            notes.setdefault(vi, []).append(repeats_note(dataset.repeats))
    return Plan(request, dataset, items, answers, graders, adapter_paths, calls, judge, notes)


def _demonstrations(dataset: Dataset, variants: list[Variant]) -> dict[int, Demonstrations]:
    """Each k-shot variant's demonstrations, drawn from the dataset's training rows only."""
    pool = dataset.split("train") if "train" in dataset.splits else []
    return {
        vi: Demonstrations(v.version.shots, pool, dataset.name)  # type: ignore[arg-type]
        for vi, v in enumerate(variants)
        if v.version is not None and v.version.demonstrates
    }


def sealed_request(root: Path, request: EvalRequest) -> EvalRequest:
    """The request with its dataset's stored seal (or the one it asks for, never sealed before)."""
    return replace(request, holdout=fixed_holdout(root, request))


def _judge(root: Path, request: EvalRequest, engines: Engines, specs: list[str]) -> Judge | None:
    """The judge of the `judge:` specs: the request's, else config.toml's `judge`; none needed, none made."""
    if not specs:
        return None
    model = request.judge
    if not model:
        from core.storage.config import load_config

        model = load_config().judge
    if not model:
        raise TunelabError(f"grader '{specs[0][:40]}' needs a judge model: give {{0}} MODEL", "judge")
    engine = engines(model)
    try:
        engine.check(model)
    except TunelabError as exc:
        raise TunelabError(f"{{0}} {model}: {exc}", "judge") from None
    return Judge(model, shown(model), engine, root, request.use_cache)
