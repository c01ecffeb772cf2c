import pytest
import torch
from transformers import LlamaForCausalLM

from apr.models import (ModelConfigError, build_model, check_tokenizer, load_model, model_config,
                        non_embedding_parameters)
from apr.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _meta_model(preset, tok, **kw) -> LlamaForCausalLM:
    with torch.device("meta"):  # shapes only: the paper model would cost 1.2 GB to allocate
        return LlamaForCausalLM(model_config(preset, tok, **kw))


def test_paper_preset_is_the_papers_228m_model(tok):
    config = model_config("paper", tok)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (18, 1024, 16)
    assert (config.num_key_value_heads, config.intermediate_size, config.head_dim) == (16, 2752, 64)
    assert config.rms_norm_eps == 1e-6 and config.rope_parameters["rope_theta"] == 10000.0
    assert config.max_position_embeddings == 4096 and config.tie_word_embeddings is False
    assert config.hidden_act == "silu" and not config.attention_bias and not config.mlp_bias
    model = _meta_model("paper", tok)
    assert non_embedding_parameters(model) == 18 * (4 * 1024**2 + 3 * 1024 * 2752 + 2 * 1024) + 1024  # 227.7M
    total = sum(p.numel() for p in model.parameters())
    assert total == non_embedding_parameters(model) + 2 * len(tok) * 1024  # untied: embedding + LM head


@pytest.mark.parametrize("preset,low,high", [("cpu", 2e6, 6e6), ("mid", 20e6, 30e6)])
def test_smaller_presets_have_their_advertised_size(tok, preset, low, high):
    assert low <= non_embedding_parameters(_meta_model(preset, tok)) <= high


def test_vocabulary_special_ids_and_context_come_from_tokenizer_and_caller(tok):
    config = model_config("cpu", tok, context_length=1024)
    assert config.vocab_size == len(tok)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (tok.bos_token_id, tok.eos_token_id,
                                                                              tok.pad_token_id)
    assert config.max_position_embeddings == 1024


def test_unknown_preset_names_the_valid_ones(tok):
    with pytest.raises(ModelConfigError, match="unknown model preset 'huge'.*tiny.*cpu.*mid.*paper"):
        model_config("huge", tok)


def test_build_model_is_seeded_and_carries_generation_ids(tok):
    a, b, c = (build_model("tiny", tok, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    gen = a.generation_config
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id, gen.max_length) == (1, 2, 3, 4096)


def test_mismatched_tokenizer_is_refused_before_loading(tok, tmp_path):
    build_model("tiny", tok).save_pretrained(tmp_path)
    assert isinstance(load_model(tmp_path, tok), LlamaForCausalLM)
    bigger = load_tokenizer()
    bigger.add_tokens(["<extra>"])
    with pytest.raises(ModelConfigError, match=rf"vocabulary size {len(tok)} \(model\) vs {len(tok) + 1} \(tokenizer\)"):
        load_model(tmp_path, bigger)
    config = model_config("tiny", tok)
    config.eos_token_id = 0
    with pytest.raises(ModelConfigError, match=r"eos id 0 \(model\) vs 2 \(tokenizer\)"):
        check_tokenizer(config, tok)
    with pytest.raises(ModelConfigError, match="not a model checkpoint"):
        load_model(tmp_path / "nowhere", tok)

