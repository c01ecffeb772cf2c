"""End to end: a few GRPO steps on a tiny model write checkpoints and metrics, and resume exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from apr import grammar as g
from apr.cli import app, _register
from apr.rl.config import OLD_NAMES, GRPOConfig
from apr.rl.grpo import step_problems, train_grpo
from apr.rl.rollout import ServerRollouts
from apr.train import checkpoint as ckpt


class Killed(Exception):
    pass


def kill_at(n: int):
    def hook(step, model):
        if step == n:
            raise Killed
    return hook


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def config(demo, sharp_checkpoint, tmp_path):
    state = g.parse_prompt(demo.prompt)
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"id": "p0", "nums": state.nums, "target": state.target}) + "\n")
    base = GRPOConfig(init_from=str(sharp_checkpoint), problems=str(problems), out=str(tmp_path / "run"),
                      val_problems=str(problems), val_size=1, prompts_per_step=2, num_generations=4, steps=3,
                      lr=2e-5, beta=0.01, tokens_per_batch=4096, max_tokens=300, max_slots=32,
                      val_every=3, save_every=2, progress=False)
    return lambda **kw: replace(base, **kw)


def test_grpo_trains_writes_checkpoints_and_metrics_and_resumes_exactly(config, tmp_path):
    full = train_grpo(config(out=str(tmp_path / "full")))
    steps = [r for r in records(tmp_path / "full") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert [r["step"] for r in records(tmp_path / "full") if "val_accuracy" in r] == [0, 3]
    assert any(0 < r["accuracy"] < 1 for r in steps)  # groups disagree: there is something to learn
    for r in steps:
        assert r["threads"] > 1 and r["children_per_spawn"] > 0 and r["sequential_tokens"] < r["generated_tokens"]
        assert r["kl"] >= 0 and 0 <= r["clip_frac"] <= 1 and r["grad_norm"] > 0
        assert r["logprob_gap"] < 0.1  # bf16 engine vs bf16-autocast trainer
    assert steps[0]["kl"] < 1e-6 < steps[-1]["kl"]  # the policy starts at the reference and leaves it
    start = AutoModelForCausalLM.from_pretrained(config().init_from)
    trained = AutoModelForCausalLM.from_pretrained(full)  # plain HF format
    assert not torch.equal(start.lm_head.weight, trained.lm_head.weight)

    cut = tmp_path / "cut"
    with pytest.raises(Killed):
        train_grpo(config(out=str(cut)), on_step=kill_at(2))
    assert [s for s, _ in ckpt.training_checkpoints(cut)] == [2] and not (cut / "final").exists()
    with pytest.raises(ValueError, match=r"settings differ .*epsilon: 0.2 -> 0.3"):
        train_grpo(config(out=str(cut), epsilon=0.3, resume=True))
    with pytest.raises(ValueError, match="already holds a run"):
        train_grpo(config(out=str(cut)))
    [(_, saved)] = ckpt.training_checkpoints(cut)  # saved before the settings took TRL's names
    state = ckpt.load_state(saved)
    state["config"] = {old: state["config"].pop(new) for old, new in OLD_NAMES.items()} | state["config"]
    torch.save(state, saved / ckpt.STATE_FILE)
    resumed = train_grpo(config(out=str(cut), resume=True))
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bitwise
    timing = ("rollout_s", "train_s", "elapsed_s", "val_s")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in records(cut)]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in records(tmp_path / "full")]
    assert train_grpo(config(out=str(cut), resume=True)) == resumed  # already finished


def test_a_finished_run_resumed_with_more_steps_trains_on_as_if_never_stopped(config, tmp_path, capsys):
    full = train_grpo(config(out=str(tmp_path / "full"), steps=3, val_problems=None))
    short = train_grpo(config(out=str(tmp_path / "short"), steps=1, save_every=5, val_problems=None))
    assert train_grpo(config(out=str(tmp_path / "short"), steps=1, save_every=5, val_problems=None,
                             resume=True)) == short
    assert "pass a larger --max-steps" in capsys.readouterr().out
    longer = train_grpo(config(out=str(tmp_path / "short"), steps=3, save_every=5, val_problems=None, resume=True))
    a, b = load_file(full / "model.safetensors"), load_file(longer / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise: the same three steps
    assert [r["step"] for r in records(tmp_path / "short")] == [1, 2, 3]


def test_join_groups_add_their_samples_to_the_same_rollout_batch(config, tmp_path):
    plain = config(out=str(tmp_path / "plain"), steps=1, val_problems=None)
    train_grpo(plain)
    train_grpo(replace(plain, out=str(tmp_path / "join"), join_samples=3, join_weight=2.0))
    [a], [b] = records(tmp_path / "plain"), records(tmp_path / "join")
    assert a["reward"] == b["reward"] and a["generated_tokens"] == b["generated_tokens"]  # same episodes
    assert b["join_groups"] > 0 and 0 <= b["join_trained"] <= b["join_groups"] and 0 <= b["join_accuracy"] <= 1
    assert b["sequences"] == a["sequences"] + 3 * b["join_trained"]
    assert "join_groups" not in a


def test_problems_per_step_cycle_through_seeded_epochs():
    drawn = [i for step in range(5) for i in step_problems(7, 3, seed=0, step=step)]
    assert sorted(drawn[:7]) == list(range(7)) and sorted(drawn[7:14]) == list(range(7))
    assert step_problems(7, 3, seed=0, step=3) == drawn[9:12]  # a pure function of the step
    assert step_problems(7, 3, seed=1, step=0) != drawn[:3]


@pytest.mark.parametrize("flags,message", [
    (["--group-size", "1"], "num_generations must be >= 2"),
    (["--advantage", "rank"], "'rank' is not one of 'std', 'mean'"),
    (["--num-generations", "1"], "num_generations must be >= 2"),  # TRL's name for it
    (["--temperature", "0"], "temperature must be in"),
    (["--backend-url", "http://127.0.0.1:1/v1", "--temperature", "0.7"], "samples at temperature 1 only"),
    (["--server-url", "http://127.0.0.1:1/v1", "--temperature", "0.7"], "samples at temperature 1 only"),
    (["--problems", "missing.jsonl"], "problems: missing.jsonl does not exist"),
    (["--join-samples", "1"], "join_samples must be 0 (off) or >= 2"),
])
def test_cli_rejects_bad_input_in_one_line(config, tmp_path, flags, message):
    c = config()
    args = ["train", "grpo", "--init-from", c.init_from, "--problems", c.problems, "--out", str(tmp_path / "x")]
    _register()
    result = CliRunner().invoke(app, args + flags)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split()) and "Traceback" not in result.output


def test_cli_flags_reach_the_config_by_name(config, tmp_path, monkeypatch):
    """Every flag lands in its GRPOConfig field (nested Limits and Rewards included), the TRL names too."""
    seen = {}
    monkeypatch.setattr("apr.rl.grpo.train_grpo", lambda c: seen.setdefault("config", c) and tmp_path)
    c = config()
    _register()
    result = CliRunner().invoke(app, ["train", "grpo", "--init-from", c.init_from, "--problems", c.problems,
                                      "--out", str(tmp_path / "x"), "--max-depth", "2", "--max-children", "6",
                                      "--num-generations", "3", "--beta", "0.02", "--epsilon", "0.3",
                                      "--efficiency", "0.5", "--dtype", "fp32", "--max-steps", "7"])
    assert result.exit_code == 0, result.output
    got = seen["config"]
    assert (got.limits.max_depth, got.limits.max_children, got.num_generations, got.beta, got.epsilon) == (2, 6, 3, 0.02, 0.3)
    assert (got.rewards.efficiency, got.rollout_dtype, got.steps, got.backend) == (0.5, "fp32", 7, "embedded")
    assert got.init_from == c.init_from and isinstance(got.out, str)


def test_server_rollouts_reload_the_policy_from_disk(sharp_model, tok, tmp_path):
    """SGLang's reload endpoint gets the folder the policy was just written to."""
    seen = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"success": True, "message": "Succeeded to update model weights."})

    rollouts = ServerRollouts("http://sglang:30000/v1", "apr", tok, 512, tmp_path / "server-policy",
                              transport=httpx.MockTransport(server))
    rollouts.sync(sharp_model)
    assert seen == [("/update_weights_from_disk", {"model_path": str((tmp_path / "server-policy").resolve())})]
    assert (tmp_path / "server-policy" / "model.safetensors").is_file()
    failing = ServerRollouts("http://sglang:30000/v1", "apr", tok, 512, tmp_path / "p2",
                             transport=httpx.MockTransport(lambda r: httpx.Response(400, json={"success": False})))
    with pytest.raises(RuntimeError, match="did not reload"):
        failing.sync(sharp_model)
