"""One SFT step's forward and backward pass under bf16 autocast vs fp32, on whatever CPU runs it.

The training default (``apr.precision.hardware_precision``) is bf16 only where the hardware computes in
it; this prints why, with the model shape of the 4-number pilots (4 layers, hidden 256) over
``--batch`` x ``--length`` tokens, one torch thread, the two precisions interleaved, best of ``--rounds``.

    python benchmarks/training_precision.py        # ~1 minute
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from apr.precision import BF16_CPU_FLAGS, hardware_precision
from apr.runtime.cpu import cpu_flags, cpu_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=488, hidden_size=args.hidden, num_hidden_layers=args.layers,
                                         intermediate_size=args.hidden * 11 // 4, num_attention_heads=args.hidden // 64,
                                         num_key_value_heads=args.hidden // 64, max_position_embeddings=args.length))
    ids = torch.randint(0, 488, (args.batch, args.length))
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision, times in seconds.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            times.append(time.perf_counter() - start)
    bf16_hw = sorted(cpu_flags() & BF16_CPU_FLAGS) or ["neither AMX nor AVX512-BF16"]
    print(f"{cpu_model()} ({', '.join(bf16_hw)}) · 1 thread · {args.layers} layers, hidden {args.hidden}, "
          f"{args.batch} x {args.length} tokens · default here: {hardware_precision(None, 'cpu')}\n")
    print("| precision | forward + backward s (best of {}) | vs fp32 |".format(args.rounds))
    print("|---|---|---|")
    for precision, times in seconds.items():
        print(f"| {precision} | {min(times):.2f} | {min(times) / min(seconds['fp32']):.2f}x |")


if __name__ == "__main__":
    main()
