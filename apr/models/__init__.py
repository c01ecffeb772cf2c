"""Model presets (Llama architecture) and checkpoint loading.

The names load on first use: ``apr.models.trained_range`` (plain JSON) is read before a problem is
refused, and must not wait seconds for torch and transformers to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "build_model": "loading", "check_tokenizer": "loading", "load_model": "loading",
    "PRESETS": "presets", "ModelConfigError": "presets", "Preset": "presets", "get_preset": "presets",
    "model_config": "presets", "non_embedding_parameters": "presets",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'apr.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"apr.models.{_HOME[name]}"), name)
