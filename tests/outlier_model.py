"""Model factory for tests/test_validation_repair.py (importable by the CLI subprocess as tests.outlier_model)."""

from torch import nn


def outlier_mlp() -> nn.Module:
    """Linear-ReLU-Linear-ReLU-Linear on the 64 digits features (the outlier goes into its weights)."""
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
