"""The long-lived model worker: a child process that loads a model once and serves generations.

Protocol: JSON lines. Requests arrive on stdin (`load`, `render`, `generate`, `batch`, `cancel`,
`shutdown`); events leave on the original stdout (`loading`, `ready`, `rendered`, `started`, `chunk`,
`done`, `item`, `batch_done`, `error`). Anything a
library prints goes to stderr (a log file), so it can never corrupt the protocol. A reader thread
handles `cancel` at once (also for a request still queued), while a generation runs on the main
thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from typing import Any, TextIO

from core.errors import TunelabError
from core.params import GenParams


class Worker:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.out_lock = threading.Lock()
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.cancels: dict[str, threading.Event] = {}
        self.loaded = None
        self.adapters: dict[str, str] = {}  # adapter folder -> its name inside the PeftModel

    def send(self, event: dict[str, Any]) -> None:
        with self.out_lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def read_requests(self, stream: TextIO) -> None:
        for line in stream:
            try:
                req = json.loads(line)
            except json.JSONDecodeError:
                self.send({"event": "error", "message": f"bad request line: {line[:80]!r}"})
                continue
            if req.get("op") == "cancel":
                if (event := self.cancels.get(req.get("id", ""))) is not None:
                    event.set()  # a cancel for a finished request is simply dropped
            else:
                if req.get("op") in {"generate", "batch"}:
                    self.cancels.setdefault(req["id"], threading.Event())
                self.requests.put(req)
        self.requests.put({"op": "shutdown"})  # parent went away

    def serve(self) -> None:
        while True:
            req = self.requests.get()
            op = req.get("op")
            if op == "shutdown":
                return
            try:
                if op == "load":
                    self.load(req)
                elif op == "generate":
                    self.generate(req)
                elif op == "batch":
                    self.batch(req)
                elif op == "render":
                    self.render(req)
                else:
                    raise TunelabError(f"unknown request op '{op}'")
            except TunelabError as exc:
                self.send({"event": "error", "id": req.get("id"), "op": op, "message": str(exc)})
            except Exception as exc:  # keep serving; the log has the traceback
                import traceback

                traceback.print_exc()
                self.send({"event": "error", "id": req.get("id"), "op": op,
                           "message": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
            finally:
                self.cancels.pop(req.get("id", ""), None)

    def load(self, req: dict[str, Any]) -> None:
        from core.loading import load

        self.send({"event": "loading", "model": req["model"]})
        self.loaded, self.adapters = None, {}
        self.loaded = load(req["model"], allow_pickle=req.get("allow_pickle", False),
                           trust_remote_code=req.get("trust_remote_code", False),
                           device=req.get("device", "auto"), dtype=req.get("dtype", "auto"))
        self.send({"event": "ready", "info": self.loaded.info()})

    @contextlib.contextmanager
    def model_for(self, adapter: str | None):
        """The loaded model with `adapter` active (hot-swapped: each adapter loads once, the base never
        reloads), or with every adapter disabled when `adapter` is None."""
        if self.loaded is None:
            raise TunelabError("no model loaded")
        if adapter is None:
            off = self.loaded.model.disable_adapter() if self.adapters else contextlib.nullcontext()
            with off:
                yield self.loaded
            return
        from peft import PeftModel

        name = self.adapters.get(adapter)
        if name is None:
            name = f"a{len(self.adapters)}"
            try:
                if self.adapters:
                    self.loaded.model.load_adapter(adapter, adapter_name=name)
                else:
                    self.loaded.model = PeftModel.from_pretrained(self.loaded.model, adapter, adapter_name=name)
            except (OSError, ValueError, KeyError) as exc:
                raise TunelabError(f"cannot load adapter {adapter}: {str(exc).splitlines()[0]}") from None
            self.loaded.model.eval()
            self.adapters[adapter] = name
        self.loaded.model.set_adapter(name)
        yield self.loaded

    def generate(self, req: dict[str, Any]) -> None:
        from core.generation import Prompt, generate

        rid = req["id"]
        params = GenParams.from_dict(req.get("params", {}))
        prompt = Prompt.from_dict(req.get("prompt", {}))
        with self.model_for(req.get("adapter")) as loaded:
            result = generate(
                loaded, prompt, params,
                emit=lambda text, tokens: self.send({"event": "chunk", "id": rid, "text": text, "tokens": tokens}),
                cancel=self.cancels[rid],
                on_rendered=lambda rendered, n: self.send(
                    {"event": "started", "id": rid, "rendered_prompt": rendered, "prompt_tokens": n}),
            )
        self.send({"event": "done", "id": rid, "result": result})

    def render(self, req: dict[str, Any]) -> None:
        """The exact string a prompt becomes for the loaded model, and its token count."""
        from core.generation import Prompt, render

        if self.loaded is None:
            raise TunelabError("no model loaded")
        text = render(self.loaded, Prompt.from_dict(req.get("prompt", {})))
        tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
        self.send({"event": "rendered", "id": req["id"], "text": text, "tokens": tokens})

    def batch(self, req: dict[str, Any]) -> None:
        """Many prompts at once (evals): all cores for the batch, one thread again for streaming."""
        import torch

        from core.generation import Prompt, generate_batch

        rid = req["id"]
        params = GenParams.from_dict(req.get("params", {}))
        prompts = [Prompt.from_dict(p) for p in req.get("prompts", [])]
        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)
        try:
            with self.model_for(req.get("adapter")) as loaded:
                generate_batch(loaded, prompts, params, batch_size=int(req.get("batch_size", 16)),
                               cancel=self.cancels[rid],
                               on_result=lambda i, r: self.send({"event": "item", "id": rid, "index": i,
                                                                 "result": r}))
        finally:
            torch.set_num_threads(threads)
        self.send({"event": "batch_done", "id": rid, "cancelled": self.cancels[rid].is_set()})


def main() -> int:
    import torch

    torch.set_num_threads(int(os.environ.get("TUNELAB_TORCH_THREADS", "1")))  # batch-1 decode is fastest on one
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints land in the log
    worker = Worker(protocol)
    threading.Thread(target=worker.read_requests, args=(sys.stdin,), daemon=True).start()
    worker.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
