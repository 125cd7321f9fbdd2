"""Messages in the app: model-worker events (one class per event type), eval progress, history pages, and
what a pane asks of the screen that holds it (`Reveal`, `Announce`, `WorkbenchFailed`): a pane never calls
the screen; it posts, and the main screen's handlers decide (harlequin's way)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:  # the protocol is imported by the client, after the first frame
    from textual.widget import Widget

    from core.engine import protocol as p
    from core.storage.schemas import EvalSummary, GradedRow
    from core.workbench.adapters import Adapter
    from core.workbench.verdicts import Comparison


@dataclass(eq=False)  # a message is itself, not its fields (as Textual compares them)
class WorkerMessage(Message, bubble=False):
    """A model-worker event, posted thread-safely from the client's reader thread; one subclass per
    event type of `core.engine.protocol`, so handlers are `@on(ModelReady)` and never switch on a string.
    It goes to the node that made the request (the main screen, or the prompt pane for ctrl+t), no further."""

    event: p.Event
    token: str | None = None  # the app's name for the request this event answers (None: the client's own)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**{"bubble": False, **kwargs})


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


WORKER_MESSAGES: dict[str, type[WorkerMessage]] = {  # by the protocol's event tags
    "loading": ModelLoading,
    "ready": ModelReady,
    "started": GenerationStarted,
    "chunk": GenerationChunk,
    "done": GenerationDone,
    "error": WorkerError,
    "crashed": WorkerCrashed,
    "rendered": PromptRendered,
}
# A batch's events go to its own listener (the eval backend); one reaches the app only once that listener
# is gone (a cancelled batch's late item): nothing on screen waits for it.
STALE_ONLY = frozenset({"item", "batch_done"})


def worker_message(event: p.Event, token: str | None = None) -> WorkerMessage | None:
    """The message for `event`, or None for an event nothing on screen answers to (STALE_ONLY)."""
    kind = WORKER_MESSAGES.get(event.TAG)
    return None if kind is None else kind(event, token)


@dataclass(eq=False)  # a message is itself, not its fields
class WorkbenchFailed(Message):
    """A use case run in a thread worker failed: one line for the status bar."""

    error: str


@dataclass(eq=False)  # a message is itself, not its fields
class Reveal(Message):
    """`pane` has something new to show (an eval's columns): the screen brings the tab that holds it to the front."""

    pane: Widget


@dataclass(eq=False)  # a message is itself, not its fields
class Announce(Message):
    """Work `pane` ran has ended: the screen says `text` in a toast unless the pane is in sight."""

    pane: Widget
    text: str


@dataclass(eq=False)  # a message is itself, not its fields
class FinalLook(Message):
    """The verdict screen's `f`: the cells of `summary` once more, on the sealed test split (the main
    screen's eval pane runs them)."""

    summary: EvalSummary


@dataclass(eq=False)  # a message is itself, not its fields
class OptimizeAsked(Message):
    """The prompt pane's optimize key (or its palette entry): the screen opens the search on the prompt on screen."""


@dataclass(eq=False)  # a message is itself, not its fields
class AdaptersFound(Message):
    """The finished adapters, read off the UI loop; `select` is one to choose once offered."""

    adapters: list[Adapter]
    select: str | None = None


@dataclass(eq=False)  # a message is itself, not its fields
class VerdictReady(Message):
    """A comparison built off the UI loop (it reads run folders), ready for the verdict screen."""

    comparison: Comparison


@dataclass(eq=False)  # a message is itself, not its fields
class CompareStage(Message):
    """A comparison moved on (a LoRA's training step, the eval starting): one status line."""

    token: str
    text: str


@dataclass(eq=False)  # a message is itself, not its fields
class EvalStarted(Message):
    """The eval run `token` starts with these cells (a comparison starts clean: earlier columns leave)."""

    token: str
    labels: list[str]
    clean: bool = False


@dataclass(eq=False)  # a message is itself, not its fields
class EditorRestored(Message):
    """The prompt that was on screen when the app last closed."""

    state: dict[str, Any]


@dataclass(eq=False)  # a message is itself, not its fields
class FirstStart(Message):
    """No eval stored yet: the results pane offers the demo comparison."""


@dataclass(eq=False)  # a message is itself, not its fields
class RunStarted(Message):
    """A training run's process started: the training pane follows it."""

    run_id: str


@dataclass(eq=False)  # a message is itself, not its fields
class EvalRow(Message):
    """One graded (variant, item) result of the eval run `token`."""

    token: str
    graded: GradedRow


@dataclass(eq=False)  # a message is itself, not its fields
class EvalProgress(Message):
    token: str
    done: int
    total: int


@dataclass(eq=False)  # a message is itself, not its fields
class EvalFinished(Message):
    """The eval run `token` ended: its summary, the pinned baseline and the verdict, or an error."""

    token: str
    summary: EvalSummary | None
    error: str | None = field(default=None, kw_only=True)
    baseline: tuple[EvalSummary, int] | None = field(default=None, kw_only=True)
    verdict: str | None = field(default=None, kw_only=True)


@dataclass(eq=False)  # a message is itself, not its fields
class HistoryPage(Message):
    """Rows found by the history search `token` (appended when paging), or why the query is bad."""

    token: int
    rows: list[dict[str, Any]]
    cursor: Any
    append: bool = field(default=False, kw_only=True)
    error: str | None = field(default=None, kw_only=True)
    problems: tuple[str, ...] = field(default=(), kw_only=True)


@dataclass(eq=False)  # a message is itself, not its fields
class HistoryRecord(Message):
    """The full record behind the highlighted history row (or None when it vanished)."""

    record: dict[str, Any] | None
    extra: str = ""
