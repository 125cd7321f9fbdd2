"""The workbench service: every use case the front ends offer, written once.

`tui.app` (the Textual app) and `tui.cli` (the command line) both call these functions; they only
gather input and show output. Nothing here imports Textual, and nothing imports torch at module level.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.data.datasets import Selection
from core.data.prompts import PromptStore, PromptVersion, item_prompt, read_prompt_file
from core.data.shots import Demonstrations, Shots, hash_of
from core.data.templates import Template
from core.engine.engines import Engine, HostEngine, engine_for, is_local
from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.served import shown
from core.errors import TunelabError
from core.evals.plan import NO_PROMPT, EvalRequest, Variant
from core.evals.runner import run_eval
from core.evals.stored import EvalRuns
from core.history.records import generation_record
from core.history.store import History
from core.storage.atomic import write_atomic
from core.storage.runfolders import BEST, concrete_ref, read_json
from core.storage.schemas import EvalHeadline, EvalSummary, GradedRow, RunStatus
from core.training.config import TrainConfig
from core.training.placement import Slot
from core.training.runs import LIVE, Runs
from core.workbench.adapters import Adapters
from core.workbench.compare import (
    CHECKPOINTS,
    DEMO_PROMPT,
    DEMO_PROMPT_NAME,
    DEMO_SHOTS_NAME,
    DEMO_SHOTS_PROMPT,
    MAX_SEEDS,
    SCORED_ITEMS,
    ComparePlan,
    CompareWatcher,
)
from core.workbench.run_control import RunControl
from core.workbench.sweeping import Sweeps
from core.workbench.verdicts import Comparison, Verdicts

EDITOR_FILE = "editor.json"
EDITOR_FIELDS = ("prompt_name", "template", "system", "mode", "params", "adapter")
EDITOR_MAX_BYTES = 4_000_000


@dataclass
class PromptRef:
    """A prompt for a variant: its name and version, and whether it came from a file not saved yet."""

    name: str
    version: PromptVersion
    new: bool = False


@dataclass
class Workbench:
    """The use cases over one data dir."""

    root: Path
    history: History = field(init=False)
    prompts: PromptStore = field(init=False)
    runs: Runs = field(init=False)
    evals: EvalRuns = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.history = History(self.root)
        self.prompts = PromptStore(self.root)
        self.runs = Runs(self.root)
        self.evals = EvalRuns(self.root)
        self.adapters = Adapters(self.root, self.runs)
        self.verdicts = Verdicts(self.root, self.evals, self.prompts, self.runs, self.adapters)
        self.control = RunControl(self.runs)
        self.sweeps = Sweeps(self.runs, self.control, self.start_run)

    def first_start(self) -> bool:
        """Nothing evaluated, trained or generated here yet: the front ends offer the demo comparison."""
        runs = self.runs.folder
        trained = runs.is_dir() and any(runs.iterdir())
        return not trained and not self.evals.list() and not self.history.recent(1)

    # -- prompts -------------------------------------------------------------------------------
    def remember_editor(self, state: dict[str, Any]) -> None:
        """The prompt on screen (name, template, system, mode, params, adapter), kept for the next start."""
        kept = {k: state[k] for k in EDITOR_FIELDS if k in state}
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / EDITOR_FILE, json.dumps(kept, ensure_ascii=False))

    def remembered_editor(self) -> dict[str, Any] | None:
        """What `remember_editor` kept, if it is there and sane (a large or foreign file is ignored)."""
        path = self.root / EDITOR_FILE
        try:
            if path.stat().st_size > EDITOR_MAX_BYTES:
                return None
        except OSError:
            return None
        state = read_json(path)
        if state is None:
            return None
        kept = {k: v for k, v in state.items() if k in EDITOR_FIELDS and isinstance(v, (str, dict))}
        return kept if isinstance(kept.get("template"), str) else None

    def prompt_ref(self, ref: str) -> PromptRef:
        """A `.toml` prompt file (saved as a version only once the command got past its checks) or a
        saved version (`name`, `name@N`, id prefix)."""
        path = Path(ref).expanduser()
        if path.suffix == ".toml" or path.is_file():
            name, version = read_prompt_file(path)
            return PromptRef(name, version, new=True)
        row, version = self.prompts.get(ref)
        return PromptRef(row["name"], version)

    def save_prompts(self, refs: Iterable[PromptRef]) -> None:
        for ref in refs:
            if ref.new:
                self.prompts.save(ref.name, ref.version)

    # -- variants and evals --------------------------------------------------------------------
    def variants(self, prompts: list[PromptRef | None], adapters: list[str | None], models: list[str]) -> list[Variant]:
        """Every prompt (None: the items as they are) x adapter (None: the base) x model: with "no prompt",
        one prompt and one adapter, the 2x2. A served model is a row of its own; its LoRAs are the server's, or
        tunelab's adapters loaded into it when its endpoint `loads_lora` (vLLM's runtime LoRA updates)."""
        pairs = self.adapters.adapter_pairs(adapters, models)
        out = [
            Variant(ref.name if ref else NO_PROMPT, ref.version if ref else None, shown(model), adapter)
            for adapter in adapters
            for ref in prompts
            for model in models
            if (adapter, model) in pairs
        ]
        if not out:
            raise TunelabError("give at least one {0} (or {1})", "prompt", "no_prompt")
        return out

    def run_eval(
        self,
        request: EvalRequest,
        variants: list[Variant],
        engine: Engine,
        *,
        new_prompts: Iterable[PromptRef] = (),
        on_row: Callable[[GradedRow], object] | None = None,
        on_progress: Callable[[int, int], object] | None = None,
        cancel: threading.Event | None = None,
    ) -> EvalSummary:
        return run_eval(
            self.root,
            request,
            variants,
            engine,
            on_row=on_row,
            on_progress=on_progress,
            cancel=cancel,
            on_start=lambda: self.save_prompts(new_prompts),  # saved once the eval exists, partial or not
        )

    def resume_eval(
        self, run_id: str, engine: Engine, on_progress: Callable[[int, int], object] | None = None
    ) -> EvalSummary:
        """Run a partial (cancelled, failed, interrupted) eval again to completion: what it finished comes from
        the cache, the rest is generated. The complete run is a new one; the partial one stays listed."""
        old = self.evals.load(run_id)
        if old.done:
            raise TunelabError(f"eval {old.id} is complete: nothing to resume")
        if not old.request:
            raise TunelabError(f"eval {old.id} was stored before evals could be resumed: run it again")
        try:
            request = replace(EvalRequest.of(old), use_cache=True)
        except TypeError as exc:
            raise TunelabError(f"eval {old.id}: stored request unreadable ({exc})") from None
        return self.run_eval(request, self.verdicts.variants_of(old), engine, on_progress=on_progress)

    def recover_evals(self) -> list[str]:
        """Evals whose process died before their summary, stored now as interrupted (listed, resumable)."""
        from core.evals.recovery import recover_evals

        return recover_evals(self.root)

    def baseline(self, summary: EvalHeadline) -> tuple[EvalSummary, int] | None:
        return self.evals.baseline_for(summary.dataset, summary.split)

    def train_on_prompt(self, adapter: str, prompt_id: str) -> str:
        """One key on the verdict screen: a LoRA with `adapter`'s settings, trained on the prompt it was
        evaluated with instead. Returns the new run's id."""
        _, version = self.prompts.get(prompt_id)
        config = self.runs.train_config(adapter)
        values = {**config.to_dict(), "template": version.template, "system": version.system, "mode": version.mode}
        return self.start_run(TrainConfig.from_dict(values))

    # -- single runs ---------------------------------------------------------------------------
    def fill_prompt(self, version: PromptVersion, selection: Selection) -> Prompt:
        """A template's variables filled from the first row of the workbench's dataset split (reads disk:
        call it off the UI loop)."""

        template, system = Template(version.template), Template(version.system)
        if not (template.variables or system.variables or version.demonstrates):
            return Prompt(version.template, version.system, version.mode)
        dataset = selection.load()
        items = dataset.split(selection.split)
        if not items:
            raise TunelabError(f"dataset {selection.dataset} has no rows to fill the template from")
        template.check(items[0].vars, source=items[0].where)
        system.check(items[0].vars, source=items[0].where)
        demos = []
        if version.demonstrates:  # from the training rows only, as an eval draws them
            pool = dataset.split("train") if "train" in dataset.splits else []
            demos = Demonstrations(version.shots, pool, dataset.name).for_item(items[0])  # type: ignore[arg-type]
        return item_prompt(version, items[0], demos=demos)

    def bootstrap(self, name: str, version: PromptVersion, request: EvalRequest, engine: Engine) -> PromptVersion:
        """DSPy's BootstrapFewShot for a k-shot version: its zero-shot form run on training rows (greedy, graded
        as `request` grades), and the first k rows it answered right (in a seeded order) become its listed
        demonstrations. The run is an eval in history, on training rows only."""
        shots = version.shots
        if shots is None or shots.k == 0:
            raise TunelabError("bootstrapping needs a k-shot version (shots = K)")
        bare = PromptVersion(version.template, version.system, version.mode, version.params)
        look = replace(request, split="train", limit=min(len(request.load_data().split("train")), 8 * shots.k))
        summary = self.run_eval(look, [Variant(name, bare)], engine, new_prompts=[PromptRef(name, bare, new=True)])
        passed = sorted(
            (i for i, score in summary.scores(0).items() if score.passed), key=lambda i: (hash_of(i, shots.seed), i)
        )
        if len(passed) < shots.k:
            raise TunelabError(f"bootstrapping found {len(passed)} training rows answered right, fewer than {shots.k}")
        return replace(
            version, shots=Shots(shots.k, "bootstrapped", shots.seed, tuple(passed[: shots.k]), shots.separator)
        )

    def generate_here(
        self,
        options: ModelOptions,
        prompt: Prompt,
        params: GenParams,
        *,
        emit: Callable[[str, int], None],
        cancel: threading.Event,
        on_loaded: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """A single run in this process (the headless CLI): the same model host the worker serves, or the
        endpoint that serves the model (its own timeouts bound it). `on_loaded`: the model is in, the
        generation starts."""
        local = HostEngine(options, on_loaded)
        engine = engine_for(options.model, local)
        if options.adapter and engine is not local:
            raise TunelabError("{0} applies to local models: a served model's LoRA is the server's to load", "adapter")
        adapter = engine.adapter(self.root, options.model, options.adapter) if options.adapter else None
        try:
            return engine.generate(options.model, adapter, prompt, params, emit, cancel).to_dict()
        finally:
            getattr(engine, "close", lambda: None)()

    def save_generation(
        self,
        *,
        model: str,
        prompt: Prompt,
        params: dict[str, Any],
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        streamed: str = "",
        rendered_prompt: str = "",
        adapter: str | None = None,
        named: PromptRef | None = None,
        save: bool = True,
    ) -> dict[str, Any]:
        """One history record for a single run (and its prompt version, when it has a name); returns it,
        with its id when saved."""
        record = generation_record(
            model=shown(model),  # an inline URL's credentials: never stored
            prompt=prompt.text,
            system=prompt.system,
            mode=prompt.mode,
            params=params,
            result=result,
            status=status,
            error=error,
            partial_output=streamed,
            rendered_prompt=rendered_prompt,
            adapter=adapter,
        )
        if named is not None:
            self.prompts.save(named.name, named.version)
            record.update(prompt_name=named.name, prompt_version=named.version.id, template=named.version.template)
        if save:
            record["id"] = self.history.add(record)
        return record

    # -- training ------------------------------------------------------------------------------
    def train_config(
        self,
        settings: dict[str, Any],
        *,
        options: ModelOptions,
        dataset: str,
        expected: str | None = None,
        mapping: dict[str, str] | None = None,
        prompt: PromptVersion | None = None,
        mode: str = "raw",
    ) -> TrainConfig:
        """A run's settings from the form or the flags, the model options and (optionally) the prompt
        version the examples are rendered with."""
        if options.adapter:
            raise TunelabError("{0} does not apply to training (a run trains a new adapter)", "adapter")
        if not is_local(options.model):
            raise TunelabError(
                f"{options.model} is served: training runs on a local model (the served one is a row of the verdict)"
            )
        values = {
            **settings,
            "model": options.model,
            "dataset": dataset,
            "expected": expected,
            "mapping": mapping or {},
            "mode": mode,
            "allow_pickle": options.allow_pickle,
            "trust_remote_code": options.trust_remote_code,
            "dtype": options.dtype,
            "device": options.device,
        }
        if values.get("report_dir"):  # absolute: the trainer, resumed from another folder, reports where it began
            values["report_dir"] = str(Path(values["report_dir"]).expanduser().resolve())
        if prompt is not None:
            values.update(template=prompt.template, system=prompt.system, mode=prompt.mode)
            if prompt.demonstrates:
                values["shots"] = prompt.shots.to_dict()  # type: ignore[union-attr]
        return TrainConfig.from_dict(values)

    def check_targets(self, config: TrainConfig) -> None:
        """Refuse unknown `target_modules` before a run exists, from the model's config on the meta device.
        Imports torch: for the headless CLI only (in the TUI the run's child says it, one line)."""
        if config.target_modules == "all-linear":
            return
        from core.engine.loading import module_names_from_config

        valid = module_names_from_config(config.model, config.trust_remote_code)
        if valid is not None:
            config.check_targets(valid)

    def start_run(
        self,
        config: TrainConfig,
        prompts: Iterable[PromptRef] = (),
        sweep: dict[str, Any] | None = None,
        slot: Slot | None = None,
    ) -> str:
        """Check the data, create the run folder and start its process (reads disk: off the UI loop); a sweep's
        run trains in its `slot` (core/training/placement.py)."""
        run_id = self.runs.create(config, sweep)
        self.save_prompts(prompts)
        self.runs.launch(run_id, slot=slot)
        return run_id

    def join_run(self, endpoint: str, node_rank: int) -> str:
        """This machine as node `node_rank` of the multi-node run waiting at `endpoint` (shared data dir)."""
        return self.runs.join(endpoint, node_rank)

    def resume_run(self, run_id: str, config: TrainConfig | None = None) -> str:
        run_id = self.runs.status(run_id).id
        self.runs.resume(run_id, config)
        return run_id

    def train_and_wait(
        self,
        config: TrainConfig,
        watcher: CompareWatcher | None = None,
        cancel: threading.Event | None = None,
        new_prompts: Iterable[PromptRef] = (),
        poll: float = 0.5,
    ) -> str:
        """Start a run and wait for it to finish (a comparison's LoRA); a run that does not end `done` is one
        line with its state and error. `cancel` asks the run to stop (it saves its adapter, and can resume)."""
        watcher = watcher or CompareWatcher()
        run_id = self.start_run(config, new_prompts)
        watcher.started(run_id)

        def each(status: RunStatus) -> None:
            watcher.step(status.step, status.total_steps or 0)
            if status.state in LIVE and cancel is not None and cancel.is_set():
                self.control.stop_run(run_id)
                raise TunelabError(f"comparison cancelled: training run {run_id} stops at its next step")

        status = self.control.wait_ended(run_id, each, poll)
        if status.state != "done":
            raise TunelabError(f"training run {run_id} {status.state}: {status.error or 'see its worker.log'}")
        return run_id

    # -- the whole comparison ------------------------------------------------------------------
    def compare_plan(
        self,
        request: EvalRequest,
        options: ModelOptions,
        prompts: list[PromptRef],
        adapters: Iterable[str] = (),
        *,
        train: bool = False,
        train_with_prompt: bool = False,
        seeds: int = 1,
        train_settings: dict[str, Any] | None = None,
        final: bool = False,
        checkpoint: str = "final",
        also: Iterable[str] = (),
    ) -> ComparePlan:
        """Every check of a comparison before anything runs: seeds, prompts to train with, each run's config.
        `final`: the cells are judged on the sealed test split (the LoRAs never train on it). `checkpoint`
        best: each run is judged by its checkpoint of highest pass rate (runs trained here score theirs).
        `also`: more models graded beside the one trained on (a served model's rows beside the LoRAs)."""
        if checkpoint not in CHECKPOINTS:
            raise TunelabError(f"{{0}} must be {' or '.join(CHECKPOINTS)}, got '{checkpoint}'", "checkpoint")
        for ref in adapters if checkpoint == "best" else ():
            self.chosen_checkpoint(ref)  # a run that scored none fails here, before anything trains
        if final:
            request = self.verdicts.final_request(request, adapters)
        if train_with_prompt and not prompts:
            raise TunelabError("{0} needs at least one {1}", "train_with_prompt", "prompt")
        if not 1 <= seeds <= MAX_SEEDS:
            raise TunelabError(f"{{0}} must be between 1 and {MAX_SEEDS}, got {seeds}", "seeds")
        best = checkpoint == "best"
        wanted = ([None] if train else []) + ([ref.version for ref in prompts] if train_with_prompt else [])
        configs = [
            self.train_config(
                {
                    **(train_settings or {}),
                    **({"eval_items": request.limit or SCORED_ITEMS, "eval_grader": request.grader} if best else {}),
                    "eval_fraction": request.eval_fraction,
                    "holdout": request.holdout,
                    "seed": seed,
                },
                options=replace(options, adapter=None),
                dataset=request.dataset,
                expected=request.expected,
                mapping=request.mapping,
                prompt=version,
            )
            for version in wanted
            for seed in range(seeds)
        ]
        models = [m for m in dict.fromkeys(also) if m != options.model]
        return ComparePlan(request, options, list(prompts), list(adapters), configs, seeds, checkpoint, models)

    def chosen_checkpoint(self, ref: str) -> str:
        """A run's best-scored checkpoint as a concrete ref (`RUN@step-000040`), which the stored eval keeps."""
        if "@" in ref or Path(ref).expanduser().is_dir():
            raise TunelabError(f"{{0}} best takes training run ids, not '{ref}'", "checkpoint")
        return concrete_ref(self.root, f"{ref}@{BEST}")

    def demo_plan(self, options: ModelOptions) -> ComparePlan:
        """The first five minutes: the demo prompt (raw) on the demo task, zero-shot and 4-shot (the same training
        rows in the prompt), a LoRA trained as is and one with the zero-shot prompt."""
        ref = PromptRef(DEMO_PROMPT_NAME, DEMO_PROMPT, new=True)
        request = EvalRequest("demo", "eval", "labels")
        plan = self.compare_plan(request, options, [ref], train=True, train_with_prompt=True)
        return replace(plan, prompts=[ref, PromptRef(DEMO_SHOTS_NAME, DEMO_SHOTS_PROMPT, new=True)])

    def compare(
        self,
        plan: ComparePlan,
        engine: Engine,
        watcher: CompareWatcher | None = None,
        cancel: threading.Event | None = None,
    ) -> Comparison:
        """Train the plan's LoRAs, then grade base and each LoRA with no prompt and each prompt, stored as one
        eval; the comparison of it. Cancelled: the eval is partial and gives no verdict."""
        watcher = watcher or CompareWatcher()
        adapters = list(plan.adapters)
        for index, config in enumerate(plan.train):
            watcher.training(config, index, len(plan.train))
            adapters.append(self.train_and_wait(config, watcher, cancel, plan.prompts))
        if plan.checkpoint == "best":
            adapters = [self.chosen_checkpoint(ref) for ref in adapters]
        variants = self.variants([None, *plan.prompts], [None, *adapters], [plan.options.model, *plan.also])
        paired = plan.paired  # a LoRA graded only with its own prompts
        variants = [v for v in variants if v.adapter not in paired or _version_id(v) in paired[str(v.adapter)]]
        watcher.evaluating([v.label for v in variants])
        summary = self.run_eval(
            plan.request,
            variants,
            engine,
            new_prompts=plan.prompts,
            on_row=watcher.row,
            on_progress=watcher.progress,
            cancel=cancel,
        )
        return self.verdicts.comparison(summary)


def _version_id(variant: Variant) -> str | None:
    return variant.version.id if variant.version else None
