import json
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from apr.data.io import default_file_mode
from apr.models import ModelConfigError, build_model, load_model
from apr.tokenizer import encode_segment, load_tokenizer
from apr.train import checkpoint as ckpt
from apr.train import sft as sft_module
from apr.train.sft import SFTInputError, lr_at, train_sft

PROMPT = "Current State: 27:[22, 26, 31, 53], Operations: []"

# Runs in a fresh interpreter that never imports apr: the checkpoint must stand on its own.
LOAD_WITHOUT_APR = f"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
ids = tok({PROMPT!r}, return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=4, do_sample=False)
assert not [m for m in sys.modules if m == "apr" or m.startswith("apr.")]
print(json.dumps({{"ids": ids[0].tolist(), "last_logits": model(ids).logits[0, -1].tolist(),
                  "generated": out.shape[1] - ids.shape[1], "gen": model.generation_config.to_dict()}}))
"""


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_trained_checkpoint_loads_with_plain_transformers(tiny_config, tmp_path):
    final = train_sft(tiny_config(max_steps=8))
    assert final == tmp_path / "run" / "final"
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json"} <= {p.name for p in final.iterdir()}
    assert not (final / ckpt.STATE_FILE).exists()  # the final model carries no optimizer state
    assert {p.stat().st_mode & 0o777 for p in final.iterdir()} == {default_file_mode()}  # no 0600 weights

    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_APR, str(final)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    tok = load_tokenizer()
    assert seen["ids"] == encode_segment(tok, PROMPT, "")[0][:-1]  # exactly one BOS, no EOS
    assert (seen["gen"]["eos_token_id"], seen["gen"]["pad_token_id"], seen["gen"]["max_length"]) == (2, 3, 4096)
    assert seen["generated"] >= 1
    with torch.no_grad():
        ours = load_model(final, tok)(torch.tensor([seen["ids"]])).logits[0, -1]
    assert torch.allclose(ours, torch.tensor(seen["last_logits"]), atol=1e-5)

    records = _records(tmp_path / "run")
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert train[-1]["loss"] < train[0]["loss"]
    assert all(r["tokens_per_s"] > 0 for r in train)
    assert [r["step"] for r in records if "val_loss" in r] == [3, 6, 8]


class Killed(Exception):
    pass


def _kill_at(n):
    def hook(step, model):
        if step == n:
            raise Killed
    return hook


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resuming_a_killed_run_reaches_the_uninterrupted_weights(tiny_config, tmp_path, precision):
    full = train_sft(tiny_config(out=str(tmp_path / "full"), precision=precision))
    cut = tmp_path / "cut"
    with pytest.raises(Killed):
        train_sft(tiny_config(out=str(cut), precision=precision), on_step=_kill_at(5))
    assert [s for s, _ in ckpt.training_checkpoints(cut)] == [2, 4] and not (cut / "final").exists()
    with (cut / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "lo')  # a record torn by the kill

    resumed = train_sft(tiny_config(out=str(cut), precision=precision, resume=True))
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bitwise
    assert [r["step"] for r in _records(cut) if "loss" in r] == list(range(1, 7))  # step 5's first try is gone
    assert train_sft(tiny_config(out=str(cut), precision=precision, resume=True)) == resumed  # already done


def test_resume_refuses_changed_settings_and_a_fresh_run_refuses_a_used_folder(tiny_config, tmp_path):
    with pytest.raises(Killed):
        train_sft(tiny_config(), on_step=_kill_at(2))
    with pytest.raises(SFTInputError, match=r"settings differ .*lr: 0.003 -> 0.001"):
        train_sft(tiny_config(resume=True, lr=1e-3))
    with pytest.raises(SFTInputError, match="already holds a run; pass --resume"):
        train_sft(tiny_config())


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    tok = load_tokenizer()
    path = tmp_path / "checkpoint-0000002"
    ckpt.save_checkpoint(path, build_model("tiny", tok, seed=1), tok, {"step": 2}, {"step": 2})
    before = load_file(path / "model.safetensors")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(path, build_model("tiny", tok, seed=2), tok, {"step": 2}, {"step": 2})
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(tmp_path / "checkpoint-0000004", build_model("tiny", tok), tok, {}, {"step": 4})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0000002"]  # no temp dirs, no half checkpoint
    after = load_file(path / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ckpt.load_state(path) == {"step": 2}


class FakeClock:
    """``time`` for apr.train.sft whose perf_counter advances 0.5 s per call: speed-independent budgets."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 0.5
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_time_budget_stops_the_run_and_decays_the_lr_with_the_clock(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(sft_module, "time", FakeClock())
    final = train_sft(tiny_config(max_steps=None, max_minutes=0.1, warmup_steps=0, save_every=10_000))
    train = [r for r in _records(tmp_path / "run") if "loss" in r]
    assert final.exists() and 6 <= train[-1]["elapsed_s"] < 7  # stopped at the first step past 6 s
    lrs = [r["lr"] for r in train]
    assert lrs[0] == 3e-3 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.2 * 3e-3  # decayed with time


def test_lr_warms_up_linearly_then_follows_a_cosine_to_the_floor(tiny_config):
    c = tiny_config(lr=1e-3, warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_at(c, s, 0.0) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr_at(c, 10, 0.5) == pytest.approx(0.55e-3)  # halfway down the cosine
    assert lr_at(c, 10, 1.0) == lr_at(c, 10, 7.0) == pytest.approx(1e-4)


def test_tokenizer_that_does_not_match_the_start_checkpoint_is_refused(tiny_config, tmp_path):
    other = load_tokenizer()
    other.add_tokens(["<extra>"])
    build_model("tiny", other).save_pretrained(tmp_path / "start")
    n = len(load_tokenizer())
    with pytest.raises(ModelConfigError, match=rf"vocabulary size {n + 1} \(model\) vs {n} \(tokenizer\)"):
        train_sft(tiny_config(init_from=str(tmp_path / "start")))
    assert not (tmp_path / "run").exists()


def test_a_run_saves_its_config_and_mirrors_metrics_to_tensorboard(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from apr.train.metrics import RUN_CONFIG

    out = tmp_path / "tb"
    train_sft(tiny_config(out=str(out), tensorboard=True))
    assert json.loads((out / RUN_CONFIG).read_text())["lr"] == 3e-3
    board = EventAccumulator(str(out / "tensorboard"))
    board.Reload()
    losses = board.Scalars("loss")
    assert [e.step for e in losses] == [r["step"] for r in _records(out) if "loss" in r]
    assert losses[-1].value == pytest.approx(next(r["loss"] for r in reversed(_records(out)) if "loss" in r))
    assert "val_loss" in board.Tags()["scalars"]
