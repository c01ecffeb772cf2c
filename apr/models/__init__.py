"""Model presets (Llama architecture) and checkpoint loading."""

from apr.models.loading import build_model, check_tokenizer, load_model
from apr.models.presets import PRESETS, ModelConfigError, Preset, get_preset, model_config, non_embedding_parameters

__all__ = [
    "PRESETS", "ModelConfigError", "Preset", "build_model", "check_tokenizer", "get_preset", "load_model",
    "model_config", "non_embedding_parameters",
]
