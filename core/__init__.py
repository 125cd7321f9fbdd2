"""tunelab's engine: generation, training and history, importable without Textual or torch.

Modules that need torch (`core.engine.loading`, `core.engine.generation`, `core.engine.worker`) are only imported
inside child processes or the headless CLI, never by the TUI process.
"""

__version__ = "0.1.0"
