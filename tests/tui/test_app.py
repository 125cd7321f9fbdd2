"""Pilot tests: the TUI as a person uses it, on a scripted model client (and once on the real one)."""

import threading

from textual.widgets import Input, Select

from core.history.store import History
from tests.fakes import STORY, FakeClient
from tests.tui_helpers import StartedApp, burst, fake_app, run_prompt, start_held_run, type_prompt, wait_for
from tui.app import TunelabApp
from tui.messages import WorkerMessage


def stats(app) -> str:
    return str(app.query_one("#result-stats").render())


async def test_run_streams_output_and_saves_history(home):
    events = []
    app = fake_app(home)
    async with app.run_test(
        size=(80, 24), message_hook=lambda m: isinstance(m, WorkerMessage) and events.append(m.event.TAG)
    ) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        assert "demo · cpu" in app.sub_title
        await run_prompt(pilot, "Tell me a story")
        assert app.main.results.output.text == "".join(STORY)
        assert "20 tok · 400 tok/s" in stats(app) and "eos" in stats(app)
    assert events == ["loading", "ready", "started", *["chunk"] * len(STORY), "done"]
    record = History(home).recent(1)[0]
    assert record["prompt"] == "Tell me a story" and record["output"] == "".join(STORY)
    assert record["status"] == "done" and record["rendered_prompt"].startswith("<|user|>")
    assert record["params"]["max_new_tokens"] == 128


async def test_escape_cancels_mid_stream_and_keeps_partial_output(home):
    app = fake_app(home, gate=threading.Event())
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_run(pilot, "go")
        assert "5 tok · " in stats(app) and "tok/s · esc cancels" in stats(app)  # live progress
        await pilot.press("ctrl+r")  # a second run while busy is refused, not queued
        assert len(app.client.requests) == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.main.generation is None)
        await app.settled()
        assert "cancelled" in stats(app)
    record = History(home).recent(1)[0]
    assert record["status"] == "cancelled" and record["output"] == STORY[0]


async def test_params_from_the_form_reach_the_request(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#param-max_new_tokens", Input).value = "12"
        app.query_one("#param-temperature", Input).value = "0.8"
        app.query_one("#param-stop", Input).value = "fin é\\n"
        await run_prompt(pilot, "x")
    params = app.client.requests[0]["params"]
    assert (params["max_new_tokens"], params["temperature"], params["stop"]) == (12, 0.8, ["fin é\n"])


async def test_bad_param_is_a_one_line_error_and_nothing_runs(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#param-top_p", Input).value = "5"
        await type_prompt(pilot, "x")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "top_p must be in (0, 1]" in stats(app)
        assert app.client.requests == [] and app.main.generation is None


async def test_load_error_is_shown_and_another_model_can_be_loaded(home):
    app = StartedApp(
        "missing-model", home=home, client_factory=lambda cb: FakeClient(cb, bad_models=("missing-model",))
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "not found" in stats(app))
        assert not app.main.model_ready and app.sub_title == "no model"
        model = app.query_one("#model-input", Input)
        model.value = "demo"
        model.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.model_ready)
        assert "ready: demo" in stats(app)


async def test_worker_crash_is_reported_and_the_next_run_works(home):
    gate = threading.Event()
    app = fake_app(home, gate=gate)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_run(pilot, "a")
        app.client.crash()
        await wait_for(pilot, lambda: "model worker exited" in stats(app))
        assert app.main.generation is None
        gate.set()
        await wait_for(pilot, lambda: not app.in_flight())
        await run_prompt(pilot, "b")
        assert app.main.results.output.text == "".join(STORY)
    kinds = [(r["prompt"], r["status"]) for r in History(home).recent(5)]
    assert ("a", "error") in kinds and ("ab", "done") in kinds


async def test_a_worker_that_stops_answering_is_named_on_screen_and_the_run_saved_as_failed(home):
    """A run held open with no event past its deadline (a stuck library call): the watchdog names it in the
    status line, the run is saved as an error with why, and the next run works on a fresh worker."""
    gate = threading.Event()
    app = fake_app(home, gate=gate, hang_s=1.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_run(pilot, "a")
        await wait_for(pilot, lambda: "has not answered request" in stats(app))
        assert "restarts on the next request" in stats(app) and app.main.generation is None
        gate.set()
        await wait_for(pilot, lambda: not app.in_flight())
        await run_prompt(pilot, "b")
        assert app.main.results.output.text == "".join(STORY)
    failed = next(r for r in History(home).recent(5) if r["prompt"] == "a")
    assert failed["status"] == "error" and "has not answered request" in failed["error"]


async def test_chat_mode_without_template_is_one_line_error_and_raw_still_works(home):
    app = fake_app(home, chat_template=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#mode-select", Select).value = "chat"
        await type_prompt(pilot, "hi")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.main.generation is None)
        assert stats(app) == "model 'demo' has no chat template; use raw mode"
        app.query_one("#mode-select", Select).value = "raw"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.main.generation is None)
        await app.settled()
        assert app.main.results.output.text == "".join(STORY)
    assert [(r["mode"], r["status"]) for r in History(home).recent(5)] == [("raw", "done"), ("chat", "error")]


async def test_the_first_frame_composes_only_what_it_shows_and_the_rest_follows(home):
    """The sampling form, the training pane and the Eval tab mount after the first frame; the model load
    and the start-up reads wait for them; a key pressed before that acts once they are there."""
    app = TunelabApp("demo", client_factory=FakeClient, home=home)  # the plain app: no wait for the start
    first_frame: dict[str, bool] = {}

    after_first_frame = app._after_first_frame

    def at_first_frame() -> None:  # what the first frame showed, as the start-up work begins
        first_frame.update(
            params=bool(app.query("#param-max_new_tokens")),
            training=bool(app.query("#training-pane")),
            evals=bool(app.query("#eval-split")),
            editor=bool(app.query("#prompt-text")),
            client=app._client is not None,
        )
        after_first_frame()

    app._after_first_frame = at_first_frame  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await type_prompt(pilot, "hi")
        await pilot.press("ctrl+r")  # maybe before the rest is mounted: it runs once it is
        await wait_for(pilot, lambda: len(app.client.requests) == 1 and app.main.generation is None)
        assert app.query_one("#param-max_new_tokens") and app.query_one("#training-pane")
    assert first_frame == {"params": False, "training": False, "evals": False, "editor": True, "client": False}


async def burst_and_run(app: TunelabApp, pilot, home, text: str) -> dict:
    """ctrl+a, `text` and ctrl+r in one burst; the run's history record."""
    burst(app, "ctrl+a", *text, "ctrl+r")
    await wait_for(pilot, lambda: app.started and app.main.busy_since_start and app.main.generation is None)
    await app.settled()
    assert "The prompt is empty." not in [n.message for n in app._notifications]
    assert app.main.prompt.text == text
    return History(home).recent(1)[0]


async def test_ctrl_r_in_a_burst_runs_what_the_pane_shows(home):
    """ctrl+r is a priority key: the app handles it as it arrives, while the keys typed before it still wait
    in the editor's queue. Sent in one burst, it ran an empty prompt while the pane showed the text."""
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        record = await burst_and_run(app, pilot, home, " a-1")
    assert record["prompt"] == " a-1" and record["status"] == "done"


async def test_keys_in_a_burst_at_the_first_frame_run_once_the_app_has_started(home):
    """At first start, ctrl+a, the text and ctrl+r before the start-up is done: ctrl+r waits for the start
    (re-posted on every pass, it hung the app) and then runs what the pane shows."""
    app = TunelabApp("demo", client_factory=FakeClient, home=home)  # the plain app: no wait for the start
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "prompt-text")
        assert not app.started
        record = await burst_and_run(app, pilot, home, " a-1")
    assert record["prompt"] == " a-1" and record["status"] == "done"


async def test_a_data_dir_that_cannot_be_used_ends_the_app_with_one_line(tmp_path, capsys):
    """The workbench is made after the first frame: a data dir that is a file ends the app with the
    command line's one line and exit code 2, never a traceback."""
    home = tmp_path / "not-a-folder"
    home.write_text("x")
    app = TunelabApp("demo", client_factory=FakeClient, home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 2
    said = capsys.readouterr().err.replace("\n", "")  # printed at exit, wrapped to the terminal's width
    assert said == f"tunelab: error: Not a directory ({home / 'history'}); nothing was changed"


async def test_the_startup_heap_is_frozen_while_the_app_runs(home):
    """A full collection of the started app's heap stalls the UI loop for tens of ms: what exists once
    the app has started is out of the collector's scans until the app exits."""
    import gc

    async with fake_app(home).run_test(size=(80, 24)):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
