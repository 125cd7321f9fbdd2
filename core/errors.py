"""The one error type users see: a single line naming the input at fault, never a traceback."""


class TunelabError(Exception):
    """A problem with the user's input or environment, reported as one line (CLI exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
