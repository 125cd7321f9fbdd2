"""A model worker that stops answering is named and replaced: stopped (SIGSTOP: silent, no heartbeat) or
stuck in a library call (heartbeats go on, its request's events do not). The open request ends crashed
with the reason; the next one starts a fresh worker that reloads the model. The watchdog's hang time is
set short here (`worker_hang_s`), and the stuck call is injected (`worker_sleep_in_generate`)."""

import os
import signal

import pytest

from core.engine import protocol as p
from core.engine.client import ModelWorkerClient, deadline_s
from core.engine.options import ModelOptions
from core.faults import ENV
from tests.contract.test_worker_protocol import LONG, RAW, Events

pytestmark = pytest.mark.slow


def started(tmp_path, monkeypatch, faults: str) -> tuple[ModelWorkerClient, Events]:
    monkeypatch.setenv(ENV, faults)
    events = Events()
    client = ModelWorkerClient(events, tmp_path / "worker.log")
    client.load(ModelOptions("demo"))
    events.until(p.Ready)
    return client, events


def test_a_stopped_worker_is_named_killed_and_replaced(tmp_path, monkeypatch):
    client, events = started(tmp_path, monkeypatch, "worker_hang_s=2")
    try:
        own = Events()
        client.generate(RAW, LONG, own)
        own.until(p.Chunk)
        os.kill(client.channel.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        crash = own.until(p.Crashed, timeout=60)
        assert crash.message.startswith("the model worker has not answered for ")
        assert "it restarts on the next request" in crash.message
        assert isinstance(events.until(p.Crashed), p.Crashed)  # the app hears of it too
        again = Events()
        rid = client.generate(RAW, {"max_new_tokens": 3}, again)
        done = again.until(p.Done, timeout=120)
        assert done.id == rid and done.result.completion_tokens >= 1
    finally:
        client.close()


def test_a_worker_stuck_in_generate_is_named_by_its_request(tmp_path, monkeypatch):
    client, _ = started(tmp_path, monkeypatch, "worker_hang_s=2,worker_sleep_in_generate=600")
    try:
        own = Events()
        rid = client.generate(RAW, LONG, own)
        crash = own.until(p.Crashed, timeout=60)
        assert crash.message.startswith(f"the model worker has not answered request {rid} for ")
    finally:
        client.close()


def test_a_deadline_grows_with_the_request():
    short = p.Generate("r1", {**RAW, "text": "hi"}, LONG)
    long = p.Generate("r2", {**RAW, "text": "word " * 30_000}, LONG)
    assert deadline_s(short, 30) < deadline_s(long, 30)
    assert deadline_s(p.Load("demo"), 30) is None  # a load: only silence counts (downloads take their time)


def test_the_cli_names_a_generation_stuck_in_the_library_in_one_line_and_exit_3(home):
    from tests.conftest import tunelab

    out = tunelab("gen", "Anna was a", home=home, env={ENV: "worker_hang_s=2,worker_sleep_in_generate=600"})
    assert out.returncode == 3 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tunelab: error: the model has not answered for ")
    assert lines[0].endswith("s (stuck in a library call?); stopped")


def test_a_cli_eval_stuck_in_the_library_is_one_line_exit_3_and_recovered_as_interrupted(home):
    from tests.conftest import tunelab

    faults = {ENV: "worker_hang_s=2,deadline_per_token_ms=0,worker_sleep_in_generate=600"}
    out = tunelab("eval", "--no-prompt", "--limit", "4", home=home, env=faults)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert "tunelab: error: the model has not answered for " in out.stderr
    listed = tunelab("evals", "list", home=home)
    assert listed.returncode == 0 and "recovered eval" in listed.stderr and "interrupted" in listed.stdout
