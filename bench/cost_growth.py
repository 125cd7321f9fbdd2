"""How costs grow: generation and LoRA training step time against sequence length and model size
(the demo model, and a ~100M-parameter Llama config with random weights)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import sample


def big_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=16384,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )


def big_model_folder(folder: Path) -> Path:
    """The ~110M config saved as a model folder (random weights, seeded; the demo's tokenizer, whose ids
    all fall inside its vocabulary) so the real loading, training and eval paths can run on it."""
    import torch
    from transformers import LlamaForCausalLM

    from core.engine.loading import load

    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        LlamaForCausalLM(big_config()).save_pretrained(folder)
        load("demo").tokenizer.save_pretrained(folder)
    return folder


def models():
    import torch
    from transformers import LlamaForCausalLM

    from core.engine.loading import load

    demo = load("demo").model.float()
    torch.manual_seed(0)
    big = LlamaForCausalLM(big_config())
    return [("demo", demo), ("llama-100m (random)", big)]


def gen_ms_per_token(model, prompt_len: int, new: int = 32) -> float:
    import torch

    ids = torch.randint(10, model.config.vocab_size, (1, prompt_len))
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
        times = []
        for _ in range(3):
            began = time.perf_counter()
            model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
            times.append((time.perf_counter() - began) / new)
    return sample(times).median * 1e3


def train_step_s(model, seq: int, batch: int = 4) -> float:
    import torch
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(10, model.config.vocab_size, (batch, seq))
    times = []
    for i in range(3):
        began = time.perf_counter()
        lora(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i:
            times.append(time.perf_counter() - began)
    lora.unload()  # the next measure gets the plain model back
    return sample(times).median


EVAL_BATCHES = (1, 4, 16)


def eval_items_per_s(loaded, batch: int, n: int = 16, tokens: int = 16) -> float:
    """Eval throughput of the batched backend (`generate_batch`, all cores) at one batch size: `n`
    items of different lengths, each generating exactly `tokens`."""
    from core.engine.generation import generate_batch
    from core.engine.params import GenParams
    from core.engine.prompt import Prompt

    words = "the film was a quiet joy with bright actors and a slow plot".split()
    prompts = [Prompt(" ".join(words[: 3 + i % 10]) + " Overall, this review is", mode="raw") for i in range(n)]
    params = GenParams(max_new_tokens=tokens, min_new_tokens=tokens)
    began = time.perf_counter()
    generate_batch(loaded, prompts, params, batch_size=batch, on_result=lambda i, r: None)
    return n / (time.perf_counter() - began)


def run() -> list[dict]:
    import tempfile

    import torch

    from core.engine.loading import load

    rows = []
    for name, model in models():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        torch.set_num_threads(1)
        gen = {n: gen_ms_per_token(model, n) for n in (32, 256)}
        torch.set_num_threads(os.cpu_count() or 1)
        train = {n: train_step_s(model, n) for n in (64, 256)}
        rows.append(
            {
                "model": name,
                "params_m": round(params, 1),
                "gen_ms_per_token_prompt32": round(gen[32], 2),
                "gen_ms_per_token_prompt256": round(gen[256], 2),
                "train_step_s_seq64": round(train[64], 3),
                "train_step_s_seq256": round(train[256], 3),
            }
        )
    with tempfile.TemporaryDirectory() as folder:
        for row, spec in zip(rows, ("demo", str(big_model_folder(Path(folder) / "llama-110m"))), strict=True):
            loaded = load(spec)
            eval_items_per_s(loaded, EVAL_BATCHES[-1])  # warm-up
            row["eval_items_per_s"] = {b: round(eval_items_per_s(loaded, b), 2) for b in EVAL_BATCHES}
    return rows
