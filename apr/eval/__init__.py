"""Evaluation harness: ``apr eval`` runs checkpoints over held-out problems and reproduces the
paper's accuracy / compute / context / latency views (see docs/evaluation.md)."""
