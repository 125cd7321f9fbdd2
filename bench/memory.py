"""Peak memory of one LoRA step on the ~110M Llama config (random weights), with and without gradient
checkpointing, each in a fresh process so its peak RSS is its own. Both prepare the base through the
training loop's own `memory_setup` (`--gradient-checkpointing`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import Result

ROOT = Path(__file__).resolve().parent.parent
BATCH, SEQ = 2, 1024  # long enough that activations, not the 0.44 GB of weights, decide the peak


def step(checkpointing: bool) -> dict[str, float]:
    """One forward and backward and optimizer step; peak RSS and the RSS just before the step, in MB."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    from bench.cost_growth import big_config
    from core.training.allocator import peak_rss_mb
    from core.training.loop import memory_setup

    torch.manual_seed(0)
    model = memory_setup(LlamaForCausalLM(big_config()), None, checkpointing)
    model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(10, model.config.vocab_size, (BATCH, SEQ))
    before = _rss_mb()
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return {"peak_mb": peak_rss_mb(), "before_mb": before}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _measure(checkpointing: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", "checkpointing" if checkpointing else "plain"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> list[Result]:
    plain, checked = _measure(False), _measure(True)
    return [
        Result(
            "LoRA step peak RSS with gradient checkpointing, 110M",
            checked["peak_mb"],
            plain["peak_mb"],
            "MB",
            "<= 0.6x without",
            checked["peak_mb"] <= 0.6 * plain["peak_mb"],
            note=f"batch {BATCH} x {SEQ} tokens, LoRA r=16 all-linear; the step itself added "
            f"{checked['peak_mb'] - checked['before_mb']:.0f} MB with, {plain['peak_mb'] - plain['before_mb']:.0f} MB without",
        )
    ]


if __name__ == "__main__":
    print(json.dumps(step(sys.argv[1] == "checkpointing")))
