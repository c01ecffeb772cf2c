"""The GRPO objective on padded micro-batches of training sequences (spec §7.2, with its KL quirk fixed).

Per completion token t of sequence s (advantage A, importance ratio r = exp(logp - logp_old)):

    pg_t = max(-A * r, -A * clip(r, 1 - eps, 1 + eps))                  PPO-clip
    kl_t = exp(ref - logp) - (ref - logp) - 1                           k3 estimator of KL(policy || ref)

    loss = sum_s  w_s * mean_t (pg_t + beta * kl_t),   w_s = 1 / (episodes * sequences of s's episode)

so every episode weighs the same whatever its thread count. The reference divided only the PG term
by the episode's sequence count and summed the KL term over sequences undivided, which made the KL
pull grow with the number of threads an episode spawned; here both terms share ``w_s``.
The loss is a plain sum over sequences, so micro-batches of one step add up to the full-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from apr.rl.episodes import TrainSequence
from apr.train.batching import IGNORE, collate

# Log-ratios are clamped before ``exp`` (as verl does): a token whose probability moved by more
# than e^20 would otherwise overflow to inf and turn the whole gradient into NaN.
LOG_RATIO_BOUND = 20.0


@dataclass
class MicroBatch:
    inputs: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE off the completions
    advantages: torch.Tensor  # (B,)
    weights: torch.Tensor  # (B,)
    runtime_logprobs: torch.Tensor  # (B, T) the sampler's log-probs, NaN where unknown
    old_logprobs: torch.Tensor | None = None  # filled by the first pass over the rollout batch
    ref_logprobs: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor:
        return self.targets != IGNORE


def make_micro_batch(seqs: list[TrainSequence], pad_id: int) -> MicroBatch:
    """Collate sequences: the loss falls on their completion tokens only."""
    batch = collate([s.ids for s in seqs], [s.n_prompt for s in seqs], pad_id, "completion")
    runtime = torch.full(batch.targets.shape, float("nan"))
    mask = batch.targets != IGNORE
    for row, s in enumerate(seqs):
        if s.runtime_logprobs is not None:
            runtime[row, mask[row]] = torch.tensor(s.runtime_logprobs)
    return MicroBatch(batch.inputs, batch.targets, torch.tensor([s.advantage for s in seqs]),
                      torch.tensor([s.weight for s in seqs]), runtime)


def token_logprobs(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """log p(target | prefix) per position under softmax(logits / temperature), in fp32 (0 where the
    target is IGNORE)."""
    logits = model(input_ids=inputs, use_cache=False).logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return logp.masked_fill(targets == IGNORE, 0.0)


def grpo_loss(logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor | None, mask: torch.Tensor,
              advantages: torch.Tensor, weights: torch.Tensor, clip: float, beta: float
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one micro-batch (see the module docstring) and summable statistics."""
    mask = mask.float()
    n_tokens = mask.sum(dim=1).clamp(min=1)
    ratio = torch.exp((logp - old).clamp(-LOG_RATIO_BOUND, LOG_RATIO_BOUND))
    adv = advantages[:, None]
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    per_token = pg
    kl = torch.zeros_like(pg)
    if ref is not None:
        delta = (ref - logp).clamp(-LOG_RATIO_BOUND, LOG_RATIO_BOUND)
        kl = torch.exp(delta) - delta - 1
        per_token = pg + beta * kl
    loss = (weights * (per_token * mask).sum(dim=1) / n_tokens).sum()
    with torch.no_grad():
        clipped = ((ratio < 1 - clip) & (adv < 0)) | ((ratio > 1 + clip) & (adv > 0))
        stats = {
            "pg_loss": float((weights * (pg * mask).sum(dim=1) / n_tokens).sum()),
            "kl": float((weights * (kl * mask).sum(dim=1) / n_tokens).sum()),
            "clipped_tokens": float((clipped.float() * mask).sum()),
            "tokens": float(mask.sum()),
        }
    return loss, stats
