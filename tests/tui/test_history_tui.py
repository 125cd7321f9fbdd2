"""The history screen as a person uses it: search as you type, filter, tag, label, re-open, export."""

import json

from textual.widgets import DataTable, Input, TextArea

from core.data.prompts import PromptStore
from core.history.store import History
from tests.seeded import SENTI, finished_run
from tests.tui_helpers import burst, fake_app, run_prompt, wait_for
from tui.screens.history import HistoryScreen
from tui.widgets.prompt_pane import PromptPane


def _seed(home):
    h = History(home)
    ids = {}
    ids["cat"] = h.add(
        {
            "kind": "generation",
            "status": "done",
            "model": "demo",
            "mode": "raw",
            "prompt": "a cat story",
            "system": "be kind",
            "output": "the cat sat",
            "params": {"max_new_tokens": 7, "temperature": 0.5, "seed": 3},
            "prompt_name": "cats",
        }
    )
    ids["dog"] = h.add(
        {"kind": "generation", "status": "done", "model": "demo", "prompt": "a dog story", "output": "the dog ran"}
    )
    ids["eval"] = h.add(
        {
            "kind": "eval",
            "status": "done",
            "model": "demo",
            "prompt": "eval demo:eval",
            "output": "x: 50.0%",
            "ref": "e123",
        }
    )
    return h, ids


async def _open(pilot):
    await pilot.press("f8")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen) and pilot.app.screen.rows)
    return pilot.app.screen


def _shown(screen):
    return [r["id"] for r in screen.rows]


async def _search(pilot, screen, text, expect):
    field = screen.query_one("#history-query", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)
    await wait_for(pilot, lambda: _shown(screen) == expect)


async def test_search_as_you_type_and_filters(home):
    _, ids = _seed(home)
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        assert _shown(screen) == [ids["eval"], ids["dog"], ids["cat"]]
        await _search(pilot, screen, "cat", [ids["cat"]])
        await _search(pilot, screen, "story kind:generation", [ids["dog"], ids["cat"]])
        await _search(pilot, screen, "kind:eval", [ids["eval"]])
        screen.query_one("#history-query", Input).value = "kind:nope"  # a bad filter leaves the list as it was
        await wait_for(
            pilot, lambda: "kind:nope is not a record kind" in str(screen.query_one("#history-status").render())
        )
        assert _shown(screen) == [ids["eval"]]
        await _search(pilot, screen, "zebra", [])
        assert "nothing matches" in str(screen.query_one("#history-status").render())


async def test_star_tag_label_and_correct_from_the_keyboard(home):
    h, ids = _seed(home)
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        await _search(pilot, screen, "cat", [ids["cat"]])
        screen.query_one(DataTable).focus()
        await pilot.press("s")
        await wait_for(pilot, lambda: (h.get(ids["cat"]) or {}).get("starred") is True)
        await pilot.press("t")
        await pilot.press(*"fiction pets", "enter")
        await wait_for(pilot, lambda: h.get(ids["cat"]).get("tags") == ["fiction", "pets"])
        await pilot.press("plus")
        await wait_for(pilot, lambda: h.get(ids["cat"]).get("label") == "good")
        await pilot.press("c")
        pilot.app.screen.query_one("#ask-text", TextArea).text = ""
        burst(pilot.app, *"the cat slept", "ctrl+r")  # typed fast: ctrl+r saves all that was typed
        await wait_for(pilot, lambda: h.get(ids["cat"]).get("correction") == "the cat slept")
        await wait_for(pilot, lambda: screen.rows[0]["label"] == "corrected" and screen.rows[0]["starred"])
        await _search(pilot, screen, "tag:pets is:starred label:corrected", [ids["cat"]])


async def test_enter_reopens_prompt_params_and_name_in_the_editor(home):
    _, ids = _seed(home)
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        await _search(pilot, screen, "cat", [ids["cat"]])
        screen.query_one(DataTable).focus()
        await wait_for(pilot, lambda: screen.record is not None and screen.record["id"] == ids["cat"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, HistoryScreen))
        app = pilot.app
        assert app.query_one("#prompt-text").text == "a cat story"
        assert app.query_one("#system-input").value == "be kind"
        assert app.query_one("#prompt-name").value == "cats"
        assert str(app.query_one("#mode-select").value) == "raw"
        assert app.query_one("#param-max_new_tokens").value == "7"
        assert app.query_one("#param-temperature").value == "0.5"
        await pilot.press("ctrl+r")  # and re-run it from there
        await wait_for(pilot, lambda: app.main.generation is None and len(History(home).recent(10)) == 4)
        await app.settled()
        rerun = History(home).recent(1)[0]
        assert rerun["prompt"] == "a cat story" and rerun["params"]["max_new_tokens"] == 7


async def test_export_the_matching_records(home, tmp_path):
    _, ids = _seed(home)
    target = tmp_path / "dogs.jsonl"
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        await _search(pilot, screen, "dog", [ids["dog"]])
        screen.query_one(DataTable).focus()
        await pilot.press("e")
        pilot.app.screen.query_one("#ask-input").value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists())
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == [ids["dog"]]


async def test_a_run_shows_up_in_history_and_paging_loads_more(home, monkeypatch):
    from tui.screens import history as screen_mod

    monkeypatch.setattr(screen_mod, "PAGE", 5)
    History(home).add_many({"kind": "generation", "prompt": f"old {i}", "output": "o"} for i in range(12))
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        await run_prompt(pilot, "fresh prompt")
        screen = await _open(pilot)
        assert screen.rows[0]["prompt"] == "fresh prompt" and screen.cursor is not None
        screen.query_one(DataTable).focus()
        for _ in range(12):
            await pilot.press("down")
        await wait_for(pilot, lambda: len(screen.rows) == 13 and screen.cursor is None)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, HistoryScreen))


async def test_imported_records_of_any_shape_list_preview_and_reopen(home):
    h = History(home)
    odd = h.add(
        {
            "kind": "train",
            "prompt": ["not", "text"],
            "output": {"a": 1},
            "model": 7,
            "tags": "x",
            "latency_s": "slow",
            "params": "none",
            "completion_tokens": True,
        }
    )
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        await wait_for(pilot, lambda: screen.record is not None and screen.record["id"] == odd)
        assert "train" in str(screen.query_one("#history-preview").render())
        screen.query_one(DataTable).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, HistoryScreen))


async def test_typing_on_open_searches_and_list_keys_act_in_the_list(home):
    from textual.widgets import DataTable

    History(home).add({"kind": "generation", "prompt": "a note story", "output": "o"})
    History(home).add({"kind": "generation", "prompt": "a dog story", "output": "o"})
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        await pilot.press("n", "o", "t", "e")  # letters that are list keys search while the box has focus
        await wait_for(pilot, lambda: len(screen.rows) == 1)
        assert app.screen is screen and screen.query_one("#history-query", Input).value == "note"
        await pilot.press("down")
        assert isinstance(app.focused, DataTable)
        await pilot.press("s")  # in the list, s stars
        await wait_for(pilot, lambda: screen.rows[0]["starred"])


async def test_the_prompt_on_screen_survives_a_restart(home):
    run_id = finished_run(home, adapter=True)
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        app = pilot.app
        await wait_for(pilot, lambda: run_id in app.query_one(PromptPane).adapter_ids)
        app.query_one("#prompt-name").value = "senti"
        app.query_one("#prompt-text").text = "{{text}} Overall, this review is"
        app.query_one("#system-input").value = "be brief"
        app.query_one("#mode-select").value = "raw"
        app.query_one("#param-max_new_tokens").value = "4"
        app.main.prompt.use_adapter(run_id)
        await pilot.pause()
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        app = pilot.app
        await wait_for(pilot, lambda: app.query_one(PromptPane).adapter == run_id)
        pane = app.query_one(PromptPane)
        assert (pane.prompt_name, pane.text, pane.mode) == ("senti", "{{text}} Overall, this review is", "raw")
        assert app.query_one("#system-input").value == "be brief"
        assert app.query_one("#param-max_new_tokens").value == "4"


async def test_reopening_a_record_keeps_its_adapter(home):
    run_id = finished_run(home, adapter=True)
    version_id = PromptStore(home).save("senti", SENTI)
    h = History(home)
    generation = h.add({"kind": "generation", "prompt": "hello", "output": "o", "adapter": run_id})
    evaluation = h.add(
        {"kind": "eval", "prompt": "eval demo", "output": "o", "adapter": run_id, "prompt_id": version_id}
    )
    async with fake_app(home).run_test(size=(100, 30)) as pilot:
        app = pilot.app
        await wait_for(pilot, lambda: run_id in app.query_one(PromptPane).adapter_ids)
        for record_id in (generation, evaluation):
            app.main.prompt.use_adapter(None)
            app.main.reopen(h.get(record_id))
            await pilot.pause()
            assert app.query_one(PromptPane).adapter == run_id
