"""Run under torchrun by test_ddp.py: train, then save this rank's weights for comparison."""

import json
import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from apr.train.sft import SFTConfig, train_sft

config = SFTConfig(**json.loads(sys.argv[1]))


def save_rank_weights(step, model):
    if step == config.max_steps:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  Path(config.out) / f"rank{dist.get_rank()}.safetensors")


train_sft(config, on_step=save_rank_weights)
