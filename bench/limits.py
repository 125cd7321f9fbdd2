"""How close tunelab comes to what the hardware allows, measured in the same process as the ceiling itself:
the LoRA step's achieved FLOP/s on the ~110M Llama config (the tok/s of the epochs it timed times their FLOPs
per token) over the peak of a large fp32 matmul on the same cores, and batch-1 decoding's weight bytes read
per second over the bandwidth of a large tensor copy on the decode's own thread count."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from bench.common import REPEATS, STEADY, Result, timed
from bench.training import BIG_BATCH, BIG_STEPS, profiled

MATMUL_N = 2048  # big enough that the kernel, not the call, sets the pace
COPY_MB = 512  # far past every cache level
DECODE_TOKENS = 64
EPOCHS = max(3, REPEATS * 3 // 5)  # timed epochs (and decodes): more on a re-run, as the training section's pairs


def best_of(fn) -> float:
    """The fastest of a few wall times of `fn` after a warm-up: a ceiling is the best the machine does."""
    return timed(fn).low


def peak_flops(threads: int) -> float:
    """FLOP/s of an fp32 `torch.matmul` of two MATMUL_N-square matrices on `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    return 2 * MATMUL_N**3 / best_of(lambda: torch.matmul(a, b))


def copy_bandwidth(threads: int) -> float:
    """Bytes per second moved (read + written) by copying a COPY_MB tensor on `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    src = torch.ones(COPY_MB * 2**20 // 4)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_of(lambda: dst.copy_(src))


def step_flops_per_token(config, lora_params: int, seq: int) -> float:
    """Training FLOPs per token of a LoRA step, counted as matmuls: every frozen linear weight (lm_head
    included) costs 2 FLOPs per parameter forward and 2 backward (the input's gradient only: no weight
    gradient); each LoRA parameter 2 forward and 4 backward; causal attention's scores and mix, 2 x 2 x
    (seq / 2) x hidden per token and layer forward, twice that backward. Embedding lookups are free."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = hidden // heads
    attention = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2  # q, o and k, v
    mlp = 3 * hidden * config.intermediate_size
    frozen = layers * (attention + mlp) + hidden * config.vocab_size
    attend = layers * 2 * 2 * (seq / 2) * hidden
    return 4 * frozen + 6 * lora_params + 3 * attend


def scatter(row: Result, ratios: list[float], meets) -> Result:
    """A row timed over several runs (epochs, decodes) against one ceiling: like a paired row, it is not
    `steady` when its runs scatter past STEADY (load that came and went), and `crosses` when they lie on both
    sides of the target, so the guard treats it as it treats pairs."""
    row.steady = max(ratios) <= STEADY * min(ratios)
    row.crosses = meets(min(ratios)) != meets(max(ratios))
    return row


def flops_row(rates: list[float], per_token: float, peak: float, trainable: int) -> Result:
    """The FLOP/s row from the epochs it timed: each epoch's tok/s times the FLOPs per token, so the FLOP/s,
    the tok/s and the FLOP/token it shows (and keeps in `extra`) describe the same epochs of one config."""
    tok_s = statistics.median(rates)
    achieved = tok_s * per_token
    row = Result(
        "LoRA step FLOP/s over the fp32 matmul peak, 110M",
        achieved / 1e9,
        peak / 1e9,
        "GFLOP/s",
        ">= 0.6 of the peak",
        achieved >= 0.6 * peak,
        spread=f"{min(rates) * per_token / 1e9:.3g}..{max(rates) * per_token / 1e9:.3g} GFLOP/s over {len(rates)} "
        "epochs",
        note=f"{tok_s:.4g} tok/s x {per_token / 1e6:.1f} MFLOP per token ({BIG_STEPS} steps of {BIG_BATCH} x 128 "
        f"tokens, r=16 all-linear, {trainable / 1e6:.1f}M LoRA parameters: the training section's 110M fixed-length "
        f"config, timed in this section); peak: {MATMUL_N}^2 fp32 matmul on {os.cpu_count()} threads",
    )
    row.extra.update(tok_per_s=tok_s, flop_per_token=per_token, flop_per_s=achieved, epochs_tok_per_s=list(rates))
    return scatter(row, [r * per_token / peak for r in rates], lambda ratio: ratio >= 0.6)


def training_row(folder: Path, peak: float) -> Result:
    """tunelab's loop on the 110M config, one epoch of fixed-length batches (the training section's)."""
    from transformers import AutoConfig

    from bench.training import config, datasets, ours
    from core.training.runs import Runs

    fixed, _ = datasets(folder, BIG_STEPS, BIG_BATCH)
    model = str(folder / "llama-110m")
    cfg = config(fixed, 128, model=model, steps=BIG_STEPS, batch=BIG_BATCH)
    ours(folder / "home", cfg)  # warm-up
    rates = [ours(folder / "home", cfg) for _ in range(EPOCHS)]
    runs = Runs(folder / "home")
    last = max(runs.folder.iterdir(), key=lambda p: p.stat().st_mtime).name
    trainable = runs.status(last).trainable_params
    per_token = step_flops_per_token(AutoConfig.from_pretrained(model), trainable, 128)
    return flops_row(rates, per_token, peak, trainable)


def bandwidth_row(rates: list[float], read: int, copy: float, threads: int, wide: float) -> Result:
    """The decode's weight bytes per second over the bandwidth of a copy on the decode's own thread count
    (`copy`; `wide`, the copy on every core, is a note): a batch-1 decode on one thread cannot use the
    bandwidth other cores' loads would add, so only a copy on as many threads is its ceiling."""
    tok_s = statistics.median(rates)
    achieved = tok_s * read
    row = Result(
        "decode weight bytes/s over a copy on the same threads, batch 1, 110M",
        achieved / 1e9,
        copy / 1e9,
        "GB/s",
        ">= 0.7 of a copy on the same threads",
        achieved >= 0.7 * copy,
        spread=f"{min(rates):.3g}..{max(rates):.3g} tok/s",
        note=f"{read / 1e6:.0f} MB of weights per token (all but the embedding table) x {tok_s:.1f} tok/s on "
        f"{threads} thread(s); bandwidth: a {COPY_MB} MB copy on the same {threads} thread(s) "
        f"({wide / 1e9:.1f} GB/s on all {os.cpu_count()})",
    )
    row.extra.update(
        tok_per_s=tok_s, bytes_per_token=read, bytes_per_s=achieved, decode_threads=threads, copy_threads=threads,
        all_cores_copy_bytes_per_s=wide,
    )  # fmt: skip
    return scatter(row, [r * read / copy for r in rates], lambda ratio: ratio >= 0.7)


def decode_row(folder: Path) -> Result:
    """Batch-1 greedy decoding through `generate` (the worker's path) on the worker's thread count."""
    import torch

    from core.engine.generation import generate
    from core.engine.loading import load
    from core.engine.params import GenParams
    from core.engine.prompt import Prompt

    threads = int(os.environ.get("TUNELAB_TORCH_THREADS", "1"))  # as the model worker runs
    loaded = load(str(folder / "llama-110m"))
    params = GenParams(max_new_tokens=DECODE_TOKENS, min_new_tokens=DECODE_TOKENS)
    torch.set_num_threads(threads)
    prompt = Prompt("the film was a quiet joy", mode="raw")
    generate(loaded, prompt, params, emit=lambda *a: None)
    rates = [generate(loaded, prompt, params, emit=lambda *a: None)["tok_per_s"] for _ in range(EPOCHS)]
    embed = loaded.model.get_input_embeddings().weight
    read = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) - embed.numel() * embed.element_size()
    own, wide = copy_bandwidth(threads), copy_bandwidth(os.cpu_count() or 1)
    torch.set_num_threads(threads)
    spent = profiled(lambda: generate(loaded, prompt, params, emit=lambda *a: None))
    total = sum(spent.values())
    top = sorted(spent, key=lambda k: -spent[k])[:6]
    row = bandwidth_row(rates, read, own, threads, wide)
    row.extra["table"] = {
        "title": f"torch.profiler, one {DECODE_TOKENS}-token batch-1 decode on the 110M config: where the time goes "
        f"(self CPU ms; total {total:.0f})",
        "columns": ["operator", "ms", "share"],
        "rows": [[k, f"{spent[k]:.1f}", f"{spent[k] / total:.0%}"] for k in top],
    }
    return row


def run() -> list[Result]:
    from bench.cost_growth import big_model_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big_model_folder(folder / "llama-110m")
        peak = peak_flops(os.cpu_count() or 1)
        return [training_row(folder, peak), decode_row(folder)]
