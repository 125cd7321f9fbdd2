"""The one error type users see: a single line naming the input at fault, never a traceback.

Core names inputs by their field (`seeds`, `report`), never by a front end's word for them: a message
marks each field as `{name}`, and each front end words it (the CLI as its flag, `--seeds`; the TUI as
the field it shows). `str()` of the error writes the field names in words (`train with prompt`).
"""

import re
from collections.abc import Callable

FIELD = re.compile(r"\{(\d)\}")  # `{0}`..`{9}`: a field named in the message (other braces are text)


class TunelabError(Exception):
    """A problem with the user's input or environment, reported as one line (CLI exit code 2)."""

    def __init__(self, message: str, *fields: str) -> None:
        """`message` may name `fields` as `{0}`, `{1}`, ... (each front end words them)."""
        self.template = " ".join(str(message).split())
        self.fields = fields
        super().__init__(self.worded(lambda name: name.replace("_", " ")))

    def worded(self, word: Callable[[str], str]) -> str:
        """The message with each field as `word` names it."""
        if not self.fields:
            return self.template
        return FIELD.sub(
            lambda m: word(self.fields[int(m[1])]) if int(m[1]) < len(self.fields) else m[0], self.template
        )
