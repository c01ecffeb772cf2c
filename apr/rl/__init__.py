"""Reinforcement learning for APR models: GRPO over whole fork-join thread trees (``apr train grpo``).

``rewards`` scores an episode, ``episodes`` turns rolled-out trees into weighted training sequences,
``loss`` is the clipped objective, ``rollout`` decodes episodes through the runtime, ``grpo`` runs the loop.
"""
