"""Where a served model lives: config.toml's `[endpoints.NAME]` tables (`base_url`, `model`, `api_key_env`:
the name of an environment variable, never the key; `max_concurrency`, `timeout_s` for each read,
`deadline_s` for a whole call, `price_in`/`price_out` per million tokens, `loads_lora`) and the inline
`http://HOST:PORT/v1#MODEL` form, and what of them may be shown.

An inline URL may carry credentials (`https://user:pass@host/v1#m`, `?key=...`). They are used for the
calls (user and password as basic auth, the query on every request) and written nowhere: `shown(spec)` is
the spec without them (user and password dropped, each query value `***`), the name every line, cache key
and stored record uses; this process still reaches the real URL by it (`endpoint` resolves it). A run
stored under a shown name and resumed in another process calls the URL without its credentials: name the
endpoint in config.toml (`api_key_env`) to keep a key out of the spec. Stdlib only (the TUI imports it).
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from core.errors import TunelabError

PREFIX = "endpoint:"
INLINE = re.compile(r"^(?P<url>https?://[^#\s]+)#(?P<model>[^#\s]+)$")
PER_TOKEN_S = 0.25  # a whole call's default deadline allows this per token of its budget, past timeout_s
MAX_DEADLINE_S = 86400.0
HIDDEN = "***"
_REAL: dict[str, str] = {}  # shown spec -> the spec with its credentials (this process only)


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    max_concurrency: int = 4
    timeout_s: float = 120.0  # the longest silence: connect, and each read
    price_in: float | None = None  # per million input tokens
    price_out: float | None = None
    loads_lora: bool = False  # vLLM with runtime LoRA updates: a local --adapter is loaded into the server
    deadline_s: float | None = None  # a whole call, retries included; None: timeout_s + PER_TOKEN_S a token

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.base_url):
            raise TunelabError(f"endpoint {self.name}: base_url must start with http:// or https://")
        if not self.model:
            raise TunelabError(f"endpoint {self.name}: model must not be empty")
        if not 1 <= self.max_concurrency <= 256:
            raise TunelabError(f"endpoint {self.name}: max_concurrency must be between 1 and 256")
        if not 0 < self.timeout_s <= 3600:
            raise TunelabError(f"endpoint {self.name}: timeout_s must be above 0 and at most 3600")
        deadline = self.deadline_s
        number = isinstance(deadline, (int, float)) and not isinstance(deadline, bool)
        if deadline is not None and not (number and 0 < deadline <= MAX_DEADLINE_S):
            raise TunelabError(f"endpoint {self.name}: deadline_s must be above 0 and at most {MAX_DEADLINE_S:g}")
        if not isinstance(self.loads_lora, bool):
            raise TunelabError(f"endpoint {self.name}: loads_lora must be true or false")
        for price in ("price_in", "price_out"):
            value = getattr(self, price)
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1e6):
                raise TunelabError(f"endpoint {self.name}: {price} must be a price per million tokens, 0 or more")

    def cost(self) -> dict[str, Any]:
        """What the verdict prices a served row with: the endpoint's prices per million tokens, if set."""
        prices = {"price_in": self.price_in, "price_out": self.price_out}
        return {"served": self.name, **{k: v for k, v in prices.items() if v is not None}}

    def deadline(self, tokens: int = 0) -> float:
        """The most seconds a call may take, retries and waits included: `deadline_s`, else `timeout_s` plus
        PER_TOKEN_S for each token of its budget (keep-alives and empty events never extend it)."""
        return float(self.deadline_s) if self.deadline_s is not None else self.timeout_s + max(0, tokens) * PER_TOKEN_S

    @property
    def key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def url(self) -> str:
        """The base URL requests go to: without its user, password and query (sent apart)."""
        return _strip(self.base_url)[0]

    @property
    def shown_url(self) -> str:
        """The base URL as lines and keys name it: no user or password, each query value hidden."""
        return _shown_url(self.base_url)

    @property
    def auth(self) -> tuple[str, str] | None:
        """The URL's user and password (basic auth), if it has them."""
        return _strip(self.base_url)[1]

    @property
    def query(self) -> tuple[tuple[str, str], ...]:
        """The URL's query, sent with every request."""
        return _strip(self.base_url)[2]

    def scrub(self, text: str) -> str:
        """`text` (a server's words, an exception's) with the key and the URL's credentials hidden."""
        auth = self.auth or ("", "")
        basic = base64.b64encode(":".join(auth).encode()).decode() if self.auth else ""  # as basic auth sends it
        secrets = {self.key or "", *auth, basic, *(value for _, value in self.query)}
        for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, HIDDEN)
        return text

    @property
    def fingerprint(self) -> str:
        """What the cache keys a served model by: the URL (as shown) and the model name (the server's own
        id is in each result)."""
        return f"served:{self.shown_url.rstrip('/')}#{self.model}"


def _strip(url: str) -> tuple[str, tuple[str, str] | None, tuple[tuple[str, str], ...]]:
    """`url` without user, password and query; the user and password; the query's pairs."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    auth = None
    if at:
        user, _, password = userinfo.partition(":")
        auth = (unquote(user), unquote(password))
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, host, parts.path, "", "")), auth, query


def _shown_url(url: str) -> str:
    clean, _, query = _strip(url)
    return clean + ("?" + "&".join(f"{name}={HIDDEN}" for name, _ in query) if query else "")


def shown(spec: str) -> str:
    """The name to show and store for a model spec: an inline URL without its user, password and query
    values (remembered, so this process still reaches the real one by it); any other spec as it is."""
    real = _REAL.get(spec, spec)
    match = INLINE.match(real)
    if match is None:
        return spec
    name = f"{_shown_url(match['url'])}#{match['model']}"
    if name != real:
        _REAL[name] = real
    return name


def is_served(spec: str | None) -> bool:
    return bool(spec) and (str(spec).startswith(PREFIX) or INLINE.match(str(spec)) is not None)


def loads_lora(spec: str) -> bool:
    """Whether a served model takes tunelab's adapters (its endpoint says `loads_lora`); unknown: no."""
    try:
        return is_served(spec) and endpoint(spec).loads_lora
    except TunelabError:
        return False


def endpoint(spec: str) -> Endpoint:
    """The endpoint a model spec names (config.toml's, or the inline URL#MODEL form, named as `shown`)."""
    real = _REAL.get(spec, spec)
    if match := INLINE.match(real):
        return Endpoint(shown(real), match["url"], match["model"])
    from core.storage.config import load_config

    name = spec.removeprefix(PREFIX)
    tables = load_config().endpoints
    table = tables.get(name)
    if table is None:
        known = ", ".join(sorted(tables)) or "none"
        raise TunelabError(f"no endpoint '{name}' in the config file's [endpoints] (known: {known})")
    names = {f.name for f in fields(Endpoint)} - {"name"}
    if unknown := sorted(set(table) - names):
        raise TunelabError(f"endpoints.{name}: unknown field '{unknown[0]}' (known: {', '.join(sorted(names))})")
    try:
        return Endpoint(name, **table)
    except TypeError as exc:
        raise TunelabError(f"endpoints.{name}: {exc}") from None
