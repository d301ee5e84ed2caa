"""Training FLOPs of a model with an activation-checkpointed block (docs/conventions.md)."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import archstat


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(64, 256)
        self.block = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = checkpoint(self.block, x, use_reentrant=False)
        return self.head(x)


totals = archstat.analyze(Net(), input_shape=(64,), batch=32, train=True).totals
print(f"forward {totals['flops']}, backward input {totals['backward_input_flops']}, "
      f"backward weight {totals['backward_weight_flops']}, "
      f"recompute {totals['recompute_flops']}")
