"""Which weight layout makes the decode step's linear layers fastest on this CPU.

A decode step multiplies a few rows (one per sequence decoding) by every weight matrix. nn.Linear keeps
weights as contiguous ``[out, in]``; the engine stores fp32 weights on CPU as the transposed view of a
contiguous ``[in, out]`` matrix instead (``apr.runtime.model_runner.transpose_weight_storage``), the same
values in the same shape. This times every linear layer of the benchmark model (hidden 512, 8 layers, as
``benchmarks/runtime.py``) both ways at several row counts, one torch thread, best of 5 repeats, and prints
the ratio, on whatever CPU runs it.

    python benchmarks/linear_layout.py       # ~1 minute
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from apr.runtime.cpu import cpu_model
from attention import best_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64, 512])
    args = ap.parse_args()
    torch.set_num_threads(1)
    h, i = args.hidden, args.hidden * 11 // 4
    shapes = [(3 * h, h), (h, h), (2 * i, h), (h, i)] * args.layers  # q/k/v, o, gate/up, down
    weights = [torch.randn(o, n) for o, n in shapes]
    transposed = [w.t().contiguous().t() for w in weights]
    print(f"{cpu_model()} · 1 thread · fp32 · linear layers of hidden {h}, {args.layers} layers\n")
    print("| rows | contiguous [out, in] ms | transposed storage ms | transposed / contiguous |")
    print("|---|---|---|---|")
    for m in args.rows:
        x = {h: torch.randn(m, h), i: torch.randn(m, i)}
        a = best_ms(lambda: [F.linear(x[w.shape[1]], w) for w in weights])
        b = best_ms(lambda: [F.linear(x[w.shape[1]], w) for w in transposed])
        print(f"| {m} | {a:.2f} | {b:.2f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
