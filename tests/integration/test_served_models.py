"""Served models (any OpenAI-compatible endpoint) through the real command line, against a server that
misbehaves on purpose (`tests/served_fakes.py`): every case is retried, or one line and an exit code,
never a traceback; nothing partial is cached; the key reaches no file."""

import base64
import json
import threading
import time

import pytest

from core.engine.endpoints import PER_TOKEN_S
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.served import Endpoint, ServedClient, endpoint, shown
from core.errors import TunelabError
from tests.conftest import tunelab
from tests.served_fakes import Handler, serve

SECRET = "sk-test-5ecret-never-written"


@pytest.fixture
def server():
    made, url = serve()
    yield url
    made.shutdown()


def client(url, model, timeout=30.0):
    return ServedClient(Endpoint("fake", url, model, timeout_s=timeout))


def test_chat_raw_and_streaming_answers(server):
    chat = client(server, "ok").complete(Prompt("hi", "Be brief.", "chat"), GenParams(max_new_tokens=8))
    assert (
        chat["output"] == "It is sunny." and chat["served_model"] == "served-ok" and chat["system_fingerprint"] == "fp1"
    )
    assert (chat["prompt_tokens"], chat["completion_tokens"], chat["finish_reason"]) == (5, 4, "stop")
    pieces = []
    raw = client(server, "ok").complete(Prompt("hi", "", "raw"), GenParams(), emit=lambda text, n: pieces.append(text))
    assert raw["output"] == "It is sunny." and pieces == ["It", " is", " sunny", "."] and raw["stop_reason"] == "eos"


def test_429_and_500_are_retried_and_a_refused_field_is_dropped_once(server):
    assert client(server, "429").complete(Prompt("hi"), GenParams())["output"] == "It is sunny."
    assert client(server, "500").complete(Prompt("hi"), GenParams())["output"] == "It is sunny."
    assert Handler.seen["429"] == 2 and Handler.seen["500"] == 2
    refusing = client(server, "noseed")
    assert refusing.complete(Prompt("hi"), GenParams(seed=3))["output"] == "It is sunny."
    assert refusing.complete(Prompt("hi"), GenParams(seed=3))["output"] == "It is sunny."
    assert len(refusing.notes) == 1 and "refuses 'seed'" in refusing.notes[0] and Handler.seen["noseed"] == 3
    renaming = client(server, "newmax")
    assert renaming.complete(Prompt("hi"), GenParams(max_new_tokens=9))["output"] == "It is sunny."
    assert renaming.complete(Prompt("hi"), GenParams(max_new_tokens=9), emit=lambda t, n: None)["output"]
    assert Handler.seen["newmax"] == 3 and len(renaming.notes) == 1 and "max_completion_tokens" in renaming.notes[0]


@pytest.mark.parametrize(
    ("model", "said"),
    [
        ("cut", "the stream broke after 5 characters were shown: the stream was torn"),
        ("midfail", "the server failed mid-stream: engine died"),
        ("badjson", "the answer is not JSON"),
        ("slow", "no answer within 1 s"),
        ("401", "HTTP 401 unauthorized"),
    ],
)
def test_each_failure_is_one_line_naming_the_endpoint(server, model, said):
    with pytest.raises(TunelabError) as raised:
        client(server, model, timeout=1.0).complete(Prompt("hi"), GenParams(), emit=lambda text, n: None)
    assert str(raised.value).startswith(f"endpoint fake ({server}): ") and said in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_401_says_whether_the_key_variable_is_set_and_never_the_key(server, monkeypatch):
    unset = ServedClient(Endpoint("fake", server, "401", api_key_env="TUNELAB_TEST_KEY"))
    monkeypatch.delenv("TUNELAB_TEST_KEY", raising=False)
    with pytest.raises(TunelabError, match=r"HTTP 401 unauthorized \(\$TUNELAB_TEST_KEY is not set\)"):
        unset.complete(Prompt("hi"), GenParams())
    monkeypatch.setenv("TUNELAB_TEST_KEY", SECRET)
    with pytest.raises(TunelabError, match=r"the key in \$TUNELAB_TEST_KEY") as raised:
        ServedClient(Endpoint("fake", server, "401", api_key_env="TUNELAB_TEST_KEY")).complete(
            Prompt("hi"), GenParams()
        )
    # the server echoed the key it refused: the line shows that it did, with the key hidden
    assert f"Bearer {SECRET}" in Handler.auth and "invalid api key: Bearer ***" in str(raised.value)
    assert SECRET not in str(raised.value) and SECRET[:12] not in str(raised.value)


def test_a_stream_ended_by_done_without_a_finish_reason_is_whole(server):
    result = client(server, "nofinish").complete(Prompt("hi"), GenParams(), emit=lambda t, n: None)
    assert result["output"] == "It is sunny." and result["stop_reason"] == "eos"


def test_a_stream_without_usage_stops_at_the_token_budget(server):
    """No usage in the stream: a piece a token, so `max_new_tokens 8` shows and keeps 8 pieces, no more."""
    pieces = []
    result = client(server, "endless").complete(
        Prompt("hi"), GenParams(max_new_tokens=8), emit=lambda t, n: pieces.append(t)
    )
    assert result["stop_reason"] == "length" and result["completion_tokens"] == 8
    assert len(pieces) == 8 and result["output"] == "".join(pieces)


def test_a_refused_connection_is_one_line():
    with pytest.raises(TunelabError, match="connection refused"):
        client("http://127.0.0.1:9/v1", "ok").complete(Prompt("hi"), GenParams())


def guarded(call, guard_s=60.0):
    """`call()` on a thread given `guard_s` (generous: a hang fails the test, a slow host never does)."""
    out = {}

    def run():
        try:
            out["value"] = call()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(guard_s)
    assert not thread.is_alive(), f"the call was still running after {guard_s} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def sent(name, guard_s=30.0):
    """What the fake got out of answer `name` before the client stopped reading (once it has ended)."""
    until = time.monotonic() + guard_s
    while name not in Handler.sent and time.monotonic() < until:
        time.sleep(0.05)
    return Handler.sent[name]


@pytest.mark.parametrize(
    ("model", "stream"), [("trickle", True), ("trickle", False), ("slow", True)], ids=["streamed", "whole", "silent"]
)
def test_a_trickling_server_ends_at_the_calls_deadline(server, model, stream):
    """Keep-alives and empty events (or a whole answer's bytes, a few at a time) every 0.2 s: each read
    gets something well within timeout_s, so only the call's deadline (not reset by them) ends it; a
    silent server is not waited on past it either (timeout_s is longer)."""
    point = Endpoint("fake", server, model, timeout_s=1.0 if model == "trickle" else 30.0, deadline_s=1.5)
    emit = (lambda t, n: None) if stream else None
    with pytest.raises(TunelabError) as raised:
        guarded(lambda: ServedClient(point).complete(Prompt("hi"), GenParams(), emit=emit))
    said = str(raised.value)
    assert said == f"endpoint fake ({server}): no complete answer within 1.5 s (deadline_s: the whole call)"


def test_the_deadline_defaults_to_the_token_budget_and_is_set_per_endpoint(home):
    from core.storage.config import config_path

    assert Endpoint("x", "http://h/v1", "m", timeout_s=10).deadline(8) == 10 + 8 * PER_TOKEN_S
    assert Endpoint("x", "http://h/v1", "m", timeout_s=10, deadline_s=5).deadline(4000) == 5
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(
        '[endpoints.fast]\nbase_url = "http://h/v1"\nmodel = "m"\ndeadline_s = 30\n'
        '[endpoints.bad]\nbase_url = "http://h/v1"\nmodel = "m"\ndeadline_s = 0\n'
    )
    assert endpoint("endpoint:fast").deadline(100) == 30
    with pytest.raises(TunelabError, match="endpoint bad: deadline_s must be above 0"):
        endpoint("endpoint:bad")


def test_a_stream_dropped_after_text_was_shown_is_not_retried_and_says_what_was_kept(home, server, capsys):
    from tests.conftest import here

    # nothing shown yet (a whole answer, as an eval asks for): the dropped connection is asked again
    assert client(server, "drop").complete(Prompt("a"), GenParams())["output"] == "It is sunny."
    assert Handler.seen["drop"] == 2
    pieces = []
    with pytest.raises(TunelabError) as raised:
        client(server, "drop").complete(Prompt("b"), GenParams(), emit=lambda t, n: pieces.append(t))
    assert pieces == ["It", " is"] and Handler.seen["drop"] == 3  # shown once, asked once: billed once
    said = str(raised.value)
    assert said.startswith(f"endpoint fake ({server}): the stream broke after 5 characters were shown: ")
    assert said.endswith("not retried (the 5 shown stay as a partial answer, never cached)") and "\n" not in said
    gen = here(capsys, "gen", "--model", f"{server}#drop", "c")  # what a user sees: the pieces once, one line
    assert gen.returncode == 2 and gen.stdout == "It is\n" and Handler.seen["drop"] == 4
    assert gen.stderr.startswith("tunelab: error: endpoint") and "the stream broke after 5" in gen.stderr
    assert gen.stderr.count("\n") == 1


def test_every_5xx_the_readme_names_is_retried_and_501_is_not(server):
    assert client(server, "520").complete(Prompt("hi"), GenParams())["output"] == "It is sunny."
    assert Handler.seen["520"] == 2
    with pytest.raises(TunelabError, match="HTTP 501 the server failed"):
        client(server, "501").complete(Prompt("hi"), GenParams())
    assert Handler.seen["501"] == 1


def test_a_50_mb_models_list_or_error_body_is_read_no_further_than_its_cap(server):
    huge = ServedClient(Endpoint("fake", server.replace("/v1", "/huge/v1"), "ok"))
    with pytest.raises(TunelabError, match=r"/huge/v1\): the answer is over 8 MiB \(the cap on an answer\)"):
        guarded(huge.adapters)
    huge.close()
    assert sent("huge200") < 30 * 10**6  # the client stopped reading: most of the 50 MB never left the server
    loader = client(server, "ok")
    with pytest.raises(TunelabError, match="HTTP 500 the server failed: "):
        guarded(lambda: loader.load_adapter("x", "/huge/adapter"))
    loader.close()
    assert sent("huge500") < 30 * 10**6


def test_a_streamed_line_that_never_ends_is_cut_at_the_line_cap(server):
    with pytest.raises(TunelabError, match=r"a streamed line passed 1 MiB \(the cap on a line\)"):
        guarded(lambda: client(server, "longline").complete(Prompt("hi"), GenParams(), emit=lambda t, n: None))
    assert sent("longline") < 30 * 10**6  # of the 40 MB line


CREDENTIALS = ("tl-user", "hunter2-pass", "q-secret-42")


def credentialed(server):
    """The fake's URL with a user, a password and a query key in it."""
    return server.replace("http://", "http://tl-user:hunter2-pass@") + "?key=q-secret-42"


def test_an_inline_urls_credentials_reach_the_server_and_no_line_key_or_name(server):
    base = credentialed(server)
    point = endpoint(f"{base}#ok")
    result = ServedClient(point).complete(Prompt("hi"), GenParams())
    assert result["output"] == "It is sunny." and "key=q-secret-42" in Handler.paths[-1]
    assert Handler.auth[-1] == "Basic " + base64.b64encode(b"tl-user:hunter2-pass").decode()
    with pytest.raises(TunelabError) as raised:
        ServedClient(endpoint(f"{base}#401")).complete(Prompt("hi"), GenParams())
    said = str(raised.value)  # the server echoed its basic auth and query: hidden in the line
    assert said.startswith(f"endpoint {server}?key=***#401 ({server}?key=***): HTTP 401")
    assert "invalid api key: Basic *** /v1/chat/completions?key=***" in said
    names = [said, point.name, point.fingerprint, shown(f"{base}#ok"), result["endpoint"]]
    assert not [(n, c) for n in names for c in CREDENTIALS if c in n]
    assert shown(f"{base}#ok") == f"{server}?key=***#ok" and endpoint(f"{server}?key=***#ok").base_url == base


def test_an_inline_urls_credentials_are_written_nowhere_and_said_nowhere(home, server, capsys):
    """gen, eval and a refused call with a credentialed inline URL: every line, the history, the eval's
    files and the cache name the URL without them."""
    from tests.conftest import here

    spec = f"{credentialed(server)}#ok"
    runs = [
        here(capsys, "gen", "--model", spec, "Weather?"),
        here(capsys, "eval", "--model", spec, "--no-prompt", "--limit", "3", "--json"),
        here(capsys, "gen", "--model", f"{credentialed(server)}#401", "hi"),
    ]
    assert [r.returncode for r in runs] == [0, 0, 2], runs[1].stderr
    said = "".join(r.stdout + r.stderr for r in runs)
    assert f"{server}?key=***#ok" in said and "HTTP 401" in said
    written = [p for p in home.rglob("*") if p.is_file()]
    assert written and len(Handler.auth) == 5  # the server was asked, with the credentials
    assert not [c for c in CREDENTIALS if c in said or any(c.encode() in p.read_bytes() for p in written)]


@pytest.mark.slow
def test_gen_eval_compare_report_and_export_through_a_configured_endpoint_never_write_the_key(home, server, tmp_path):
    from core.storage.config import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(f'[endpoints.fake]\nbase_url = "{server}"\nmodel = "ok"\napi_key_env = "FAKE_KEY"\n')
    env = {"FAKE_KEY": SECRET, "XDG_CONFIG_HOME": str(config_path().parent.parent)}
    out = tunelab("gen", "--model", "endpoint:fake", "Weather?", home=home, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("It is sunny.") and f"Bearer {SECRET}" in Handler.auth
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"q{i}", "expected": "It is sunny."}) + "\n" for i in range(6))
    )
    out = tunelab("eval", "--model", "endpoint:fake", "--dataset", str(data), "--no-prompt", "--grader", "exact", "--json", home=home, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["variants"][0]["pass_rate"] == 1.0 and summary["variants"][0]["model"] == "endpoint:fake"
    again = tunelab("eval", "--model", "endpoint:fake", "--dataset", str(data), "--no-prompt", "--grader", "exact", "--json", home=home, env=env)  # fmt: skip
    assert json.loads(again.stdout)["variants"][0]["cached"] == 6  # greedy answers are cached by URL and model
    prompt = tmp_path / "p.toml"
    prompt.write_text('template = "Say: {{text}}"\n')
    report = tmp_path / "report.html"
    out = tunelab("compare", "--model", "endpoint:fake", "--dataset", str(data), "--no-prompt", "--prompt", str(prompt), "--grader", "exact", "--report", str(report), home=home, env=env)  # fmt: skip
    assert out.returncode == 0 and report.is_file(), out.stderr
    out = tunelab("history", "export", "--out", str(tmp_path / "all.jsonl"), home=home, env=env)
    assert out.returncode == 0, out.stderr
    written = [p for p in home.rglob("*") if p.is_file()] + [tmp_path / "all.jsonl", report]
    assert written and not [p for p in written if SECRET.encode() in p.read_bytes()]
    bad = tunelab("gen", "--model", "endpoint:nope", "hi", home=home, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("tunelab: error: no endpoint 'nope'")


@pytest.mark.slow
def test_a_served_model_is_a_row_of_the_verdict_beside_a_local_lora(home, server, tmp_path):
    """eval with the demo, its LoRA and a served model: the served model is a row of its own (never paired
    with the local LoRA), with its tokens and latency, and the verdict compares across them."""
    from tests.contract.test_worker_protocol import make_adapter

    run_id = make_adapter(tmp_path / "lora")
    url = f"{server}#ok"
    out = tunelab("eval", "--model", "demo", "--model", url, "--adapter", run_id, "--no-prompt", "--limit", "6", "--json", home=home)  # fmt: skip
    assert out.returncode == 0, out.stderr
    variants = json.loads(out.stdout)["variants"]
    assert [(v["model"], v["adapter"]) for v in variants] == [("demo", None), (url, None), ("demo", run_id)]
    assert variants[1]["mean_completion_tokens"] == 4


def test_a_served_model_is_never_trained_here(home):
    out = tunelab("train", "--model", "http://127.0.0.1:9/v1#big", "--max-steps", "1", home=home)
    assert out.returncode == 2 and "is served: training runs on a local model" in out.stderr
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())


def test_a_served_row_is_priced_per_1000_calls_beside_the_loras_training(home, server, capsys):
    """With prices in its [endpoints] table, the verdict's cost lines give a served row's money per 1,000
    calls from its mean tokens; without them, its latency and tokens and where prices go."""
    from core.evals.report import costs
    from core.storage.config import config_path
    from core.workbench.service import Workbench
    from tests.conftest import here

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(
        f'[endpoints.fake]\nbase_url = "{server}"\nmodel = "ok"\nprice_in = 2.5\nprice_out = 10\n'
        f'[endpoints.free]\nbase_url = "{server}"\nmodel = "ok"\n'
    )
    done = here(capsys, "eval", "--model", "demo", "--model", "endpoint:fake", "--model", "endpoint:free", "--no-prompt", "--limit", "6", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    workbench = Workbench(home)
    lines = costs(workbench.verdicts.comparison(workbench.evals.load(json.loads(done.stdout)["id"])).grid)
    fake = next(line for line in lines if line.startswith("endpoint:fake"))
    # the fake answers 5 prompt and 4 completion tokens: 1000 x (5 x 2.5 + 4 x 10) / 1e6
    assert "served by fake" in fake and "5+4 tokens per call" in fake and "0.0525 per 1,000 calls" in fake
    free = next(line for line in lines if line.startswith("endpoint:free"))
    assert "no prices set" in free and not any(line.startswith("demo (base)") for line in lines)
    with pytest.raises(TunelabError, match="price_in must be a price per million tokens"):
        Endpoint("x", "http://h/v1", "m", price_in=-1)


def judged_rows(tmp_path, n=4):
    path = tmp_path / "open.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "text": f"How is the sky {i}?"}) + "\n" for i in range(n)))
    return str(path)


def test_a_judge_grades_open_ended_rows_keeps_its_reasons_caches_and_counts_unparsable_answers(
    home, server, tmp_path, capsys
):
    from core.workbench.service import Workbench
    from tests.conftest import here

    rows, judge = judged_rows(tmp_path), f"{server}#judge"
    args = ["eval", "--model", f"{server}#ok", "--dataset", rows, "--split", "all", "--no-prompt", "--judge", judge, "--json"]  # fmt: skip
    done = here(capsys, *args, "--grader", "judge:Does it describe the weather?")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["variants"][0]["pass_rate"] == 1.0 and summary["judge"]["calls"] == 4
    assert "judge " in done.stderr and "4 calls (0 cached)" in done.stderr  # its cost, said apart
    graded = Workbench(home).evals.load(summary["id"])
    from core.history.io import eval_rows

    first = next(eval_rows(home, graded))
    assert first["judge"].startswith("PASS") and "judge_error" not in first
    again = json.loads(here(capsys, *args, "--grader", "judge:Does it describe the weather?").stdout)
    assert again["judge"]["cached"] == 4 and again["judge"]["prompt_tokens"] == 0
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Is the answer about cooking?")  # a rubric file: SCORE 0.2 < 0.5 on every row
    assert json.loads(here(capsys, *args, "--grader", f"judge:{rubric}").stdout)["variants"][0]["pass_rate"] == 0.0
    vague = json.loads(here(capsys, *args, "--grader", "judge:something vague").stdout)
    assert vague["variants"][0]["pass_rate"] == 0.0 and vague["judge"]["errors"] == 4  # never a pass


def test_a_judge_spec_without_a_judge_is_one_line_and_config_names_the_default_judge(home, server, tmp_path, capsys):
    from core.storage.config import config_path
    from tests.conftest import here

    rows = judged_rows(tmp_path)
    base = ["eval", "--model", f"{server}#ok", "--dataset", rows, "--split", "all", "--no-prompt"]
    missing = here(capsys, *base, "--grader", "judge:weather?")
    assert missing.returncode == 2 and "needs a judge model: give --judge MODEL" in missing.stderr
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(f'judge = "{server}#judge"\n')
    default = here(capsys, *base, "--grader", "judge:weather?", "--json")
    assert default.returncode == 0, default.stderr
    assert (
        json.loads(default.stdout)["judge"]["calls"] == 4
        and json.loads(default.stdout)["variants"][0]["pass_rate"] == 1.0
    )
    config_path().unlink()
    csv = tmp_path / "pf.csv"
    csv.write_text("text,__expected\nHow is the sky?,llm-rubric: describes the weather\n")
    refused = here(capsys, "eval", "--model", f"{server}#ok", "--dataset", str(csv), "--split", "all", "--no-prompt")
    assert refused.returncode == 2 and "needs a judge model" in refused.stderr
    mapped = here(capsys, "eval", "--model", f"{server}#ok", "--dataset", str(csv), "--split", "all", "--no-prompt", "--judge", f"{server}#judge", "--json")  # fmt: skip
    assert mapped.returncode == 0 and json.loads(mapped.stdout)["variants"][0]["pass_rate"] == 1.0, mapped.stderr


def test_an_endpoint_that_loads_loras_gets_tunelabs_adapter_and_serves_its_row(home, server, tmp_path, capsys):
    """vLLM's runtime LoRA loading: with `loads_lora`, a local --adapter is loaded into the server by path
    (POST /v1/load_lora_adapter) and its row is generated there under the name it was loaded as."""
    from core.storage.config import config_path
    from tests.conftest import here
    from tests.contract.test_worker_protocol import make_adapter

    lora = make_adapter(tmp_path / "lora")
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(
        f'[endpoints.vllm]\nbase_url = "{server}"\nmodel = "ok"\nloads_lora = true\n'
        f'[endpoints.plain]\nbase_url = "{server}"\nmodel = "ok"\n'
    )
    Handler.loaded.clear()
    done = here(capsys, "eval", "--model", "endpoint:vllm", "--adapter", lora, "--no-prompt", "--limit", "3", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    variants = json.loads(done.stdout)["variants"]
    assert [(v["model"], v["adapter"]) for v in variants] == [("endpoint:vllm", None), ("endpoint:vllm", lora)]
    assert len(Handler.loaded) == 1 and Handler.loaded[0]["lora_path"] == str((tmp_path / "lora").resolve())
    assert Handler.seen[Handler.loaded[0]["lora_name"]] == 3  # the row's calls name the loaded adapter
    plain = here(capsys, "eval", "--model", "endpoint:plain", "--adapter", lora, "--no-prompt", "--limit", "3", "--json")  # fmt: skip
    assert [v["adapter"] for v in json.loads(plain.stdout)["variants"]] == [None]  # no loads_lora: the base only
    refusing = tmp_path / "nolora"
    make_adapter(refusing)
    failed = here(capsys, "eval", "--model", "endpoint:vllm", "--adapter", str(refusing), "--no-prompt", "--limit", "1")  # fmt: skip
    assert failed.returncode != 0 and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_an_adapter_the_server_lists_is_picked_by_name_and_a_local_model_gets_no_such_row(home, server, capsys):
    """vLLM's `--lora-modules`: an adapter in `/v1/models` (with a parent) is a row of the served model,
    asked for by its name; a local model beside it has no such adapter, so no such row; a name the server
    does not list is one line naming what it lists."""
    from tests.conftest import here

    base = ["eval", "--model", f"{server}#ok", "--no-prompt", "--limit", "3", "--json"]
    done = here(capsys, *base, "--adapter", "ok-lora", "--model", "demo")
    assert done.returncode == 0, done.stderr
    variants = json.loads(done.stdout)["variants"]
    assert sorted((v["model"], v["adapter"] or "") for v in variants) == sorted(
        [(f"{server}#ok", ""), (f"{server}#ok", "ok-lora"), ("demo", "")]
    )
    assert Handler.seen["ok-lora"] == 3 and Handler.seen["ok"] == 3  # the LoRA's rows asked for it by name
    missing = here(capsys, *base, "--adapter", "no-such-lora")
    assert missing.returncode == 2 and "lists no such LoRA (its adapters: ok-lora)" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_local_judge_answers_after_the_generations_in_one_batch_and_is_cached(home, server, tmp_path, capsys):
    """A local judge runs on the eval's own engine: every row is judged (the demo model rarely answers in
    the PASS/FAIL form, so most are judge errors: counted, never passes), and a second eval reuses them."""
    from core.history.io import eval_rows
    from core.workbench.service import Workbench
    from tests.conftest import here

    rows = judged_rows(tmp_path, n=3)
    args = ["eval", "--model", f"{server}#ok", "--dataset", rows, "--split", "all", "--no-prompt", "--json",
            "--grader", "judge:Does it describe the weather?", "--judge", "demo"]  # fmt: skip
    done = here(capsys, *args)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    tally = summary["judge"]
    assert tally["model"] == "demo" and tally["calls"] == 3 and tally["cached"] == 0
    assert tally["completion_tokens"] > 0
    graded = list(eval_rows(home, Workbench(home).evals.load(summary["id"])))
    assert len(graded) == 3 and all("judge" in row for row in graded)
    errors = sum("judge_error" in row for row in graded)
    assert errors == tally["errors"] and all(not row["passed"] for row in graded if "judge_error" in row)
    again = json.loads(here(capsys, *args).stdout)["judge"]
    assert again["calls"] == 3 and again["cached"] == 3 and again["completion_tokens"] == 0
