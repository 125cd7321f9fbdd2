"""Palette, help, keys, clipboard, editor and layout, as a person uses them (Pilot, scripted worker)."""

import io
import sys

import pytest
from rich.console import Console
from textual.widgets import Static, TabbedContent

from tests.tui_helpers import fake_app, run_prompt, wait_for
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen


async def test_palette_finds_and_runs_workbench_actions(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await pilot.press("ctrl+p")
        await pilot.press(*"open hist")
        await wait_for(
            pilot, lambda: "Open history" in str(app.screen.query("CommandList").first().get_option_at_index(0).prompt)
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        await pilot.press("ctrl+p")
        await pilot.press(*"toggle layout", "enter")
        await wait_for(pilot, lambda: app.query_one("#main").has_class("-stacked"))


async def test_a_key_added_to_a_screen_is_in_the_palette_with_no_palette_edit(home, monkeypatch):
    """A new action is one Binding: a key a screen declares is a palette entry (`screen: description`, its
    key as the hint) and runs from there; tui/palette.py names no action. The main screen's own keys, the
    panes' named keys (`Bind`) and the commands nodes offer are all there, each once."""
    from textual.binding import Binding

    import tui.app
    from tui.commands import Bind
    from tui.palette import screen_commands
    from tui.screens.main import MainScreen

    class ProbeScreen(MainScreen):
        BINDINGS = [Binding("f12", "probe", "Probe the palette", id="probe")]
        probed = 0

        def action_probe(self) -> None:
            self.probed += 1

    monkeypatch.setattr(tui.app, "MainScreen", ProbeScreen)
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.main, ProbeScreen)
        names = [command.name for command in screen_commands(app.main)]
        assert len(names) == len(set(names))
        assert {b.palette for b in MainScreen.BINDINGS if isinstance(b, Bind)} < set(names)
        assert {
            "probe: Probe the palette",
            "training: Stop the training run",  # a pane's key
            "prompt: Copy the output",
            "help: Help",  # the app's
            "model: Use the base model",  # commands nodes offer
            "model: Restart the model worker",
            "eval: Compare on the demo task",
            "history: Export history",
        } < set(names)
        await pilot.press("ctrl+p", *"probe the palette")
        command_list = app.screen.query_one("CommandList")
        await wait_for(pilot, lambda: command_list.option_count > 0)
        shown = str(command_list.get_option_at_index(0).prompt)
        assert "probe: Probe the palette" in shown and "(f12)" in shown
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.probed == 1)


async def test_f1_explains_the_focused_pane_with_its_keys(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one("#output").focus()
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert app.screen.title_text == "Results" and "copies the output" in app.screen.about
        keys = {binding_id: key for key, _, binding_id in app.screen.keys}
        assert keys["copy-output"] == "y" and keys["run"] == "^r" and keys["history"] == "f8"
        described = {description for _, description, _ in app.screen.keys}
        assert not described & {"Redo", "Undo", "Paste", "Cut"}  # the output is read-only: no editing keys
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_a_remapped_key_shows_remapped_in_help_and_the_palette(home):
    """`run = "f5"` in config.toml: F1's prose and keys and the palette's hints say f5, never ctrl+r."""
    from core.storage.config import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('[keys]\nrun = "f5"\n')
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.started)
        app.query_one("#prompt-text").focus()
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "f5 runs" in app.screen.about and "^r" not in app.screen.about and "<run>" not in app.screen.about
        assert {binding_id: key for key, _, binding_id in app.screen.keys}["run"] == "f5"
        shown_keys = Console(width=120, file=io.StringIO(), record=True)
        shown_keys.print(app.screen.query_one("#help-keys", Static).content)
        assert "id (remap in config.toml [keys])" in shown_keys.export_text()  # brackets kept, not read as markup
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("ctrl+p")
        await pilot.press(*"run the prompt")
        await wait_for(pilot, lambda: app.screen.query("CommandList"))
        command_list = app.screen.query_one("CommandList")
        await wait_for(pilot, lambda: command_list.option_count > 0)
        shown = str(command_list.get_option_at_index(0).prompt)
        assert "Run the prompt" in shown and "(f5)" in shown and "ctrl+r" not in shown and "^r" not in shown


def test_every_class_with_bindings_is_remappable():
    """binding_ids() finds its owners itself: every class in tui that declares BINDINGS gives its ids."""
    import importlib
    import pkgutil

    from textual.binding import Binding

    import tui
    from tui.keymap import binding_ids

    ids = binding_ids()
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        if info.name in ("tui.screenshots", "tui.__main__"):
            continue
        module = importlib.import_module(info.name)
        for cls in [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == info.name]:
            own = [b.id for b in vars(cls).get("BINDINGS", []) if isinstance(b, Binding)]
            assert all(own), f"{info.name}.{cls.__name__} has a binding without an id"
            assert set(own) <= ids, f"{info.name}.{cls.__name__}: {set(own) - ids}"


async def test_copy_output_uses_the_clipboard_and_vim_keys_scroll(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_prompt(pilot, "Tell me a short story.")
        app.query_one("#output").focus()
        await pilot.press("y")
        assert app.clipboard == app.main.results.output.text != ""
        app.main.results.output.text = "\n".join(f"line {i}" for i in range(200))
        await pilot.press("G")
        await wait_for(pilot, lambda: app.main.results.output.scroll_y == app.main.results.output.max_scroll_y > 0)
        await pilot.press("g")
        await wait_for(pilot, lambda: app.main.results.output.scroll_y == 0)
        await pilot.press("j", "j")
        await wait_for(pilot, lambda: app.main.results.output.scroll_y == 2)


async def test_zoom_maximizes_the_focused_pane_and_back(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#output").focus()
        await pilot.press("f6")
        assert app.screen.maximized is app.query_one(TabbedContent)
        await pilot.press("f6")
        assert app.screen.maximized is None
        app.query_one("#prompt-text").focus()
        await pilot.press("f6")
        assert app.screen.maximized is app.query_one("#prompt-pane")


async def test_editor_round_trip_and_a_broken_editor_keeps_the_text(home, monkeypatch, tmp_path):
    from contextlib import nullcontext

    script = tmp_path / "edit.py"
    script.write_text("import sys\np = sys.argv[1]\ntext = open(p).read()\nopen(p, 'w').write(text.upper() + '\\n')\n")
    app = fake_app(home)
    monkeypatch.setattr(app, "suspend", nullcontext)  # a headless test has no terminal to hand over
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#prompt-pane").text = "edit me"
        monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
        await pilot.press("f4")
        assert app.query_one("#prompt-pane").text == "EDIT ME"
        monkeypatch.setenv("EDITOR", "/no/such/editor --wait")
        await pilot.press("f4")
        assert app.query_one("#prompt-pane").text == "EDIT ME"
        monkeypatch.setenv("EDITOR", f"{sys.executable} -c 'raise SystemExit(3)'")
        await pilot.press("f4")
        assert app.query_one("#prompt-pane").text == "EDIT ME"
        messages = [n.message for n in app._notifications]
        assert any("cannot start editor" in m for m in messages) and any("exited with 3" in m for m in messages)


async def test_a_run_that_ends_out_of_sight_is_announced(home):
    import threading

    from tests.tui_helpers import start_held_run

    gate = threading.Event()
    app = fake_app(home, gate=gate)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_held_run(pilot, "go")
        await pilot.press("f8")  # the history screen covers the results
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        gate.set()
        await wait_for(pilot, lambda: any("Run done" in n.message for n in app._notifications))


@pytest.mark.slow
def test_make_screenshots_draws_the_readme_pictures_from_the_real_app(tmp_path):
    import subprocess

    from tests.conftest import REPO, subprocess_env

    out = subprocess.run(
        [sys.executable, "-m", "tui.screenshots", "--quick", str(tmp_path)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert names == ["eval-matrix.svg", "history.svg", "main.svg", "training-monitor.svg", "verdict.svg"]
    assert "89.2%" in (tmp_path / "eval-matrix.svg").read_text().replace("&#160;", " ")
    verdict = (tmp_path / "verdict.svg").read_text().replace("&#160;", " ")
    assert "model variant" in verdict and "senti@150f96" in verdict
    assert " wins" in verdict or "A tie between" in verdict  # the verdict sentence, whichever way it went
