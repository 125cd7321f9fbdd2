"""The grader of structured answers: `json[:schema.json]`, the answer (bare or in a ```json fence) is JSON,
valid under a full JSON Schema when one is given (jsonschema loads when a schema is used, not with the TUI)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.graders._base import Check, Grade, GraderSpec, pass_fail
from core.data.graders._registry import grader
from core.errors import TunelabError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


@grader(
    "json", "json[:schema.json]", "is JSON (bare or in a ```json fence), valid under the schema file if one is given"
)
def json_grader(spec: GraderSpec) -> Check:
    validator = _load_schema(spec.arg) if spec.arg else None
    return lambda out, exp: _json(out, validator)


def _load_schema(path: str) -> Validator:
    """A full JSON Schema validator (the draft the schema names, else 2020-12); a bad schema is refused here,
    once, rather than failing every item."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        schema = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise TunelabError(f"JSON schema {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise TunelabError(f"JSON schema {path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(schema, dict):
        raise TunelabError(f"JSON schema {path}: must be a JSON object")
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise TunelabError(f"JSON schema {path}: not a valid schema at {where} ({exc.message})") from None
    return cls(schema)


def _json(output: str, validator: Validator | None) -> Grade:
    text = output.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except (json.JSONDecodeError, RecursionError):
        return pass_fail(False)
    return pass_fail(validator is None or not schema_errors(value, validator))


def schema_errors(value: Any, validator: Validator) -> list[str]:
    """Each way `value` breaks the schema, as `$.path: message`."""
    return [
        "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) + f": {error.message}"
        for error in validator.iter_errors(value)
    ]
