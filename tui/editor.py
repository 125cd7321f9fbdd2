"""The prompt in the user's own editor: $VISUAL or $EDITOR on a temporary file, with the app suspended."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from textual.app import App, SuspendNotSupported


def edit_in_editor(app: App, text: str) -> str | None:
    """The edited text, or None (said in one line) when there is no editor, it fails or exits non-zero:
    the text on screen is then kept. No shell: the editor command is split as a shell would."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        app.notify("Set $EDITOR (or $VISUAL) to edit the prompt in your editor.", severity="warning")
        return None
    fd, name = tempfile.mkstemp(prefix="tunelab-prompt-", suffix=".txt")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            with app.suspend():
                done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except SuspendNotSupported:
            app.notify("This terminal cannot hand over to an editor.", severity="warning")
            return None
        except (OSError, ValueError) as exc:
            app.notify(f"cannot start editor '{editor}': {getattr(exc, 'strerror', None) or exc}", severity="error")
            return None
        if done.returncode != 0:
            app.notify(f"editor exited with {done.returncode}; the prompt is unchanged", severity="warning")
            return None
        return path.read_text(encoding="utf-8", errors="replace").removesuffix("\n")
    finally:
        path.unlink(missing_ok=True)
