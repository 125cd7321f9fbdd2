"""What the main screen's workbench keys start: a run, an eval, the demo comparison, a training run, the
optimize screen, and a history record (or an optimize candidate) put back in the editor. Each reads what is on screen (the prompt pane, the dataset form),
checks it (a bad field is one line in the status bar) and hands the work to the node that owns it: the
generations (`tui.generation`), the eval pane, the training pane. The screen keeps the keys, the layout and
the routing of the panes' messages; this is what its actions do.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from textual.widgets import Input

from core.errors import TunelabError

if TYPE_CHECKING:
    from core.data.prompts import PromptVersion
    from core.evals.plan import EvalRequest
    from tui.screens.main import MainScreen


class Workflows:
    """The main screen's workflows (it makes one, and its actions call it)."""

    def __init__(self, screen: MainScreen) -> None:
        self.screen = screen

    def form(self) -> tuple[PromptVersion, EvalRequest] | None:
        """The prompt version and the dataset form on screen; a bad field is one line, and None."""
        try:
            return self.screen.prompt.version(), self.screen.dataset.request()
        except TunelabError as exc:
            self.screen.error(str(exc))
            return None

    def run(self) -> None:
        """The prompt on screen, filled from the dataset's first row, streamed into the results pane."""
        screen, pane = self.screen, self.screen.prompt
        screen.got_going()
        if screen.generation is not None:
            screen.notify("Already generating; esc cancels.", severity="warning")
            return
        if not pane.text.strip():
            screen.notify("The prompt is empty.", severity="warning")
            return
        if (form := self.form()) is None:
            return
        from core.workbench.service import PromptRef

        version, request = form
        screen.generations.start(PromptRef(pane.prompt_name, version), request, pane.adapter)
        screen.show_tab("tab-output")
        screen.results.begin()
        if not screen.model_ready:
            screen.results.set_status(f"waiting for {screen.model} to load…")

    def eval(self) -> None:
        """The prompt against no prompt (the 2x2 with the LoRA chosen) over the dataset form's split."""
        screen = self.screen
        screen.got_going()
        if screen.evals.token is not None:
            screen.notify("An eval is running; esc cancels it.", severity="warning")
            return
        if (form := self.form()) is None:
            return
        from core.workbench.service import PromptRef

        version, request = form
        screen.evals.run(request, PromptRef(screen.prompt.prompt_name, version), screen.prompt.adapter, screen.model)
        screen.show_tab("tab-eval")

    def compare_demo(self) -> None:
        """The first five minutes: the demo prompt (raw) in the editor, a LoRA trained as is and one with the
        prompt, every cell graded in the Eval matrix, then the verdict screen."""
        screen = self.screen
        if screen.evals.token is not None or screen.generation is not None:
            screen.notify("A run or eval is in progress; esc cancels it.", severity="warning")
            return
        from core import demo
        from core.workbench.compare import DEMO_PROMPT, DEMO_PROMPT_NAME

        if screen.model != demo.MODEL_ALIAS:
            screen.error("The demo comparison runs on the demo model: type demo in the model field.")
            return
        screen.prompt.load_record(
            {
                "template": DEMO_PROMPT.template,
                "mode": DEMO_PROMPT.mode,
                "params": DEMO_PROMPT.gen_params.to_dict(),
                "prompt_name": DEMO_PROMPT_NAME,
                "adapter": None,
            }
        )
        screen.got_going()
        screen.results.set_status("Compare on the demo task: starting… (esc cancels)")
        screen.evals.compare_demo(replace(screen.tunelab.options, model=screen.model, adapter=None))

    def optimize(self) -> None:
        """The optimize screen: the prompt on screen is the start (as ctrl+r would run it), the dataset form gives
        the dev rows; enter there puts a candidate back in the editor."""
        screen = self.screen
        if screen.evals.token is not None or screen.generation is not None:
            screen.notify("A run or eval is in progress; esc cancels it.", severity="warning")
            return
        if not screen.prompt.text.strip():
            screen.notify("The prompt is empty.", severity="warning")
            return
        if (form := self.form()) is None:
            return
        from tui.screens.optimize import OptimizeScreen

        screen.got_going()
        version, request = form
        screen.app.push_screen(
            OptimizeScreen(screen.prompt.prompt_name, version, request, screen.model), self.candidate
        )

    def candidate(self, version: PromptVersion | None) -> None:
        """An optimize candidate in the editor (template, system, mode, params and shots), on the same LoRA."""
        if version is None:
            return
        self.screen.prompt.load_version(version)
        self.screen.query_one("#prompt-text").focus()
        self.screen.notify(f"Candidate {version.id[:6]} is in the editor: ctrl+r runs it, ctrl+g evaluates it.")

    def train(self) -> None:
        """The new-run form, on the dataset (and field mapping) the workbench uses."""
        screen = self.screen
        screen.got_going()
        try:
            request = screen.dataset.request()
        except TunelabError as exc:
            screen.error(str(exc))
            return
        options = replace(screen.tunelab.options, model=screen.model, adapter=None)
        prompt = screen.prompt
        screen.training.ask_new_run(options, request, prompt.prompt_name, prompt.version, screen.linear_modules)

    def reopen(self, record: dict[str, Any] | None) -> None:
        """Put a history record back in the editor (its prompt version for an eval; the run for training)."""
        from tui.reopen import editor_record

        screen = self.screen
        if record is None:
            return
        if record.get("kind") == "train" and record.get("ref"):
            screen.training.select(str(record["ref"]))
        try:
            shown, notice = editor_record(record, screen.tunelab.workbench.prompts)
        except TunelabError as exc:
            screen.error(str(exc))
            return
        if shown is None:
            screen.notify(notice, severity="information" if record.get("kind") == "train" else "warning")
            return
        pane = screen.prompt
        pane.load_record(shown)
        adapter = str(shown.get("adapter") or "")
        if adapter and adapter not in pane.adapter_ids:
            screen.notify(
                f"LoRA {adapter[:10]} is not a finished adapter here; running on the base model.", severity="warning"
            )
        model = str(shown.get("model") or "").split(",")[0].strip()
        idle = screen.generation is None and screen.evals.token is None
        if shown.get("kind") != "eval" and model and model != screen.model and idle:
            screen.query_one("#model-input", Input).value = model
            screen.load_model(model)
        screen.query_one("#prompt-text").focus()
        screen.notify("Re-opened in the editor: ctrl+r runs it.")
