"""Model worker memory (RSS) after load, and after 10 generations that swap between 3 LoRA adapters."""

from __future__ import annotations

import queue
import tempfile
import time
from pathlib import Path

from bench.common import Result

PROMPT = {"text": "Anna was a", "system": "", "mode": "auto"}


def make_adapters(folder: Path, n: int = 3) -> list[Path]:
    """Untrained LoRA adapters (all-linear, with lm_head saved in full, as tunelab trains them)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from core.engine.loading import load

    out = []
    for i in range(n):
        torch.manual_seed(i)
        model = get_peft_model(
            load("demo").model,
            LoraConfig(r=8 * (i + 1), target_modules="all-linear", modules_to_save=["lm_head"], task_type="CAUSAL_LM"),
        )
        model.save_pretrained(folder / f"a{i}")
        out.append(folder / f"a{i}")
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def run() -> list[Result]:
    from core.engine.client import ModelWorkerClient
    from core.engine.options import ModelOptions

    events: queue.Queue = queue.Queue()

    def until(kind: str, rid: str | None = None, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while True:
            event = events.get(timeout=max(0.1, deadline - time.monotonic()))
            if event.TAG in ("error", "crashed"):
                raise RuntimeError(f"worker: {event.message}")
            if event.TAG == kind and (rid is None or getattr(event, "id", None) == rid):
                return event

    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_adapters(Path(tmp))
        client = ModelWorkerClient(events.put, Path(tmp) / "worker.log")
        try:
            client.load(ModelOptions("demo"))
            until("ready")
            rid = client.generate(PROMPT, {"max_new_tokens": 8}, events.put)  # the base once, like any first run
            until("done", rid)
            after_load = rss_mb(client.channel.proc.pid)
            for i in range(10):
                rid = client.generate(PROMPT, {"max_new_tokens": 8}, events.put, adapter=str(adapters[i % 3]))
                until("done", rid)
            after_swaps = rss_mb(client.channel.proc.pid)
        finally:
            client.close()
    growth = after_swaps / after_load - 1
    return [
        Result(
            "model worker RSS after 10 adapter swaps",
            after_swaps,
            after_load,
            "MB",
            "<= 5% growth",
            growth <= 0.05,
            note=f"3 adapters (r=8/16/24, all-linear + lm_head), growth {growth:+.1%}",
        )
    ]
