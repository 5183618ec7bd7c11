"""Teacher and student for scikit-learn's digits (8x8 images flattened to 64 features, 10 classes)."""

from __future__ import annotations

from torch import nn


def teacher(hidden: int = 256, num_classes: int = 10) -> nn.Module:
    """A wide two-hidden-layer MLP: the big model we distill from (~85k parameters)."""
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(hidden, num_classes),
    )


def student(hidden: int = 32, num_classes: int = 10) -> nn.Module:
    """A one-hidden-layer MLP with ~3 % of the teacher's parameters."""
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


teacher.needs_training = True  # a fresh MLP: the demo trains it on the digits labels before distilling
