"""Next tokens for a batch of sequences, each with its own sampling parameters and random stream."""

from __future__ import annotations

import torch

from apr.runtime.sequence import Sequence


def sample(logits: torch.Tensor, batch: list[Sequence]) -> tuple[list[int], list[float]]:
    """Pick each row's next token with its sequence's params; also its log-prob.

    Greedy rows take the argmax. Sampled rows apply temperature, top-k and top-p, then draw one
    uniform number from the sequence's own generator and invert the CDF: the random stream of a
    sequence does not depend on which other sequences share the batch. Log-probs are of the raw
    model distribution (before temperature and truncation), or of ``logits / temperature`` for
    sequences that ask for ``tempered_logprobs``: in each case what a trainer recomputes.
    """
    logprobs = torch.log_softmax(logits, dim=-1)
    tokens = logits.argmax(dim=-1)
    rows = [i for i, s in enumerate(batch) if not s.params.greedy]
    if rows:
        dev = logits.device
        idx = torch.tensor(rows, device=dev)
        params = [batch[i].params for i in rows]
        scaled = logits[idx] / torch.tensor([p.temperature for p in params], device=dev)[:, None]
        tempered = [j for j, p in enumerate(params) if p.tempered_logprobs]
        if tempered:
            logprobs[idx[tempered]] = torch.log_softmax(scaled[tempered], dim=-1)
        sorted_logits, order = scaled.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        vocab = probs.shape[-1]
        rank = torch.arange(vocab, device=dev)[None, :]
        top_k = torch.tensor([min(p.top_k, vocab) if p.top_k > 0 else vocab for p in params], device=dev)[:, None]
        top_p = torch.tensor([p.top_p for p in params], device=dev)[:, None]
        keep = (rank < top_k) & ((probs.cumsum(dim=-1) - probs) < top_p)
        keep[:, 0] = True
        cdf = (probs * keep).cumsum(dim=-1)
        draws = torch.stack([torch.rand((), generator=batch[i].generator) for i in rows])  # CPU generators
        u = draws.to(dev) * cdf[:, -1]
        pick = torch.searchsorted(cdf, u[:, None]).clamp_(max=vocab - 1)
        tokens[idx] = order.gather(1, pick)[:, 0]
    chosen = logprobs.gather(1, tokens[:, None])[:, 0]
    return tokens.tolist(), chosen.tolist()
