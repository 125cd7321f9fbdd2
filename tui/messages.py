"""Messages into the app: model-worker events (one class per event type), eval progress, history pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:  # the protocol is imported by the client, after the first frame
    from core.engine import protocol as p


class WorkerMessage(Message):
    """A model-worker event, posted thread-safely from the client's reader thread; one subclass per
    event type of `core.engine.protocol`, so handlers are `@on(ModelReady)` and never switch on a string."""

    def __init__(self, event: p.Event, token: str | None = None) -> None:
        super().__init__()
        self.event = event
        self.token = token  # the app's name for the request this event answers (None: the client's own)


class ModelLoading(WorkerMessage):
    event: p.Loading


class ModelReady(WorkerMessage):
    event: p.Ready


class GenerationStarted(WorkerMessage):
    event: p.Started


class GenerationChunk(WorkerMessage):
    event: p.Chunk


class GenerationDone(WorkerMessage):
    event: p.Done


class WorkerError(WorkerMessage):
    event: p.Error


class WorkerCrashed(WorkerMessage):
    event: p.Crashed


class PromptRendered(WorkerMessage):
    event: p.Rendered


class BatchItem(WorkerMessage):
    event: p.Item


class BatchEnded(WorkerMessage):
    event: p.BatchDone


WORKER_MESSAGES: dict[str, type[WorkerMessage]] = {  # by the event class's name in core.engine.protocol
    "Loading": ModelLoading,
    "Ready": ModelReady,
    "Started": GenerationStarted,
    "Chunk": GenerationChunk,
    "Done": GenerationDone,
    "Error": WorkerError,
    "Crashed": WorkerCrashed,
    "Rendered": PromptRendered,
    "Item": BatchItem,
    "BatchDone": BatchEnded,
}


def worker_message(event: p.Event, token: str | None = None) -> WorkerMessage:
    return WORKER_MESSAGES[type(event).__name__](event, token)


class WorkbenchFailed(Message):
    """A use case run in a thread worker failed: one line for the status bar."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class AdaptersFound(Message):
    """The finished adapters, read off the UI loop; `select` is one to choose once offered."""

    def __init__(self, adapters: list[Any], select: str | None = None) -> None:
        super().__init__()
        self.adapters, self.select = adapters, select


class VerdictReady(Message):
    """A comparison built off the UI loop (it reads run folders), ready for the verdict screen."""

    def __init__(self, comparison: Any) -> None:
        super().__init__()
        self.comparison = comparison


class ItemInput(Message):
    """An eval item's input, read from its dataset off the UI loop, for the item screen on top."""

    def __init__(self, item_id: str, text: str) -> None:
        super().__init__()
        self.item_id, self.text = item_id, text


class CompareStage(Message):
    """A comparison moved on (a LoRA's training step, the eval starting): one status line."""

    def __init__(self, token: str, text: str) -> None:
        super().__init__()
        self.token, self.text = token, text


class EvalStarted(Message):
    """The eval run `token` starts with these cells (a comparison starts clean: earlier columns leave)."""

    def __init__(self, token: str, labels: list[str], clean: bool = False) -> None:
        super().__init__()
        self.token, self.labels, self.clean = token, labels, clean


class EditorRestored(Message):
    """The prompt that was on screen when the app last closed."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__()
        self.state = state


class FirstStart(Message):
    """No eval stored yet: the results pane offers the demo comparison."""


class RunStarted(Message):
    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class EvalRow(Message):
    """One graded (variant, item) result of the eval run `token`."""

    def __init__(self, token: str, row: dict[str, Any]) -> None:
        super().__init__()
        self.token, self.row = token, row


class EvalProgress(Message):
    def __init__(self, token: str, done: int, total: int) -> None:
        super().__init__()
        self.token, self.done, self.total = token, done, total


class EvalFinished(Message):
    """The eval run `token` ended: its summary, the pinned baseline and the verdict, or an error."""

    def __init__(
        self,
        token: str,
        summary: dict[str, Any] | None,
        *,
        error: str | None = None,
        baseline: tuple[dict[str, Any], int] | None = None,
        verdict: str | None = None,
    ) -> None:
        super().__init__()
        self.token, self.summary, self.error, self.baseline = token, summary, error, baseline
        self.verdict = verdict


class HistoryPage(Message):
    """Rows found by the history search `token` (appended when paging), or why the query is bad."""

    def __init__(
        self,
        token: int,
        rows: list[dict[str, Any]],
        cursor: Any,
        *,
        append: bool = False,
        error: str | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.token, self.rows, self.cursor, self.append = token, rows, cursor, append
        self.error, self.problems = error, problems


class HistoryRecord(Message):
    """The full record behind the highlighted history row (or None when it vanished)."""

    def __init__(self, record: dict[str, Any] | None, extra: str = "") -> None:
        super().__init__()
        self.record, self.extra = record, extra
