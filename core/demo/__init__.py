"""The project's own demo model and demo task, shipped inside the package (no hub needed)."""

from pathlib import Path

MODEL_DIR = Path(__file__).parent / "model"
TASK_DIR = Path(__file__).parent / "data" / "sentiment"
MODEL_ALIAS = "demo"
