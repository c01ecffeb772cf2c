import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file

from apr.train.sft import train_sft

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_cpu_ranks_stay_identical_and_match_gradient_accumulation(tiny_config, tmp_path):
    ddp = tiny_config(out=str(tmp_path / "ddp"), max_steps=4, save_every=100, val_fraction=0.1)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run([*torchrun, str(WORKER), json.dumps(asdict(ddp))], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = Path(ddp.out)
    r0, r1, final = (load_file(out / name) for name in ("rank0.safetensors", "rank1.safetensors", "final/model.safetensors"))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP kept the replicas bitwise equal
    assert all(torch.equal(r0[k], final[k]) for k in final)

    # One process accumulating 2 micro-batches sees the same batches per step (see batching.iterate_steps).
    single = train_sft(tiny_config(out=str(tmp_path / "single"), max_steps=4, save_every=100, grad_accum=2))
    alone = load_file(single / "model.safetensors")
    assert all(torch.allclose(alone[k], final[k], atol=1e-5) for k in final)
