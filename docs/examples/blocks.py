"""Small models the documentation runs from this folder, as ``blocks:NAME``:

    cd docs/examples && archstat analyze blocks:tagger --input 12:int64
"""

import torch
from torch import nn


class Tagger(nn.Module):
    """Token ids in, one tag per token out; an optional mask scales the embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(ids)
        if mask is not None:
            x = x * mask.unsqueeze(-1)
        return self.head(x)


class KeepPositive(nn.Module):
    """A forward whose output's shape depends on values: it keeps the positive outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y[y > 0]


class Whiten(nn.Module):
    """A linear layer, then singular values: work no convention has a formula for."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svdvals(self.fc(x))


def tagger() -> nn.Module:
    return Tagger()


def keep_positive() -> nn.Module:
    return KeepPositive()


def whiten() -> nn.Module:
    return Whiten()


def encoder() -> nn.Module:
    return nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128,
                                      batch_first=True)


def small_net() -> nn.Module:
    """A small CNN for 3x32x32 images (the snapshot/diff example in docs/ci.md)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 16 * 16, 10),
    )
