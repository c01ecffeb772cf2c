"""The checked-in models load with stock ``transformers`` (no apr code) and stay within the size budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from apr.tokenizer import load_tokenizer

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("name", ["apr-cpu", "sosp-cpu", "apr-grpo-cpu"])
def test_bundled_checkpoint_loads_with_plain_transformers(name):
    folder = MODELS / name
    assert (folder / "model.safetensors").stat().st_size <= 25 * 2**20
    card = (folder / "README.md").read_text()
    assert "## Measured accuracy" in card and "apr train sft" in card
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tok.get_vocab() == load_tokenizer().get_vocab()  # the bundled tokenizer, unchanged
    assert model.config.vocab_size == len(tok) and model.config.max_position_embeddings == 1024


def test_model_cards_carry_the_hub_metadata():
    import yaml

    from apr.serve.loading import BUNDLED_MODELS

    for name in ("apr-cpu", "sosp-cpu", "apr-grpo-cpu"):
        meta = yaml.safe_load((BUNDLED_MODELS / name / "README.md").read_text().split("---\n")[1])
        assert meta["license"] == "apache-2.0" and meta["datasets"] and meta["library_name"] == "transformers"
        (result,) = meta["model-index"][0]["results"]
        assert 0 < result["metrics"][0]["value"] <= 100
    grpo = yaml.safe_load((BUNDLED_MODELS / "apr-grpo-cpu" / "README.md").read_text().split("---\n")[1])
    assert grpo["base_model"] == "apr-cpu" and grpo["base_model_relation"] == "finetune"
