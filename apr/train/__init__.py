"""Supervised training: batching, checkpoints and the SFT loop (``train_sft``)."""
