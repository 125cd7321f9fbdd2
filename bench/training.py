"""LoRA training tok/s: tunelab's loop against a plain HF `Trainer` + PEFT script on the same model,
examples, batch size, length, LoRA settings and optimizer; on fixed-length data (raw throughput, with the
LoRA dropout both sides use and without any: the loop alone) and on variable-length data (against Trainer's
own length grouping where it acts, else against its random batches, and against a script that pads to the
maximum). Both sides time one whole epoch from
the first step's start to the last step's end, so they train exactly the same examples in the timed window;
each call loads its model afresh and follows a warm-up call, so neither side pays a cold start."""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from bench.common import REPEATS, Result, Sample, alternated

STEPS = 12
BATCH = 16
BIG_STEPS, BIG_BATCH, BIG_REPEATS = 6, 8, 3  # the 110M config: a step takes seconds, not tens of ms
VARIED_LEN = 384  # above the longest variable-length example (357 tokens): none is truncated to a fixed length
WORDS = (
    "the film was a quiet joy with bright actors and a slow plot that ends well in the last "
    "scene of the story about a family near the sea"
).split()


def write_dataset(folder: Path, lengths: tuple[int, int], n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as fh:
        for _ in range(n):
            words = rng.randint(*lengths)
            fh.write(
                json.dumps(
                    {
                        "text": " ".join(rng.choice(WORDS) for _ in range(words)),
                        "expected": rng.choice(["positive", "negative"]),
                    }
                )
                + "\n"
            )
    return folder


def config(
    dataset: Path, max_seq_len: int, model: str = "demo", steps: int = STEPS, batch: int = BATCH, dropout: float = 0.05
):
    from core.training.config import TrainConfig

    return TrainConfig(
        model=model,
        dataset=str(dataset),
        split="train",
        eval_split=None,
        max_steps=steps,
        batch_size=batch,
        max_seq_len=max_seq_len,
        eval_every=None,
        save_every=None,
        warmup_ratio=0.0,
        answer_only_loss=False,
        lora_dropout=dropout,
    )  # loss on every token: truncated rows still train


def ours(root: Path, cfg) -> float:
    """tunelab's loop, in process: real tokens per second over the whole epoch, from the first step's start
    (after the model load, as on Trainer's side) to the last step's end."""
    from core.training.loop import train
    from core.training.runs import Runs

    runs = Runs(root)
    run_id = runs.create(cfg)
    train(runs.path(run_id))
    rows, _ = runs.metrics(run_id)
    return rows[-1]["tokens_seen"] / rows[-1]["elapsed_s"]


def trainer(cfg, pad_to: int | None = None, grouped: bool = True) -> float:
    """The baseline: `Trainer` + PEFT, the same encoded examples, batches padded to their longest (or to
    `pad_to`, as a script that pads every example to max_seq_len does), grouped by length with Trainer's
    own `LengthGroupedSampler` (`train_sampling_strategy="group_by_length"`) unless `grouped` is off."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from core.data.datasets import load_dataset
    from core.engine.loading import load
    from core.training.data import examples
    from core.training.splits import train_rows

    loaded = load(cfg.model)
    data = examples(loaded, cfg, train_rows(cfg, load_dataset(cfg.dataset)))
    model = get_peft_model(
        loaded.model,
        LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            task_type="CAUSAL_LM",
            target_modules="all-linear",
            modules_to_save=list(cfg.modules_to_save),
        ),
    )
    pad = loaded.tokenizer.pad_token_id
    seen = [0]

    def collate(rows):
        width = pad_to or max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    class Counting(Trainer):
        """Counts the tokens of the batches it trains on: the data loader collates one batch ahead, so
        counting in the collator would credit Trainer with a batch it never trains (25% at 4 steps)."""

        def training_step(self, model, inputs, *args, **kwargs):
            seen[0] += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, *args, **kwargs)

    began: list[float] = []
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            began.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=cfg.batch_size,
            max_steps=cfg.max_steps,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=True,
            seed=cfg.seed,
            remove_unused_columns=False,
            train_sampling_strategy="group_by_length" if grouped else "random",
        )
        rows = [{"input_ids": e.ids, "labels": e.labels} for e in data]
        Counting(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Clock()]).train()
    return seen[0] / (ends[-1] - began[0])  # the whole epoch, as in `ours`


def compare(
    root: Path,
    dataset: Path,
    max_seq_len: int,
    pad_to: int | None = None,
    repeats: int = REPEATS,
    grouped: bool = True,
    **sizes,
) -> tuple:
    cfg = config(dataset, max_seq_len, **sizes)
    by_length = grouped and pad_to is None
    return alternated(lambda: ours(root, cfg), lambda: trainer(cfg, pad_to, grouped=by_length), repeats)


def megabatch(examples: int, batch: int) -> int:
    """How many examples Trainer's `group_by_length` sorts together (`get_length_grouped_indices`' default):
    mega_batch_mult x batch, with mega_batch_mult = min(examples // (batch x 4), 50), at least 1."""
    return max(1, min(examples // (batch * 4), 50)) * batch


def against(examples: int, batch: int) -> tuple[str, bool, str]:
    """The variable-length baseline for `examples` at `batch`: its label, whether Trainer groups by length, and
    the note that says so. Where Trainer's megabatch is one batch its grouping orders nothing (each batch is a
    random draw, sorted within), so the baseline is run and named as what it is: Trainer's random batches."""
    size = megabatch(examples, batch)
    if size > batch:
        return GROUPED, True, f"Trainer's LengthGroupedSampler sorts megabatches of {size} ({size // batch} batches)"
    return (
        RANDOM,
        False,
        f"Trainer's batches in random order: at {examples} examples of batch {batch} its group_by_length megabatch "
        f"(min({examples} // ({batch} x 4), 50) batches, at least 1) is one batch, which orders nothing",
    )


def profiled(fn) -> dict[str, float]:
    """Self CPU ms per operator (torch.profiler) over one call of `fn`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages()}


def profile_table(root: Path, dataset: Path, top: int = 12) -> dict:
    """Where tunelab's loop and Trainer spend their time differently: the operators with the largest
    difference in self CPU time, either way, over the same run on fixed-length data (model load included)."""
    cfg = config(dataset, 128)
    mine, theirs = profiled(lambda: ours(root, cfg)), profiled(lambda: trainer(cfg))
    keys = sorted(set(mine) | set(theirs), key=lambda k: -abs(theirs.get(k, 0.0) - mine.get(k, 0.0)))[:top]
    return {
        "title": f"torch.profiler, {STEPS} steps on fixed-length data: the {top} operators whose self CPU time "
        f"differs most between the two, either way (ms; totals {sum(mine.values()):.0f} vs {sum(theirs.values()):.0f})",
        "columns": ["operator", "tunelab ms", "Trainer ms", "tunelab - Trainer"],
        "rows": [
            [k, f"{mine.get(k, 0.0):.1f}", f"{theirs.get(k, 0.0):.1f}", f"{mine.get(k, 0.0) - theirs.get(k, 0.0):+.1f}"]
            for k in keys
        ],
    }


def fixed_row(name: str, ours: Sample, base: Sample, steps: int, batch: int, dropout: str) -> Result:
    return Result.paired(
        name,
        ours,
        base,
        "tok/s",
        ">= 1.0x Trainer+PEFT",
        lambda ratio: ratio >= 1.0,
        f"one epoch of {steps} steps of {batch} x 128 tokens; {dropout}; Trainer {base.spread(' tok/s')}",
    )


def varied_row(name: str, ours: Sample, base: Sample, against: str, target: float, how: str) -> Result:
    return Result.paired(
        name,
        ours,
        base,
        "tok/s",
        f">= {target}x {against}",
        lambda ratio: ratio >= target,
        f"one epoch of examples of 12..357 tokens, none truncated; tunelab's length-grouped batches; {how}; "
        f"Trainer {base.spread(' tok/s')}",
    )


MASKS = "LoRA dropout 0.05: tunelab's 16-bit mask kernel against PEFT's nn.Dropout"
NO_DROPOUT = "LoRA dropout 0 on both sides: the loop alone"
GROUPED = "Trainer grouping by length"
RANDOM = "Trainer's random batches padded to their longest"
PADDED = "a script padding to max_seq_len"
PADDED_HOW = "Trainer's batches in random order, each padded to max_seq_len"


def varied_name(name: str, grouped: bool) -> str:
    """A variable-length row's name says when its baseline is Trainer's random batches, not its grouping."""
    return name if grouped else f"{name} (random batches)"


def datasets(folder: Path, steps: int, batch: int) -> tuple[Path, Path]:
    """One epoch's worth of fixed-length (every example cut to the same 128 tokens) and variable-length data."""
    n = steps * batch
    return write_dataset(folder / f"fixed-{n}", (200, 200), n), write_dataset(folder / f"varied-{n}", (4, 200), n, 1)


def run() -> list[Result]:
    from bench.common import quiet_logs
    from bench.cost_growth import big_model_folder

    quiet_logs()
    big_repeats = max(BIG_REPEATS, REPEATS * BIG_REPEATS // 5)  # more pairs on a re-run, in proportion
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        fixed, varied = datasets(tmp, STEPS, BATCH)
        f_ours, f_base = compare(home, fixed, 128)
        z_ours, z_base = compare(home, fixed, 128, dropout=0.0)
        profile = profile_table(home, fixed)
        v_against, v_grouped, v_how = against(STEPS * BATCH, BATCH)
        v_ours, v_base = compare(home, varied, VARIED_LEN, grouped=v_grouped)
        m_ours, m_base = compare(home, varied, VARIED_LEN, pad_to=VARIED_LEN)
        big = {"model": str(big_model_folder(tmp / "llama-110m")), "steps": BIG_STEPS, "batch": BIG_BATCH}
        big_fixed, big_varied = datasets(tmp, BIG_STEPS, BIG_BATCH)
        bf_ours, bf_base = compare(home, big_fixed, 128, repeats=big_repeats, **big)
        bz_ours, bz_base = compare(home, big_fixed, 128, repeats=big_repeats, dropout=0.0, **big)
        bv_against, bv_grouped, bv_how = against(BIG_STEPS * BIG_BATCH, BIG_BATCH)
        bv_ours, bv_base = compare(home, big_varied, VARIED_LEN, repeats=big_repeats, grouped=bv_grouped, **big)
    fixed_demo = fixed_row("LoRA training tok/s, fixed length", f_ours, f_base, STEPS, BATCH, MASKS)
    fixed_demo.extra["table"] = profile
    return [
        fixed_demo,
        fixed_row("LoRA training tok/s, fixed length, no dropout", z_ours, z_base, STEPS, BATCH, NO_DROPOUT),
        varied_row(
            varied_name("LoRA effective tok/s, variable length", v_grouped), v_ours, v_base, v_against, 1.0, v_how
        ),
        varied_row("LoRA effective tok/s, variable length (pad to max)", m_ours, m_base, PADDED, 1.5, PADDED_HOW),
        fixed_row("LoRA training tok/s, fixed length, 110M", bf_ours, bf_base, BIG_STEPS, BIG_BATCH, MASKS),
        fixed_row(
            "LoRA training tok/s, fixed length, no dropout, 110M", bz_ours, bz_base, BIG_STEPS, BIG_BATCH, NO_DROPOUT
        ),
        varied_row(
            varied_name("LoRA effective tok/s, variable length, 110M", bv_grouped),
            bv_ours,
            bv_base,
            bv_against,
            1.0,
            bv_how,
        ),
    ]
