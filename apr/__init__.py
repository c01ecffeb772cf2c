"""apr: Adaptive Parallel Reasoning, from Countdown data to fork-join inference, RL and evaluation."""

__version__ = "0.1.0"
