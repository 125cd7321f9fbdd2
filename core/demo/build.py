"""Build the demo model: tokenizer, Llama-style weights, a short pre-training, and the demo task.

Run with `python -m core.demo build` (or `tunelab demo build`). The result is small enough to ship in
the repository, so tests and first runs never need a hub.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from core.demo import corpus

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


@dataclass
class BuildConfig:
    seed: int = 1234
    vocab_size: int = 4096
    hidden_size: int = 256
    layers: int = 4
    heads: int = 8
    kv_heads: int = 2
    intermediate_size: int = 512
    seq_len: int = 256  # room for a few demonstrations and the item: the contexts in-context runs need
    batch_size: int = 16
    steps: int = 300
    lr: float = 3e-3
    documents: int = 40000
    in_context_share: float = 0.3  # in-context documents added, per document of the mix
    in_context_seed: int = 99  # their own random stream: the rest of the corpus is drawn as it was without them
    task_items: int = 600
    eval_fraction: float = 0.2


def documents(rng: random.Random, count: int) -> list[str]:
    """The pre-training mix: stories, reviews (a few with a verdict sentence), Q/A and chat turns."""
    docs = []
    for _ in range(count):
        r = rng.random()
        if r < 0.42:
            docs.append(corpus.story(rng))
        elif r < 0.63:
            docs.append(corpus.review(rng, rng.random() < 0.5))
        elif r < 0.75:
            docs.append(corpus.judged_review(rng))
        elif r < 0.9:
            q, a = corpus.question(rng)
            docs.append(f"Q: {q}\nA: {a}")
        else:
            docs.append("".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in corpus.chat(rng)))
    return docs


def corpus_documents(cfg: BuildConfig) -> list[str]:
    """The mix, then the in-context documents, shuffled together."""
    docs = documents(random.Random(cfg.seed), cfg.documents)
    rng = random.Random(cfg.in_context_seed)
    docs += [corpus.in_context(rng) for _ in range(int(cfg.documents * cfg.in_context_share))]
    rng.shuffle(docs)
    return docs


def train_tokenizer(docs: list[str], cfg: BuildConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(docs, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def pack(docs: list[str], tokenizer, seq_len: int):
    """Concatenate documents with EOS between them and cut into equal rows (no padding to learn)."""
    import torch

    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    rows = len(ids) // seq_len
    return torch.tensor(ids[: rows * seq_len]).view(rows, seq_len)


def pretrain(model, data, cfg: BuildConfig, log=print) -> float:
    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, cfg.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.steps - warmup)))

    model.train()
    start, loss_value = time.monotonic(), float("nan")
    for step in range(cfg.steps):
        batch = data[torch.randint(len(data), (cfg.batch_size,), generator=g)]
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if step % 25 == 0 or step == cfg.steps - 1:
            log(f"step {step + 1}/{cfg.steps} loss {loss_value:.3f} ({time.monotonic() - start:.0f}s)")
    model.eval()
    return loss_value


def task_items(cfg: BuildConfig) -> list[dict[str, str]]:
    return corpus.sentiment_items(random.Random(cfg.seed + 1), cfg.task_items)


def without_task(docs: list[str], items: list[dict[str, str]]) -> list[str]:
    """Drop any pre-training document that starts with a task text: no item is ever seen, labelled or not."""
    key = min([32, *(len(item["text"]) for item in items)])
    by_head: dict[str, list[str]] = {}
    for item in items:
        by_head.setdefault(item["text"][:key], []).append(item["text"])
    return [d for d in docs if not any(d.startswith(t) for t in by_head.get(d[:key], ()))]


def write_task(out: Path, items: list[dict[str, str]], cfg: BuildConfig) -> None:
    """The demo sentiment task as JSONL train/eval splits."""
    n_eval = int(len(items) * cfg.eval_fraction)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("eval", items[:n_eval]), ("train", items[n_eval:])):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(item) + "\n" for item in part)


def build(model_dir: Path, data_dir: Path, cfg: BuildConfig | None = None, log=print) -> float:
    """Build everything into `model_dir` and `data_dir`; returns the final pre-training loss."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cfg = cfg or BuildConfig()
    torch.manual_seed(cfg.seed)
    items = task_items(cfg)
    docs = without_task(corpus_documents(cfg), items)
    log(f"corpus: {len(docs)} documents")
    tokenizer = train_tokenizer(docs, cfg)
    data = pack(docs, tokenizer, cfg.seq_len)
    log(f"tokens: {data.numel()} in {len(data)} rows of {cfg.seq_len}")
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    log(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")
    loss = pretrain(model, data, cfg, log)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.nn.Module.to(model, torch.bfloat16)  # (transformers' own `to` wrapper confuses the type checker)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    write_task(data_dir, items, cfg)
    log(f"saved model to {model_dir} and task to {data_dir}")
    return loss
