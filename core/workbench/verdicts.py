"""An eval as a comparison: the grid, the verdict or why there is none, the LoRAs' costs and the notes for
a LoRA used with a prompt it was not trained with; an item's input and the shareable report (the workbench's
`verdicts` service). Reads run folders: off the UI loop."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from core.data.datasets import SEALED
from core.data.prompts import PromptStore
from core.data.seals import check_seal
from core.engine.engines import is_local
from core.engine.served import endpoint
from core.errors import TunelabError
from core.evals.grid import Grid, build_grid
from core.evals.plan import NO_PROMPT, EvalRequest, Variant, sealed_request
from core.evals.stats import PLANNED_DISCORDANCE, detectable, items_needed
from core.evals.stored import EvalRuns
from core.evals.verdict import Verdict, verdict
from core.storage.runfolders import ADAPTER_CONFIG, CHECKPOINT, WEIGHTS, run_dir_of, scores
from core.storage.schemas import EvalHeadline, EvalSummary, EvalVariant
from core.training.runs import Runs
from core.training.sweeps import members, sweep_of
from core.workbench.adapters import ELSEWHERE, Adapters
from core.workbench.traces import derived_info


@dataclass(frozen=True)
class Foreign:
    """A LoRA cell whose prompt is not the one the LoRA was trained with."""

    label: str
    adapter: str
    prompt_id: str | None
    warning: str


@dataclass(frozen=True)
class Tried:
    """The configurations evaluated on one eval's items (counted from the stored evals that share items with
    it, whatever split or file they named): the selection a verdict on those items is adjusted for."""

    versions: int  # prompt versions
    loras: int  # LoRA runs (seeds and checkpoints are runs of their own)
    evals: int  # on the sealed test split: its looks (this one and every earlier one)
    sealed: bool = False
    models: int = 1  # models (local or served): each multiplies the configurations

    @property
    def count(self) -> int:
        """Best prompt against best LoRA on the best model: every combination could have been the one kept;
        on the sealed split, every look could have been the one reported."""
        return self.evals if self.sealed else max(1, self.versions) * max(1, self.loras) * max(1, self.models)

    def note(self) -> str:
        if self.sealed:
            return (
                f"the sealed test split has had {self.evals} looks: it is no longer clean (the p-value is "
                f"adjusted for {self.evals} looks; a fresh test split gives an answer without that)"
            )
        models = f", on {self.models} models" if self.models > 1 else ""
        return (
            f"{self.versions} prompt version(s) and {self.loras} LoRA run(s){models} were evaluated on these items "
            f"({self.evals} eval(s)): the p-value is adjusted for keeping the best; an answer without that "
            "selection needs items nothing was tuned on (a held-out test split, judged once)"
        )


@dataclass
class Comparison:
    """One eval as a comparison: its grid, the verdict (or why there is none) and the foreign-prompt notes."""

    summary: EvalSummary
    grid: Grid
    verdict: Verdict | None
    why_none: str
    foreign: list[Foreign]
    tried: Tried | None = None  # what was evaluated on these items, this eval and earlier ones

    @property
    def warnings(self) -> list[str]:
        selection = [self.tried.note()] if self.tried is not None and self.tried.count > 1 else []
        registered = self.summary.request.get("registered")
        if registered and self.verdict is not None and len(self.grid.cells) > 2:
            selection.append(
                f"this look tests the two cells chosen on the dev rows ({' and '.join(registered)}); "
                "the other cells are shown as description, not tested"
            )
        return [*selection, *(f.warning for f in self.foreign)]

    def output(self, variant: int, item_id: str) -> tuple[bool, str] | None:
        """A variant's result on an item: passed (over its repeats) and its majority output on one line."""
        score = self.summary.scores(variant).get(item_id)
        return None if score is None else (score.passed, " ".join(score.majority.split()))

    def expected(self) -> dict[str, str]:
        """Each item's expected answer (items without one are left out)."""
        return {
            item_id: str(score.expected)
            for items in self.summary.items.values()
            for item_id, score in items.items()
            if score.expected is not None
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "grid": {
                "rows": [asdict(r) for r in self.grid.rows],
                "columns": [asdict(c) for c in self.grid.cols],
                "cells": [asdict(c) for c in self.grid.all()],
            },
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "tried": asdict(self.tried) if self.tried else None,
            "warnings": self.warnings,
        }


class Verdicts:
    """An eval as a comparison, the counts of what was tried, the final look's plan, an item's input and the
    report: the workbench's `verdicts` service (reads run folders: off the UI loop)."""

    def __init__(self, root: Path, evals: EvalRuns, prompts: PromptStore, runs: Runs, adapters: Adapters) -> None:
        self.root, self.evals, self.prompts, self.runs, self.adapters = root, evals, prompts, runs, adapters

    def comparison(self, summary: EvalSummary) -> Comparison:
        """The eval as the verdict screen and `compare --json` show it: the grid (LoRAs trained alike with
        other seeds in one row, each with what it was trained on and cost), the verdict, or why there is none,
        and a warning for each LoRA used with a prompt it was not trained with. Reads run folders: off the loop."""
        labels = {
            self._form(v): f"{v.prompt_name}@{v.prompt_id[:6]} {v.mode}"
            for v in summary.variants
            if v.prompt_id and v.template is not None
        }
        loras = {v.adapter: self.lora_info(v.adapter, labels) for v in summary.variants if v.adapter}
        grid = build_grid(
            summary, loras, {v.model: served_cost(v.model) for v in summary.variants if not is_local(v.model)}
        )
        judged, why = None, ""
        if not summary.done:
            why = f"Eval {summary.status}: a partial eval gives no verdict and cannot be a baseline."
        elif len(grid.cells) < 2:
            why = "One cell: a verdict needs two to compare."
        tried = self.tried_on(summary)
        if not why:
            judged = verdict(summary, grid, tried.count, summary.request.get("registered"))
        return Comparison(summary, grid, judged, why, self._foreign_prompts(summary, loras), tried)

    def sizing(self, request: EvalRequest, points: float, discordance: float = PLANNED_DISCORDANCE) -> dict[str, Any]:
        """Before a comparison: the items a true difference of `points` needs (80% power, 5% level, with
        that share of items discordant), and the smallest difference the request's items can show."""

        if not 0 < points <= 100:
            raise TunelabError(f"{{0}} must be a difference in points above 0 and at most 100, got {points}", "plan")
        if not 0 < discordance <= 1:
            raise TunelabError(f"{{0}} must be above 0 and at most 1, got {discordance}", "discordance")
        dataset = sealed_request(self.root, request).load_data()
        n = len(dataset.split(request.split)[: request.limit])
        return {
            "points": points,
            "discordance": discordance,
            "items_needed": items_needed(points / 100, max(discordance, points / 100)),
            "items": n,
            "detectable_points": round(detectable(n, discordance) * 100, 1),
        }

    def final_plan(self, summary: EvalSummary) -> tuple[EvalRequest, list[Variant]]:
        """The cells of a dev eval, to be judged once on its dataset's sealed test split."""
        request = self.final_request(EvalRequest.of(summary), [v.adapter for v in summary.variants if v.adapter])
        dev = self.comparison(summary).verdict  # the two cells it chose, registered before the look
        registered = [dev.winner_label, dev.other_label] if dev is not None else None
        return replace(request, registered=registered), self.variants_of(summary)

    def final_request(self, request: EvalRequest, adapters: Iterable[str]) -> EvalRequest:
        """`request` on its dataset's sealed rows (the stored seal, or the fraction it asks for), refused when
        there are none or when an adapter trained on one of them (its ledger says)."""
        request = replace(sealed_request(self.root, request), split=SEALED)
        dataset = request.load_data()
        if not dataset.sealed:
            raise TunelabError(
                f"dataset {request.dataset} has no sealed test split: give {{0}} FRACTION (carved from its "
                "eval rows by content, the same on every run) or use a dataset with a test split",
                "holdout",
            )
        check_seal(self.root, adapters, dataset.split(SEALED)[: request.limit])
        return request

    def variants_of(self, summary: EvalHeadline) -> list[Variant]:
        """An eval's variants as it ran them, their prompt versions read back from the store."""
        return [
            Variant(
                v.prompt_name or NO_PROMPT,
                self.prompts.get(v.prompt_id)[1] if v.prompt_id else None,
                v.model or "demo",
                v.adapter,
            )
            for v in summary.variants
        ]

    def tried_on(self, summary: EvalHeadline) -> Tried:
        """What the stored evals (and this one) ran on the same items: evals whose items overlap this one's
        (their sketches meet), on the same side of the seal; evals from before sketches: the same dataset
        content and split."""
        sealed = summary.split == SEALED
        same = [e for e in self.evals.list() if (e.split == SEALED) == sealed and _shares_items(e, summary)]
        if sealed:  # every look is an eval: the ones up to this one count
            same = [e for e in same if e.created_at <= summary.created_at]
        variants = [v for e in [*same, summary] for v in e.variants]
        versions = {v.prompt_id for v in variants if v.prompt_id}
        loras = {v.adapter for v in variants if v.adapter}
        models = {v.model for v in variants if v.model}
        evals = len({e.id for e in [*same, summary]})
        return Tried(len(versions), self._loras_tried(loras), evals, sealed, max(1, len(models)))

    def _loras_tried(self, refs: set[str]) -> int:
        """LoRAs looked at: a checkpoint picked by pass rate (`RUN@step-…`) counts every checkpoint its run
        scored, as each was a LoRA tried on these items; each other run of a judged run's sweep counts once
        (the pick among them was made on dev); any other adapter counts once."""
        picked: dict[str, set[str]] = {}
        for ref in refs:
            run_id, _, which = ref.partition("@")
            if which and CHECKPOINT.match(which):
                picked.setdefault(run_id, set()).add(which)
        plain = len(refs) - sum(len(steps) for steps in picked.values())
        scored = sum(max(len(steps), self._scored(run_id)) for run_id, steps in picked.items())
        return plain + scored + self._sweep_mates(refs)

    def _sweep_mates(self, refs: set[str]) -> int:
        """The runs of the judged runs' sweeps that were not judged themselves."""
        judged, sweeps = set(), set()
        for ref in refs:
            try:
                run_id = self.runs.path(ref.partition("@")[0]).name
            except TunelabError:
                continue  # a folder or a served model's LoRA: no sweep
            judged.add(run_id)
            sweep = sweep_of(self.runs, run_id)
            if sweep is not None:
                sweeps.add(sweep["id"])
        return sum(len(set(members(self.runs, sweep_id)) - judged) for sweep_id in sweeps)

    def _scored(self, run_id: str) -> int:
        try:
            return len(scores(self.runs.path(run_id)))
        except TunelabError:
            return 0

    def _form(self, v: EvalVariant) -> str:
        """What a variant's prompt renders items with (template, system prompt, demonstrations), as a run's
        config keeps it."""
        if not v.template:
            return prompt_form("", "")
        try:
            version = self.prompts.get(v.prompt_id)[1] if v.prompt_id else None
        except TunelabError:
            version = None  # a version gone from the store: its template alone
        if version is None:
            return prompt_form(v.template, "")
        return prompt_form(
            v.template, version.system, version.shots.to_dict() if version.shots and version.demonstrates else None
        )

    def _foreign_prompts(self, summary: EvalSummary, loras: dict[str, dict[str, Any]]) -> list[Foreign]:
        out = []
        for v in summary.variants:
            info = loras.get(v.adapter or "")
            if not info or info.get("template") is None or info["form"] == self._form(v):
                continue
            if v.prompt_id in info.get("stages", {}):  # a prompt optimized on this LoRA (p->w->p): by design
                continue
            how = "as is (no prompt)" if not info["template"] else f"with {info['trained_on']}"
            used = "this prompt" if v.template else "no prompt"
            hint = " (t trains one on it; compare --train-with-prompt)" if v.template else ""
            out.append(
                Foreign(
                    v.label,
                    str(v.adapter),
                    v.prompt_id,
                    f"{v.label}: the LoRA was trained {how}, here used with {used}{hint}",
                )
            )
        return out

    def lora_info(self, adapter: str, prompt_labels: dict[str, str] | None = None) -> dict[str, Any]:
        """What the verdict needs of a LoRA: its row group (runs alike but for the seed share one), what it was
        trained on, the template ('' as is; None from elsewhere) and its cost. Damaged runs say less, never fail."""
        try:
            path = self.adapters.adapter_path(adapter)
        except TunelabError:
            return {"trained_on": "missing", "template": None, "group": adapter, "cost": {}}
        weights = [path / name for name in (ADAPTER_CONFIG, *WEIGHTS) if (path / name).is_file()]
        cost: dict[str, Any] = {"adapter_mb": round(sum(f.stat().st_size for f in weights) / 2**20, 2)}
        run_dir = run_dir_of(path)  # its final adapter or a checkpoint (whose optimizer state is no cost)
        if run_dir is not None and run_dir.resolve().parent != self.runs.folder.resolve():
            run_dir = None  # a folder named like a run's, elsewhere
        config = self.runs.config(run_dir.name).get("config") if run_dir is not None else None
        if run_dir is None or not isinstance(config, dict):
            return {"trained_on": ELSEWHERE, "template": None, "group": str(path), "cost": cost}
        status = self.runs.status(run_dir.name)
        spent = {"train_s": status.train_s, "device": status.device, "trainable_params": status.trainable_params}
        cost.update({k: v for k, v in spent.items() if v is not None})
        template = str(config.get("template") or "")
        form = prompt_form(template, str(config.get("system") or "") if template else "", config.get("shots"))
        trained_on = "as is"
        if template:
            trained_on = (prompt_labels or {}).get(form) or f"prompt '{template.splitlines()[0][:24]}'"
        group = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
        derived = derived_info(self.root, str(config.get("dataset") or ""))  # p->w, or distilled from a prompt
        if derived:
            metrics, _ = self.runs.metrics(status.id)
            cost["train_tokens"] = next((m["tokens_seen"] for m in metrics[::-1] if m.get("tokens_seen")), None)
        return {
            "trained_on": trained_on,
            "template": template,
            "form": form,
            "group": group,
            "run": status.id,
            "seed": config.get("seed"),
            "cost": cost,
            **derived,
        }

    def item_input(self, summary: EvalSummary, item_id: str) -> str:
        """An eval item's input as the dataset holds it now (fields, or chat turns), for the verdict's item
        view; one line saying so when the dataset changed or is gone (reads disk: off the UI loop)."""
        try:
            dataset = replace(EvalRequest.of(summary), dataset=summary.dataset).load_data()
        except (OSError, TunelabError, TypeError) as exc:
            return f"(input not available: {exc})"
        item = next((it for it in dataset.items if it.id == item_id), None)
        if item is None:
            return f"(item {item_id} is no longer in {summary.dataset})"
        changed = "" if dataset.sha256 == summary.dataset_sha256 else "(the dataset changed since this eval)\n"
        if item.messages:
            return changed + "\n".join(f"{m.get('role')}: {m.get('content')}" for m in item.messages)
        return changed + "\n".join(f"{k}: {v}" for k, v in item.vars.items())

    def write_report(self, comparison: Comparison, path: Path) -> Path:
        """The comparison as a shareable .md or .html file, with each trained LoRA's loss curve."""
        from core.evals.report import write_report

        if comparison.verdict is None:
            raise TunelabError(f"{{0}} {path}: {comparison.why_none}", "report")
        curves = {}
        for row in comparison.grid.rows:
            for adapter in row.adapters:
                try:
                    rows, _ = self.runs.metrics(adapter.partition("@")[0])
                except TunelabError:
                    continue  # a folder from elsewhere: no curve
                points = [(int(m["step"]), float(m["loss"])) for m in rows if m.get("loss") is not None]
                if points:
                    curves[f"{Path(adapter).name[:10]} {row.trained_on}"] = points[:: max(1, len(points) // 500)]
        return write_report(
            path, comparison.summary, comparison.grid, comparison.verdict.sentence, comparison.warnings, curves
        )


def _shares_items(one: EvalHeadline, other: EvalHeadline) -> bool:
    if one.item_sketch and other.item_sketch:
        return not set(one.item_sketch).isdisjoint(other.item_sketch)
    return one.dataset_sha256 == other.dataset_sha256 and one.split == other.split


def prompt_form(template: str, system: str, shots: dict[str, Any] | None = None) -> str:
    """A prompt's rendering, as a key: two versions that differ only in the system prompt, or in their
    demonstrations, are two prompts."""
    return json.dumps([template, system, shots or None], sort_keys=True)


def served_cost(model: str) -> dict[str, Any]:
    """A served row's endpoint and prices; an endpoint gone from the config since is named as it was."""
    try:
        return endpoint(model).cost()
    except TunelabError:
        return {"served": model}
