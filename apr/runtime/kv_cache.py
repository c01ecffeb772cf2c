"""The engine's KV cache: preallocated rows (slots) of K and V, who owns each, and how batches are laid out.

Layout: one K and one V tensor of shape ``[layers, slots, kv_heads, max_len, head_dim]``; a
sequence owns a slot (a row). Running sequences are kept packed in slots ``[0, n_running)``,
those that feed one token (decoders) first, so decode attention reads a plain strided view of the
cache instead of gathering rows every step. Packing moves a sequence's cached positions when it
starts or stops running, which is rare next to steps. Paused sequences that nobody needs are
evicted least-recently-used when slots run out; an evicted sequence keeps its tokens and simply
re-prefills them when it runs again.
"""

from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

from apr.runtime.cpu import cpu_flags
from apr.runtime.sequence import Sequence


def default_kv_dtype(model_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype attention runs in: the model's, except half-precision models on a CPU without AMX,
    where torch's bf16/fp16 attention kernels are several times slower than fp32 ones (docs/runtime.md:
    the cache then costs twice the memory and attention reads it without conversion)."""
    half = model_dtype in (torch.bfloat16, torch.float16)
    if half and device.type == "cpu" and "amx_bf16" not in cpu_flags():
        return torch.float32
    return model_dtype


class KVCache:
    def __init__(self, model: LlamaForCausalLM, n_slots: int, max_len: int, dtype: torch.dtype | None = None):
        cfg = model.config
        param = next(model.parameters())
        self.dtype = dtype or default_kv_dtype(param.dtype, param.device)
        head_dim = model.model.layers[0].self_attn.head_dim
        shape = (cfg.num_hidden_layers, n_slots, cfg.num_key_value_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=self.dtype, device=param.device)
        self.v = torch.zeros(shape, dtype=self.dtype, device=param.device)
        self.n_slots = n_slots
        self.owner: list[Sequence | None] = [None] * n_slots

    def slots_in_use(self) -> int:
        return sum(o is not None for o in self.owner)

    def pack(self, active: list[Sequence]) -> tuple[list[Sequence], int]:
        """Lay out this step's batch: ``d`` decoders in slots [0, d), prefills after."""
        decoders = [s for s in active if s.n_pending == 1 and s.slot is not None]
        prefills = [s for s in active if not (s.n_pending == 1 and s.slot is not None)]
        self._place(decoders, 0)
        self._place(prefills, len(decoders))
        return decoders + prefills, len(decoders)

    def copy_into_free_slot(self, source: Sequence, target: Sequence) -> None:
        """Give ``target`` a slot holding ``source``'s cached positions (``fork``); none if no slot can be freed."""
        if source.slot is None or not source.n_cached:
            return
        slot = self.take_free_slot(keep=source)
        if slot is None:
            return
        self.owner[slot], target.slot = target, slot
        n = source.n_cached
        self.k[:, slot, :, :n] = self.k[:, source.slot, :, :n]
        self.v[:, slot, :, :n] = self.v[:, source.slot, :, :n]
        target.n_cached = n

    def release(self, seq: Sequence) -> None:
        """Give up ``seq``'s slot (the sequence is forgotten)."""
        if seq.slot is not None:
            self.owner[seq.slot] = None
            seq.slot = None
        seq.n_cached = 0

    def _place(self, group: list[Sequence], lo: int) -> None:
        """Move ``group`` into slots [lo, lo + len(group)), touching as few caches as possible.

        Called for the decoders first, so a hole here is never owned by a running decoder; a
        running prefill sitting in a decoder hole just trades places with the decoder.
        """
        hi = lo + len(group)
        members = set(map(id, group))
        movers = [s for s in group if s.slot is None or not lo <= s.slot < hi]
        holes = [i for i in range(lo, hi) if self.owner[i] is None or id(self.owner[i]) not in members]
        for seq, hole in zip(movers, holes):
            if seq.slot is None:
                self._vacate(hole)
                self.owner[hole], seq.slot, seq.n_cached = seq, hole, 0
            else:
                self._swap(seq.slot, hole)
        group.sort(key=lambda s: s.slot)  # the forward pass reads slots in this order

    def _vacate(self, slot: int) -> None:
        """Empty ``slot``, moving its paused owner elsewhere (or evicting it if the cache is full)."""
        if self.owner[slot] is None:
            return
        free = self.take_free_slot(exclude=slot)
        if free is not None:
            self._swap(slot, free)
        else:
            self.drop(self.owner[slot])

    def take_free_slot(self, exclude: int | None = None, keep: Sequence | None = None) -> int | None:
        """A free slot, evicting the least recently used paused sequence if there is none."""
        for i in range(self.n_slots - 1, -1, -1):
            if self.owner[i] is None and i != exclude:
                return i
        idle = [s for i, s in enumerate(self.owner)
                if s is not None and i != exclude and not s.running and s is not keep]
        if not idle:
            return None
        victim = min(idle, key=lambda s: s.last_used)
        slot = victim.slot
        self.drop(victim)
        return slot

    def drop(self, seq: Sequence) -> None:
        """Evict a paused sequence's cache; it keeps its tokens and re-prefills when it runs."""
        self.owner[seq.slot] = None
        seq.slot, seq.n_cached = None, 0

    def _swap(self, a: int, b: int) -> None:
        """Exchange the contents (owners and cached positions) of slots ``a`` and ``b``."""
        sa, sb = self.owner[a], self.owner[b]
        na = sa.n_cached if sa is not None else 0
        nb = sb.n_cached if sb is not None else 0
        for cache in (self.k, self.v):
            tmp = cache[:, a, :, :na].clone()
            cache[:, a, :, :nb] = cache[:, b, :, :nb]
            cache[:, b, :, :na] = tmp
        self.owner[a], self.owner[b] = sb, sa
        if sa is not None:
            sa.slot = b
        if sb is not None:
            sb.slot = a
