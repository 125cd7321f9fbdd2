"""Pilot tests of the training monitor: re-attach from files, and a real run stopped and resumed."""

import pytest
from textual.widgets import Input

from core.data.datasets import load_dataset
from core.training.runs import Runs
from tests.seeded import finished_run as fake_finished_run
from tests.tui_helpers import fake_app, wait_for
from tui.screens.train_form import TrainForm
from tui.widgets.loss_chart import LossChart
from tui.widgets.training_pane import TrainingPane


async def test_restart_reattaches_to_the_newest_run_with_its_full_curve(home):
    run_id = fake_finished_run(home)
    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected == run_id)
        status = str(app.query_one("#training-status").render())
        assert f"{run_id[:10]} done" in status and "step 12/12" in status and "eval 0.2700" in status
        loss, eval_loss = app.query_one("#loss-chart", LossChart).series[:2]
        assert len(loss[0]) == 12 and len(eval_loss[0]) == 2
        assert "step 12" in str(app.query_one("#loss-chart", LossChart).render())


async def test_a_scored_run_shows_its_pass_rate_curve_and_best_checkpoint(home):
    import json

    from core.training.runs import StatusWriter

    run_id = fake_finished_run(home)
    run_dir = Runs(home).path(run_id)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if "eval_loss" in row:
            row["pass_rate"] = {6: 0.75, 12: 0.5}[row["step"]]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    StatusWriter(run_dir).update(pass_rate=0.5, best_checkpoint="step-000006", best_pass_rate=0.75)
    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected == run_id and pane.has_class("-scored"))
        assert "pass 50%, best step-000006 75%" in str(app.query_one("#training-status").render())
        chart = app.query_one("#pass-chart", LossChart)
        assert chart.display and chart.series == [([(6, 75.0), (12, 50.0)], "green")]


async def test_a_run_that_stopped_early_says_where_and_why_and_its_chart_marks_the_step(home):
    from core.training.runs import StatusWriter

    run_id = fake_finished_run(home)
    why = "stopped early at step 12: eval_loss has not improved for 3 evaluations; best checkpoint step-000006"
    StatusWriter(Runs(home).path(run_id)).update(total_steps=40, early_stop=why)
    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected == run_id)
        assert f"{run_id[:10]} done · step 12/40 · {why}" in " ".join(
            str(app.query_one("#training-status").render()).split()
        )
        assert app.query_one("#loss-chart", LossChart).marks == ((12, "red"),)


async def test_the_overlay_of_a_sweeps_run_shows_its_sweeps_other_runs_first(home):
    from core.training.config import TrainConfig
    from tests.seeded import finish

    runs = Runs(home)

    def run(sweep=None):
        run_id = runs.create(TrainConfig(max_steps=12), sweep)
        finish(runs.path(run_id), 12, adapter=False)
        return run_id

    mate = run({"id": "s1", "index": 1, "size": 2, "values": {"lora_r": 8}})
    other = run()  # newer than the mate: the overlay of a run of no sweep shows it first
    newest = run({"id": "s1", "index": 2, "size": 2, "values": {"lora_r": 16}})
    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected == newest)
        pane.focus()
        await pilot.press("o")
        await wait_for(pilot, lambda: pane.overlaid == [mate, other])
        await wait_for(pilot, lambda: len(app.query_one("#loss-chart", LossChart).series) == 4)
        pane.select(other)
        await wait_for(pilot, lambda: pane.overlaid == [newest, mate])


async def open_train_form(pilot) -> TrainForm:
    """The new-run form, opened with ctrl+n unless it is open already."""
    app = pilot.app
    if not isinstance(app.screen, TrainForm):
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainForm))
    return app.screen


async def submit_train_form(pilot, **fields: str) -> None:
    """Open the new-run form (unless open), fill `fields` and press enter."""
    app = pilot.app
    await open_train_form(pilot)
    for name, value in fields.items():
        app.screen.query_one(f"#train-{name}", Input).value = value
    await pilot.press("enter")


async def test_bad_setting_in_the_form_is_named(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await submit_train_form(pilot, lora_r="0")
        await pilot.pause()
        assert "lora_r must be at least 1" in str(app.screen.query_one("#train-error").render())
        await submit_train_form(pilot, lora_r="many")
        await pilot.pause()
        assert "lora_r must be a whole number, got 'many'" in str(app.screen.query_one("#train-error").render())
        assert "q_proj" in str(app.screen.query_one("#train-linear").render())
        await submit_train_form(pilot, lora_r="8", target_modules="q_proj,attn")
        await pilot.pause()
        assert "unknown target module 'attn' (valid: all-linear, down_proj" in str(
            app.screen.query_one("#train-error").render()
        )
        await submit_train_form(pilot, schedule="wavy", target_modules="all-linear")
        await pilot.pause()
        assert "schedule must be one of cosine" in str(app.screen.query_one("#train-error").render())
        assert Runs(home).list() == []


async def test_the_prompt_checkbox_says_on_or_off_and_enter_on_it_starts_the_run(home):
    from textual.widgets import Checkbox

    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        box = (await open_train_form(pilot)).query_one("#train-use-prompt", Checkbox)
        assert "(OFF" in str(box.label)
        box.focus()
        await pilot.press("space")
        assert box.value and "(ON)" in str(box.label)
        app.screen.query_one("#train-max_steps", Input).value = "0"  # a bad value: enter submits, not toggles
        box.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert box.value and "max_steps must be at least 1" in str(app.screen.query_one("#train-error").render())


async def test_the_memory_and_lora_switches_reach_the_run_settings(home):
    from textual.widgets import Checkbox

    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        form = await open_train_form(pilot)
        assert form.settings()["packing"] is False and form.settings()["gradient_checkpointing"] is False
        assert str(form.query_one("#train-packing", Checkbox).label) == "packing off"
        for name in ("packing", "gradient_checkpointing"):
            box = form.query_one(f"#train-{name}", Checkbox)
            box.focus()
            await pilot.press("space")
            assert box.value and str(box.label).endswith(" on")
        await pilot.click("#train-use_dora")
        settings = form.settings()
        assert settings["packing"] and settings["gradient_checkpointing"] and settings["use_dora"]
        assert not settings["use_rslora"] and not settings["use_prompt"]


@pytest.mark.slow
async def test_start_watch_stop_and_resume_from_the_tui(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 36)) as pilot:
        await submit_train_form(pilot, max_steps="300", batch_size="8", eval_split="")
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected is not None)
        run_id = pane.selected
        await wait_for(pilot, lambda: len(pane.watched[run_id].loss) >= 3, timeout=180)
        pane.focus()
        await pilot.press("s")
        await wait_for(pilot, lambda: Runs(home).status(run_id).state == "stopped", timeout=120)
        await wait_for(pilot, lambda: "stopped" in str(app.query_one("#training-status").render()))
        stops = lambda: [n.message for n in app._notifications if "stop" in n.message.lower()]  # noqa: E731
        await wait_for(pilot, lambda: stops())
        await pilot.pause()
        assert stops() == [f"Training run {run_id[:10]} stopped."]  # one toast for one stop
        stopped_at = Runs(home).status(run_id).step
        assert Runs(home).status(run_id).checkpoints
        await pilot.press("u")
        await wait_for(pilot, lambda: Runs(home).status(run_id).step > stopped_at + 2, timeout=180)
        Runs(home).kill(run_id)  # enough: the resumed run is training past where it stopped


async def test_finished_adapters_are_offered_and_evaluated_as_a_2x2(home):
    run_id = fake_finished_run(home, adapter=True)
    app = fake_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        select = app.query_one("#adapter-select")
        await wait_for(pilot, lambda: len(select._options) > 1)  # adapters are listed off the UI loop
        assert [value for _, value in select._options if value is not select.NULL] == [run_id]
        select.value = run_id
        app.query_one("#prompt-name", Input).value = "senti"
        app.query_one("#prompt-text").text = "{{text}}\nSentiment:"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.main.generation is None)
        assert app.client.requests[0]["adapter"].endswith(f"{run_id}/adapter")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.main.evals.token is None)
        from tui.widgets.eval_pane import EvalPane

        columns = app.query_one(EvalPane).columns
        labels = [c.label for c in columns]
        assert len(labels) == 4 and sum(f"+{run_id[:9]}" in label for label in labels) == 2
        verdict = str(app.query_one("#eval-verdict").render())  # the 2x2 is judged on one screen
        assert " wins (" in verdict or verdict.startswith("A tie")
        assert "the LoRA was trained as is (no prompt), here used with this prompt" in verdict
        rates = [c.summary.variants[c.variant].pass_rate for c in columns]
        positives = sum(it.expected == "positive" for it in load_dataset("demo").split("eval")) / 120
        assert rates[0] == 0.0 and rates[2] == rates[3] == positives  # the fake "LoRA" always says positive
        await pilot.press("ctrl+g")  # all four are shown already: the prompt's column runs again
        await wait_for(pilot, lambda: app.main.evals.token is None)
        assert len(app.query_one(EvalPane).columns) == 5
        await app.settled()
    from core.history.query import parse_query
    from core.history.store import History

    runs = History(home).search(parse_query("kind:generation")).rows
    assert runs[0]["adapter"] == run_id


async def test_an_adapter_trained_elsewhere_appears_in_the_lora_list_while_the_app_runs(home):
    watched = fake_finished_run(home)  # the pane shows this one; the next finishes in another terminal
    app = fake_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        select = app.query_one("#adapter-select")
        await wait_for(pilot, lambda: app.query_one(TrainingPane).selected == watched)
        assert [value for _, value in select._options if value is not select.NULL] == []
        elsewhere = fake_finished_run(home, adapter=True)
        await wait_for(pilot, lambda: elsewhere in [value for _, value in select._options])


async def test_an_adapter_folder_from_elsewhere_joins_the_lora_list_and_stays(home, tmp_path):
    folder = tmp_path / "my-peft-lora"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"base_model_name_or_path": "demo", "peft_type": "LORA"}')
    (folder / "adapter_model.safetensors").write_bytes(b"")
    app = fake_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        app.main.action_add_adapter_folder()
        await pilot.pause()
        app.screen.query_one("#ask-input", Input).value = str(tmp_path / "nowhere")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "no adapter folder" in str(app.main.results.query_one("#result-stats").render()))
        app.main.action_add_adapter_folder()
        await pilot.pause()
        app.screen.query_one("#ask-input", Input).value = str(folder)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one("#adapter-select").value == str(folder))
        app.query_one("#prompt-text").text = "hello"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.client.requests and app.main.generation is None)
        assert app.client.requests[-1]["adapter"] == str(folder)
    app = fake_app(home)  # the next start offers it too
    async with app.run_test(size=(120, 40)) as pilot:
        select = app.query_one("#adapter-select")
        await wait_for(pilot, lambda: any(value == str(folder) for _, value in select._options))
        assert [label for label, value in select._options if value == str(folder)] == ["my-peft-lora (folder)"]


async def test_a_sweep_from_the_form_runs_each_run_in_turn_followed_then_names_the_best(home, monkeypatch):
    """The form's sweep field: a bad grid is one line naming it and the form stays; a good one trains a run per
    value, one after another, the monitor selecting each as it starts, and the best on dev is said at the end.
    Each run's process is faked as ending done at once with an eval loss set by its learning rate."""
    from core.training.runs import StatusWriter
    from tests.seeded import finish
    from tests.tui.test_verdict_tui import notes

    eval_loss, started = {1e-4: 0.9, 1e-3: 0.4}, []

    def launch(runs, run_id, *_, **__):
        assert all(runs.status(r).state == "done" for r in started)  # one after another
        started.append(run_id)
        finish(runs.path(run_id), 2, adapter=True)
        StatusWriter(runs.path(run_id)).update(eval_loss=eval_loss[runs.train_config(run_id).learning_rate])
        return 0

    monkeypatch.setattr(Runs, "launch", launch)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await submit_train_form(pilot, sweep="lr=1e-4")
        await pilot.pause()
        assert isinstance(app.screen, TrainForm)
        assert str(app.screen.query_one("#train-error").render()) == (
            "sweep: 'lr' cannot be swept (not a training option; keys: the training options' names)"
        )
        await submit_train_form(pilot, sweep="learning_rate=1e-4,1e-3", max_steps="2")
        await wait_for(pilot, lambda: any(n.startswith("Sweep s") for n in notes(app)))
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected == started[-1])
    slow, fast = started
    said = list(notes(app))
    assert "Sweep run 1/2: learning_rate=0.0001" in said and "Sweep run 2/2: learning_rate=0.001" in said
    ended = next(n for n in said if n.startswith("Sweep s"))
    assert ended.endswith(f"ended: best on dev {fast} (eval_loss 0.4) of 2 runs.")
    assert [Runs(home).train_config(r).max_steps for r in started] == [2, 2]


async def test_quitting_mid_sweep_leaves_the_current_run_going_and_starts_no_more(home, monkeypatch):
    import threading

    import core.training.runs as runs_module
    from core.training.runs import StatusWriter
    from core.workbench.sweeping import Sweeps
    from tests.seeded import finish

    started, ended, run = [], threading.Event(), Sweeps.run

    def observed(sweeps, *args, **kwargs):  # the real sweep, its end seen
        try:
            return run(sweeps, *args, **kwargs)
        finally:
            ended.set()

    def launch(runs, run_id, *_, **__):  # each run started stays live until finished
        started.append(run_id)
        StatusWriter(runs.path(run_id)).update(state="running")
        return 0

    monkeypatch.setattr(Runs, "launch", launch)
    monkeypatch.setattr(runs_module, "running", lambda *_: True)
    monkeypatch.setattr(Sweeps, "run", observed)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await submit_train_form(pilot, sweep="learning_rate=1e-4,1e-3", max_steps="2")
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: started and pane.selected == started[0])
    finish(Runs(home).path(started[0]), 2, adapter=True)  # the first run ends after the app has gone
    assert ended.wait(10)
    assert len(started) == 1  # the second never started


async def test_at_once_trains_a_sweeps_runs_together_and_S_stops_the_whole_sweep(home, monkeypatch):
    """The form's `at once` beside the sweep (more than 1 without a grid is one line); with two at once both runs
    are live together; S on a run of the sweep asks each live one to stop and save, and no other starts."""
    import core.training.runs as runs_module
    from core.training.runs import STOP_FILE, StatusWriter
    from tests.tui.test_verdict_tui import notes

    started = []

    def launch(runs, run_id, *_, **__):  # each run started stays live until the test ends it
        started.append(run_id)
        StatusWriter(runs.path(run_id)).update(state="running")
        return 0

    monkeypatch.setattr(Runs, "launch", launch)
    monkeypatch.setattr(runs_module, "running", lambda *_: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: the two share the cores
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await submit_train_form(pilot, nproc="2", max_steps="2")
        await pilot.pause()
        assert str(app.screen.query_one("#train-error").render()) == (
            "at once: more than 1 trains a sweep's runs at once: give a sweep grid too"
        )
        await submit_train_form(pilot, sweep="lora_r=4,8,16", nproc="2", max_steps="2")
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: len(started) == 2 and pane.selected == started[1])
        pane.focus()
        await pilot.press("S")
        said = lambda: [n for n in notes(app) if "no more of its runs start" in n]  # noqa: E731
        await wait_for(pilot, said)
        assert said()[0].endswith(f"no more of its runs start; stopping {started[0]}, {started[1]}.")
        assert all((Runs(home).path(run_id) / STOP_FILE).exists() for run_id in started)
        for run_id in started:  # as each run does at its next step
            StatusWriter(Runs(home).path(run_id)).update(state="stopped")
        await wait_for(pilot, lambda: any(" stopped after 2 of 3 runs" in n for n in notes(app)))
    assert len(started) == 2 and {Runs(home).config(r)["sweep"]["on"] for r in started} == {"CPU"}
