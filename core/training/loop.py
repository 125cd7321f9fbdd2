"""The training loop inside a run's child process: LoRA on the base model, metrics to JSONL,
status to an atomically replaced file, resumable checkpoints, stop-and-save at a step boundary.

Under torchrun (WORLD_SIZE > 1) each rank trains on its share of every step's batches inside DDP;
stop and cancel flags are all-reduced so every rank stops at the same step, and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from core.errors import TunelabError
from core.faults import fault_int
from core.storage import runfolders
from core.storage.atomic import remove_path, write_atomic
from core.storage.paths import ensure_private_dir
from core.training import runs
from core.training.allocator import peak_rss_mb
from core.training.config import TrainConfig
from core.training.reporting import MetricsLog

STATUS_EVERY_S = 0.5  # how often status.json is rewritten (the TUI watches the folder); metrics has every step
NO_SCORE = "no pass rate: the run has no eval rows to score (eval_dataset gives some)"


class Control:
    """Stop (STOP file or SIGTERM: save, then exit) and cancel (CANCEL file: exit, drop checkpoints)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.signalled = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum, frame) -> None:
        self.signalled = True

    @property
    def cancel(self) -> bool:
        return (self.run_dir / runfolders.CANCEL_FILE).exists()

    @property
    def stop(self) -> bool:
        return self.signalled or (self.run_dir / runfolders.STOP_FILE).exists()


class _Silent:
    """Status for ranks other than 0: only rank 0 writes the run's files."""

    def update(self, **fields: Any) -> None:
        pass


def lr_factor(schedule: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def memory_setup(model: Any, quantize: str | None, gradient_checkpointing: bool) -> Any:
    """The base prepared for LoRA on real sizes, before peft wraps it (the bench measures this same step)."""
    if quantize:  # QLoRA: norms in float32, inputs carrying grad, checkpointing as peft prepares it
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:  # peft needs the inputs to carry grad for checkpointed blocks
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def packing_holds(model: Any, data: list, pad_id: int, cfg: TrainConfig, device: str) -> bool:
    """Whether this model's attention keeps packed examples apart (transformers reads the restarting
    position ids as a block mask for sdpa, eager and flex attention, when there is no attention mask and no
    cache): one batch's loss packed must equal its loss padded. A model whose attention mixes them trains
    padded, as before."""
    import torch

    from core.training.data import model_inputs

    batch = list(range(min(len(data), cfg.batch_size)))

    def loss(packed: bool) -> float:
        inputs, _ = model_inputs(data, batch, pad_id, cfg.max_seq_len, packed)
        return float(model(**{k: v.to(device) for k, v in inputs.items()}, use_cache=False).loss.item())

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            padded, packed = loss(False), loss(True)
    finally:
        model.train(was_training)
    return abs(packed - padded) <= 1e-4 * max(1.0, abs(padded))


class Distributed:
    """One process (the default) or a torchrun rank: collectives become no-ops when alone."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.dist = dist
        if self.world > 1:
            import torch

            if torch.cuda.is_available():  # one GPU per rank: "cuda" then means this rank's device
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def any(self, *flags: bool) -> list[bool]:
        if self.world == 1:
            return list(flags)
        import torch

        t = torch.tensor([float(f) for f in flags])
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def mean_and_sum(self, mean: float, total: int) -> tuple[float, int]:
        if self.world == 1:
            return mean, total
        import torch

        t = torch.tensor([mean, float(total)], dtype=torch.float64)
        self.dist.all_reduce(t)
        return t[0].item() / self.world, int(t[1].item())

    def close(self) -> None:
        if self.world > 1:
            self.dist.destroy_process_group()


def train(run_dir: Path, resume: bool = False) -> None:
    dist = Distributed()
    try:
        _train(run_dir, resume, dist)
    finally:
        dist.close()


def _train(run_dir: Path, resume: bool, dist: Distributed) -> None:
    session = _Session(run_dir, dist)
    if resume:
        session.restore()
    session.run()


class _Session:
    """One run's life in this process: the model and its LoRA, the optimizer, the data and the position in
    it (step, epoch, batch, tokens), written to the run folder as it goes. Torch is imported on creation."""

    def __init__(self, run_dir: Path, dist: Distributed) -> None:
        import torch

        self.run_dir, self.dist, self.torch = run_dir, dist, torch
        self.record = json.loads((run_dir / runfolders.CONFIG_FILE).read_text(encoding="utf-8"))
        self.cfg = cfg = TrainConfig.from_dict(self.record["config"])
        self.status = runs.StatusWriter(run_dir) if dist.main else _Silent()
        self.control = Control(run_dir)
        self.checkpoints = run_dir / runfolders.CHECKPOINTS
        self.status.update(state="loading")
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self._load()
        self._attach_lora()
        per_step = cfg.grad_accum * dist.world  # batches one optimizer step consumes, over all ranks
        self.per_step = per_step
        self.total = cfg.max_steps or math.ceil(cfg.epochs * cfg.steps_per_epoch(len(self.train_data), dist.world))
        try:  # the fused kernel (CPU, CUDA, MPS) is what HF Trainer picks by default, and faster
            self.optimizer = torch.optim.AdamW(self.trainable, lr=cfg.learning_rate, weight_decay=0.0, fused=True)
        except (RuntimeError, ValueError):
            self.optimizer = torch.optim.AdamW(self.trainable, lr=cfg.learning_rate, weight_decay=0.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_factor(cfg.schedule, int(cfg.warmup_ratio * self.total), self.total)
        )
        self.step, self.epoch, self.position, self.tokens_seen = 0, 0, 0, 0
        self.diverged_at = math.nan
        self.saved_at = -1  # the step of the last checkpoint written

    def _load(self) -> None:
        """The base model and both splits' examples, and what they resolved to, in run_config.json."""
        import peft
        import transformers

        from core.engine.loading import linear_module_names, load
        from core.engine.modelref import fingerprint
        from core.engine.prompt import FOLD_NOTE, folds_system
        from core.training.data import examples
        from core.training.evaluation import Evaluation
        from core.training.scoring import Scorer
        from core.training.splits import eval_rows, train_rows

        cfg, dist = self.cfg, self.dist
        self.loaded = loaded = load(cfg.model, **cfg.options.load_kwargs(), quantize=cfg.quantize)
        linear = linear_module_names(loaded.model)
        cfg.check_targets(linear)
        self.train_data = examples(loaded, cfg, trained := train_rows(cfg, dataset := cfg.load_data()))
        scored_rows = eval_rows(cfg, dataset)[0]
        self.eval_data = examples(loaded, cfg, scored_rows, pool=trained)
        scorer = Scorer(loaded, cfg, scored_rows) if cfg.eval_items and scored_rows else None
        notes = self.record.setdefault("notes", [])
        if cfg.eval_items and not scored_rows and NO_SCORE not in notes:
            notes.append(NO_SCORE)
        if cfg.system and cfg.mode != "raw" and folds_system(loaded.tokenizer) and FOLD_NOTE not in notes:
            notes.append(FOLD_NOTE)  # the front ends say it once (`tunelab train` on stderr)
        self.pad_id = loaded.tokenizer.pad_token_id
        self.evaluation = Evaluation(cfg, self.eval_data, scorer, self.pad_id, loaded.device)
        self.packed = cfg.packing and packing_holds(loaded.model, self.train_data, self.pad_id, cfg, loaded.device)
        versions = {"torch": self.torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
        self.record["resolved"] = {
            "device": loaded.device,
            "dtype": loaded.dtype,
            "model_location": loaded.source.location,
            "linear_modules": linear,
            "train_examples": len(self.train_data),
            "eval_examples": len(self.eval_data),
            "world_size": dist.world,
            "packing": self.packed,
            "model_fingerprint": fingerprint(loaded.source),
            "dataset_sha256": dataset.sha256,
            "versions": versions,
        }
        if dist.main:
            write_atomic(self.run_dir / runfolders.CONFIG_FILE, json.dumps(self.record, indent=2))

    def _attach_lora(self) -> None:
        from peft import LoraConfig, get_peft_model

        from core.training.dropout import cheapen_lora_dropout

        cfg = self.cfg
        model = memory_setup(self.loaded.model, cfg.quantize, cfg.gradient_checkpointing)
        self.model = get_peft_model(
            model,
            LoraConfig(
                use_dora=cfg.use_dora,
                use_rslora=cfg.use_rslora,
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                task_type="CAUSAL_LM",
                target_modules=cfg.target_modules if cfg.target_modules == "all-linear" else list(cfg.target_modules),
                modules_to_save=list(cfg.modules_to_save) or None,
            ),
        )
        cheapen_lora_dropout(self.model, self.loaded.device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.forward: Any = self.model  # the model, or its DDP wrapper (which the optimizer step goes through)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(self.model)

    def restore(self) -> None:
        """Adapter, optimizer, scheduler, RNGs and data position from the last checkpoint."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        latest = runs.latest_checkpoint(self.run_dir)
        if latest is None:
            raise TunelabError("nothing to resume: the run has no checkpoint")
        set_peft_model_state_dict(self.model, load_file(latest / "adapter_model.safetensors"))
        state = self.torch.load(latest / "trainer_state.pt", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.torch.set_rng_state(state["torch_rng"])
        random.setstate((state["py_rng"][0], tuple(state["py_rng"][1]), state["py_rng"][2]))
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.tokens_seen = state["tokens_seen"]
        if self.dist.main:  # steps logged after that checkpoint are trained again: their rows go, never twice
            runs.trim_metrics(self.run_dir, self.step)
            self.evaluation.restore(self.run_dir)

    def save_checkpoint(self) -> Path:
        ensure_private_dir(self.checkpoints)  # a link planted in its place is refused
        final = self.checkpoints / runfolders.checkpoint_name(self.step)
        tmp = self.checkpoints / f".tmp-{final.name}"
        remove_path(tmp)  # a leftover, or a link planted there: never written through
        self.model.save_pretrained(str(tmp))
        self.torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": self.torch.get_rng_state(),
                "py_rng": list(random.getstate()),
                "step": self.step,
                "epoch": self.epoch,
                "position": self.position,
                "tokens_seen": self.tokens_seen,
            },
            tmp / "trainer_state.pt",
        )
        remove_path(final)
        os.replace(tmp, final)
        self.saved_at = self.step
        return final

    def run(self) -> None:
        """Steps until the total, a stop (saved), a cancel (checkpoints removed) or a non-finite loss."""
        from core.training.data import length_grouped_batches

        cfg, dist = self.cfg, self.dist
        self.status.update(state="running", step=self.step, total_steps=self.total, early_stop=None)
        self.began = status_written = time.monotonic()
        self.start_step = self.step
        nan_at = fault_int("nan_loss_at_step")  # a test's divergence, the same on every CPU
        hold_at = fault_int("hold_at_step")  # a test's stop lands at a known step, however fast the host
        self.model.train()
        ended_early = False  # the dev metric plateaued (early_stop): the run ends done, before its last step
        with MetricsLog(self.run_dir, cfg, dist.main) as metrics:
            while self.step < self.total and not ended_early:
                batches = length_grouped_batches(self.train_data, cfg.batch_size, cfg.seed + self.epoch)
                while self.position + self.per_step <= len(batches) and self.step < self.total:
                    if self._stopped():
                        return
                    row = self._one_step(batches, nan_at)
                    if row is None:  # its row first, then the state: a reader never sees one without the other
                        metrics.write({"step": self.step, "loss": None, "grad_norm": None})
                        self.status.update(
                            state="diverged",
                            step=self.step,
                            error=f"the loss became {self.diverged_at} at step {self.step}: lower --learning-rate "
                            "(resume starts again from the last checkpoint)",
                        )
                        return
                    if dist.main:
                        row.update(self.evaluation.at(self.model, self.step, self.total))
                    ended_early = self.evaluation.plateaued(row, dist)
                    metrics.write(row)
                    saved = {}
                    if (cfg.save_every and self.step % cfg.save_every == 0 or self.evaluation.keeps(row)) and dist.main:
                        saved = {"last_checkpoint": self.save_checkpoint().name}  # a scored step is kept
                        for step in self.evaluation.superseded():  # a best so far, bettered: no longer kept
                            remove_path(self.checkpoints / runfolders.checkpoint_name(step))
                    due = time.monotonic() - status_written >= STATUS_EVERY_S
                    if saved or "eval_loss" in row or self.step == self.total or due:
                        self.status.update(
                            step=self.step,
                            epoch=row["epoch"],
                            loss=row["loss"],
                            eval_loss=row.get("eval_loss"),
                            eta_s=row["eta_s"],
                            **saved,
                            **self.evaluation.best(),
                        )  # fsynced: at most twice a second on short steps
                        status_written = time.monotonic()
                    if self.step == hold_at:
                        self._hold()
                    if ended_early:
                        break
                if self.position + self.per_step > len(batches):
                    self.epoch, self.position = self.epoch + 1, 0
        if dist.main:
            self._finish(ended_early)

    def _hold(self) -> None:
        """Wait (at most a minute) for a stop or cancel, with the status saying this step."""
        self.status.update(step=self.step)
        deadline = time.monotonic() + 60
        while not (self.control.stop or self.control.cancel) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _stopped(self) -> bool:
        """A cancel or a stop asked for (on any rank): the run ends here, saved on a stop."""
        cancel, stop = self.dist.any(self.control.cancel, self.control.stop)
        if cancel:
            if self.dist.main:
                shutil.rmtree(self.checkpoints, ignore_errors=True)
            self.status.update(state="cancelled", step=self.step)
        elif stop:
            saved = self.save_checkpoint().name if self.dist.main else None
            self.status.update(state="stopped", step=self.step, last_checkpoint=saved)
        return cancel or stop

    def _one_step(self, batches: list, nan_at: int | None) -> dict[str, Any] | None:
        """One optimizer step over this rank's micro-batches: its metrics row, or None when it diverged."""
        from core.training.data import model_inputs

        cfg, dist, device = self.cfg, self.dist, self.loaded.device
        step_began = time.monotonic()
        losses, tokens, slots = [], 0, 0
        mine = self.position + dist.rank * cfg.grad_accum
        for micro in batches[mine : mine + cfg.grad_accum]:
            inputs, real = model_inputs(self.train_data, micro, self.pad_id, cfg.max_seq_len, self.packed)
            out = self.forward(**{k: v.to(device) for k, v in inputs.items()}, use_cache=False)
            (out.loss / cfg.grad_accum).backward()
            losses.append(out.loss.item())
            tokens += real
            slots += inputs["input_ids"].numel()
        grad_norm = float(self.torch.nn.utils.clip_grad_norm_(self.trainable, 1.0))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.position += self.per_step
        mean_loss, tokens = dist.mean_and_sum(sum(losses) / len(losses), tokens)
        self.step += 1
        if self.step == nan_at:
            mean_loss = math.nan
        if not math.isfinite(mean_loss):  # every rank sees the same mean: all stop together
            self.diverged_at = mean_loss
            return None
        self.tokens_seen += tokens
        elapsed = time.monotonic() - self.began
        rate = (self.step - self.start_step) / elapsed if elapsed > 0 else 0.0
        return {
            "step": self.step,
            "epoch": round(self.epoch + self.position / len(batches), 4),
            "loss": round(mean_loss, 5),
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": round(grad_norm, 4),
            "tokens": tokens,
            "pad_frac": round(1 - tokens / (slots * dist.world), 4),  # of the step's token slots
            "tokens_seen": self.tokens_seen,
            "tok_s": round(tokens / max(1e-9, time.monotonic() - step_began), 1),
            "elapsed_s": round(elapsed, 3),
            "eta_s": round((self.total - self.step) / rate, 1) if rate else None,
            "mem_mb": round(peak_rss_mb(), 1),
        }

    def _finish(self, ended_early: bool = False) -> None:
        """A last checkpoint, the final eval loss and the adapter: the run is done. Stopped early, the adapter is
        the best checkpoint's (as transformers' load_best_model_at_end has it), not the plateau's last step's."""
        last = runfolders.checkpoint_name(self.step) if self.saved_at == self.step else self.save_checkpoint().name
        best = self.evaluation.early.best_step if ended_early and self.evaluation.early else None
        if best is not None and best != self.step:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            weights = self.checkpoints / runfolders.checkpoint_name(best) / "adapter_model.safetensors"
            set_peft_model_state_dict(self.model, load_file(weights))
        final_eval = self.evaluation.loss(self.model)  # the adapter's, as the pass rate below is
        remove_path(self.run_dir / runfolders.ADAPTER)
        self.model.save_pretrained(str(self.run_dir / runfolders.ADAPTER))
        self.status.update(
            state="done",
            step=self.step,
            eval_loss=final_eval,
            adapter=runfolders.ADAPTER,
            last_checkpoint=last,
            **self.evaluation.best(at=best),
            early_stop=self.evaluation.early.reason() if self.evaluation.early else None,
            trainable_params=sum(p.numel() for p in self.trainable),  # the LoRA's cost, beside its verdict cell
            device=self.loaded.device,
            train_s=round(time.monotonic() - self.began, 2),  # this session of the run (resumed: since the resume)
        )
