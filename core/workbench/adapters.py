"""The adapters a workbench offers: finished runs' LoRAs, and PEFT folders made elsewhere (a mixin of
`Workbench`, which gives it `root` and `runs`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.engine.engines import is_local
from core.engine.served import loads_lora
from core.errors import TunelabError
from core.storage.atomic import write_atomic
from core.storage.runfolders import ADAPTER_CONFIG, CONFIG_FILE, names_local_adapter, read_json
from core.training.runs import Runs

if TYPE_CHECKING:
    from core.training.gguf_export import Exported

FOLDERS_FILE = "adapter_folders.json"  # PEFT adapter folders from elsewhere, offered beside the runs' own
ELSEWHERE = "elsewhere"


@dataclass
class Adapter:
    """A finished LoRA: the run that trained it (or, for a folder from elsewhere, its path), its folder, and
    what it was trained on."""

    run_id: str
    path: Path
    eval_loss: float | None = None
    trained_on: str = "as is"  # or the template's first line, when rendered with a prompt; "elsewhere"

    @property
    def label(self) -> str:
        if self.trained_on == ELSEWHERE:
            return f"{self.path.name[:24]} (folder)"
        loss = f" eval {self.eval_loss:.3f}" if self.eval_loss is not None else ""
        return f"{self.run_id[:10]}{loss}"


class Adapters:
    """The LoRA adapters the workbench offers, their folders from elsewhere, and which model takes which: the
    workbench's `adapters` service."""

    def __init__(self, root: Path, runs: Runs) -> None:
        self.root, self.runs = root, runs

    def add_adapter_folder(self, folder: str) -> Adapter:
        """Offer a PEFT adapter folder made elsewhere (checked: `adapter_config.json` and weights) from now on."""
        from core.training.adapters import resolve_adapter

        path = Path(folder).expanduser()
        if not path.is_dir():
            raise TunelabError(f"no adapter folder {path}")
        path = resolve_adapter(self.root, str(path.resolve()))
        kept = [str(p) for p in self._adapter_folders() if p != path]
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / FOLDERS_FILE, json.dumps({"folders": [str(path), *kept]}))
        return Adapter(str(path), path, trained_on=ELSEWHERE)

    def _adapter_folders(self) -> list[Path]:
        folders = (read_json(self.root / FOLDERS_FILE) or {}).get("folders")
        return [Path(f) for f in folders if isinstance(f, str)] if isinstance(folders, list) else []

    def listed(self) -> list[Adapter]:
        """Finished runs' adapters, newest first, then the folders added from elsewhere that are still there."""
        out = []
        for status in self.runs.list():
            if status.state == "done" and status.adapter:
                run_dir = self.runs.folder / status.id  # ids from list() are whole: no prefix search
                config = (read_json(run_dir / CONFIG_FILE) or {}).get("config", {})
                template = str(config.get("template") or "")
                out.append(
                    Adapter(
                        status.id,
                        run_dir / status.adapter,
                        status.eval_loss,
                        template.splitlines()[0][:40] if template.strip() else "as is",
                    )
                )
        out += [
            Adapter(str(p), p, trained_on=ELSEWHERE) for p in self._adapter_folders() if (p / ADAPTER_CONFIG).is_file()
        ]
        return out

    def adapter_pairs(self, adapters: list[str | None], models: list[str]) -> set[tuple[str | None, str]]:
        """Which (adapter, model) cells exist: a local adapter on a served model only where its endpoint loads
        LoRAs; a name that is no folder or run here, only on the served models (their server lists it)."""
        served = not all(is_local(m) for m in models)
        local = {a: names_local_adapter(self.root, a) for a in adapters if a and served}

        def fits(adapter: str | None, model: str) -> bool:
            if not adapter or not served:
                return True
            return local[adapter] if is_local(model) else (not local[adapter] or loads_lora(model))

        return {(a, m) for a in adapters for m in models if fits(a, m)}

    def adapter_path(self, ref: str) -> Path:
        from core.training.adapters import resolve_adapter

        return resolve_adapter(self.root, ref)

    def export_gguf(self, ref: str, out: Path, **options: Any) -> Exported:
        """The adapter as GGUF for llama.cpp and Ollama: merged into its base, or alone as a GGUF LoRA; with
        `ollama`, a Modelfile beside it (the options: `core.training.gguf_export.export`'s)."""
        from core.training.gguf_export import export

        return export(self.root, ref, out, **options)
