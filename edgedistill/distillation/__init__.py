"""Distillation stage: losses and the training loop."""
