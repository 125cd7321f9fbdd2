"""The model worker's protocol: one dataclass per request and per event, sent as JSON lines.

Both ends (the worker in its child process and any client) encode and decode through `to_wire` and
`from_wire`, so a field can only be added in one place. Stdlib only: the TUI imports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from core.errors import TunelabError


class ProtocolError(TunelabError):
    """A line that is not a known request or event."""


@dataclass(frozen=True)
class WireMessage:
    TAG: ClassVar[str] = ""
    KEY: ClassVar[str] = ""  # "op" for requests, "event" for events
    NESTED: ClassVar[dict[str, type]] = {}  # a field carried as a dataclass of its own: rebuilt on decode


# -- requests (client -> worker) ------------------------------------------------------------------
@dataclass(frozen=True)
class Request(WireMessage):
    KEY: ClassVar[str] = "op"


@dataclass(frozen=True)
class Load(Request):
    TAG: ClassVar[str] = "load"
    model: str
    allow_pickle: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class Generate(Request):
    """One streamed generation; `prompt` is `Prompt.to_dict()`, `params` `GenParams.to_dict()`."""

    TAG: ClassVar[str] = "generate"
    id: str
    prompt: dict[str, Any]
    params: dict[str, Any]
    adapter: str | None = None


@dataclass(frozen=True)
class Batch(Request):
    TAG: ClassVar[str] = "batch"
    id: str
    prompts: list[dict[str, Any]]
    params: dict[str, Any]
    adapter: str | None = None
    batch_size: int = 16


@dataclass(frozen=True)
class Render(Request):
    TAG: ClassVar[str] = "render"
    id: str
    prompt: dict[str, Any]


@dataclass(frozen=True)
class Cancel(Request):
    TAG: ClassVar[str] = "cancel"
    id: str


# -- events (worker -> client) --------------------------------------------------------------------
@dataclass(frozen=True)
class Event(WireMessage):
    KEY: ClassVar[str] = "event"


@dataclass(frozen=True)
class Loading(Event):
    TAG: ClassVar[str] = "loading"
    model: str


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: the front ends' title line and the run form's module list. A served model
    has no location, parameter count or modules (None, empty)."""

    model: str
    device: str
    dtype: str
    location: str = ""
    chat_template: bool = False
    params_m: float | None = None
    load_s: float = 0.0
    linear_modules: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        size = "?" if self.params_m is None else f"{self.params_m:g}"
        return f"{self.model} · {self.device} · {self.dtype} · {size}M"


@dataclass(frozen=True)
class Ready(Event):
    """The model is loaded."""

    TAG: ClassVar[str] = "ready"
    NESTED: ClassVar[dict[str, type]] = {"info": ModelInfo}
    info: ModelInfo


@dataclass(frozen=True)
class Rendered(Event):
    TAG: ClassVar[str] = "rendered"
    id: str
    text: str
    tokens: int
    note: str = ""  # e.g. the system prompt was folded into the first user turn


@dataclass(frozen=True)
class Started(Event):
    TAG: ClassVar[str] = "started"
    id: str
    rendered_prompt: str
    prompt_tokens: int


@dataclass(frozen=True)
class Chunk(Event):
    TAG: ClassVar[str] = "chunk"
    id: str
    text: str
    tokens: int


@dataclass(frozen=True)
class GenResult:
    """How one generation ended, as the front ends read it; `extra` holds what else its backend reported
    (the rendered prompt, prompt tokens, a served model's finish_reason and server id...), saved as is."""

    output: str
    stop_reason: str
    completion_tokens: int = 0
    latency_s: float = 0.0
    tok_per_s: float = 0.0
    note: str = ""  # e.g. the system prompt was folded into the first user turn
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> GenResult:
        typed = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            str(result.get("output") or ""),
            str(result.get("stop_reason") or ""),
            int(result.get("completion_tokens") or 0),
            float(result.get("latency_s") or 0.0),
            float(result.get("tok_per_s") or 0.0),
            str(result.get("note") or ""),
            {k: v for k, v in result.items() if k not in typed},
        )

    @property
    def status(self) -> str:
        """The history record's status: a generation cut short by a cancel is saved as cancelled."""
        return "cancelled" if self.stop_reason == "cancelled" else "done"

    def to_dict(self) -> dict[str, Any]:
        """The whole result, as the backend reported it (the shape history and the cache keep)."""
        typed = {k: v for k, v in asdict(self).items() if k != "extra" and (k != "note" or v)}
        return {**self.extra, **typed}


@dataclass(frozen=True)
class Done(Event):
    """A generation ended, and how."""

    TAG: ClassVar[str] = "done"
    NESTED: ClassVar[dict[str, type]] = {"result": GenResult}
    id: str
    result: GenResult


@dataclass(frozen=True)
class Item(Event):
    """One prompt of a batch ended, and how (its `index` in the batch)."""

    TAG: ClassVar[str] = "item"
    NESTED: ClassVar[dict[str, type]] = {"result": GenResult}
    id: str
    index: int
    result: GenResult


@dataclass(frozen=True)
class BatchDone(Event):
    TAG: ClassVar[str] = "batch_done"
    id: str
    cancelled: bool = False


@dataclass(frozen=True)
class Error(Event):
    """A request failed (`id` None for a load or a bad line); the worker lives on."""

    TAG: ClassVar[str] = "error"
    message: str
    id: str | None = None
    op: str | None = None


@dataclass(frozen=True)
class Alive(Event):
    """The worker's heartbeat, every HEARTBEAT_S while it runs: the client's watchdog hears silence, and
    `busy` names the request being served (its deadline runs from then, not while it waits its turn)."""

    TAG: ClassVar[str] = "alive"
    busy: str | None = None


HEARTBEAT_S = 0.5  # a line a beat: cheap, and a silence of a few beats is already telling


@dataclass(frozen=True)
class Crashed(Event):
    """Made by the client, never sent: the worker process ended while requests were open."""

    TAG: ClassVar[str] = "crashed"
    message: str = field(default="model worker exited")


REQUESTS: dict[str, type[Request]] = {c.TAG: c for c in (Load, Generate, Batch, Render, Cancel)}
EVENTS: dict[str, type[Event]] = {
    c.TAG: c for c in (Loading, Ready, Rendered, Started, Chunk, Done, Item, BatchDone, Error, Alive, Crashed)
}
FINAL = (Done, BatchDone, Rendered, Error, Crashed)  # the last event a request gets


def to_wire(message: WireMessage) -> str:
    return json.dumps({message.KEY: message.TAG, **asdict(message)}, ensure_ascii=False)


def from_wire(line: str, kinds: Mapping[str, type[WireMessage]]) -> Any:
    """Decode one line into the message class its tag names; anything else is a ProtocolError."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(f"bad line: {line[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"bad line: {line[:80]!r}")
    key = "op" if kinds is REQUESTS else "event"
    cls = kinds.get(str(data.pop(key, "")))
    if cls is None:
        raise ProtocolError(f"unknown {key} in {line[:80]!r}")
    names = {f.name for f in fields(cls)}
    try:
        values = {k: v for k, v in data.items() if k in names}
        for name, kind in cls.NESTED.items():  # its own fields only: a newer peer's extra ones are dropped
            if isinstance(values.get(name), dict):
                known = {f.name for f in fields(kind)}
                values[name] = kind(**{k: v for k, v in values[name].items() if k in known})
        return cls(**values)
    except TypeError as exc:
        raise ProtocolError(f"bad {cls.TAG}: {exc}") from None
