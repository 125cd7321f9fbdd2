"""The Engine seam: one function picks a model's engine, and a new kind of engine is one registration: the
eval runner, its cache and the judge then use it with nothing else changed."""

import threading

from core.engine import engines
from core.engine.engines import EngineKind, LocalEngine, ServedEngine, engine_for, is_local
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.protocol import GenResult
from core.evals.plan import EvalRequest, Variant
from core.evals.runner import run_eval
from tests.unit.test_evals import PROMPT, ScriptedBackend


class Echo(LocalEngine):
    """An engine of another kind (as llama.cpp in process would be): answers every prompt `positive`."""

    numerics = "echo"
    concurrent = True

    def __init__(self):
        self.seen = []

    def check(self, model):
        pass

    def fingerprint(self, model):
        return f"echo:{model}"

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        self.seen.append((model, len(prompts)))
        for i, _ in enumerate(prompts):
            on_result(i, GenResult(" positive", "eos", 1))


def test_served_specs_get_the_served_engine_and_the_rest_the_local_one():
    local = ScriptedBackend()
    assert isinstance(engine_for("http://127.0.0.1:9/v1#m", local), ServedEngine)
    assert engine_for("demo", local) is local and is_local("demo") and not is_local("endpoint:x")


def test_a_new_engine_kind_is_one_registration(home, monkeypatch):
    made = Echo()
    monkeypatch.setattr(
        engines, "ENGINES", [EngineKind("echo", lambda spec: spec.startswith("echo:"), lambda: made), *engines.ENGINES]
    )
    local = ScriptedBackend()
    request = EvalRequest("demo", "eval", grader="labels", limit=6)
    summary = run_eval(home, request, [Variant("senti", PROMPT, "echo:tiny"), Variant("senti", PROMPT)], local)
    assert made.seen == [("echo:tiny", 6)] and local.calls == [6]
    assert summary.variants[0].trials == 6 and summary.variants[0].model == "echo:tiny"
    again = run_eval(home, request, [Variant("senti", PROMPT, "echo:tiny")], local)
    assert made.seen == [("echo:tiny", 6)] and again.variants[0].cached == 6  # its fingerprint keys the cache


def test_a_local_engine_without_a_stream_answers_generate_with_one_batch():
    pieces = []
    result = ScriptedBackend().generate(
        "demo", None, Prompt("I love it", "", "raw"), GenParams(), lambda t, n: pieces.append(t), threading.Event()
    )
    assert pieces == [result.output] and result.stop_reason == "eos"
