"""LeNet-5 (LeCun et al. 1998) as modern reproductions build it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import no_imagenet_figure, register_model

LENET_PAPER = "LeCun et al. 1998, Proc. IEEE 86(11), Section II.B and Figure 2"


class LeNet5(nn.Module):
    """C1-S2-C3-S4-C5-F6-output on a 32x32 grey image.

    Known deviations from the paper, shared by most modern reproductions:
    - C3 is fully connected to S2's 6 maps (2,416 params) instead of the paper's partial
      connection table (Table I, 1,516 params), which existed to break symmetry and save
      compute in 1998.
    - S2 and S4 are plain 2x2 average pools; the paper's subsampling units also had a
      trainable coefficient and bias per map (12 and 32 params) and a sigmoid.
    - tanh replaces the paper's scaled tanh 1.7159 tanh(2a/3); the output layer is a
      linear layer instead of Euclidean RBF units (which had 840 fixed params, no bias).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5),  # C1
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S2
            nn.Conv2d(6, 16, kernel_size=5),  # C3
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S4
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5: a 5x5 conv on a 5x5 map is a linear layer
            nn.Tanh(),
            nn.Linear(120, 84),  # F6
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 1 x 32 x 32
        x = self.features(x)
        # N x 16 x 5 x 5
        x = torch.flatten(x, 1)
        # N x 400
        x = self.classifier(x)
        # N x num_classes
        return x


@register_model(
    family="lenet",
    input_shape=(1, 32, 32),
    source=LENET_PAPER,
    # The paper's "60,000 trainable parameters" = C1 156 + S2 12 + C3 1,516 + S4 32
    # + C5 48,120 + F6 10,164; ours differ by C3 (+900), S2/S4 (-44) and the output (+850).
    reference={"params": 61_706, "paper_params": 60_000,
               "imagenet": no_imagenet_figure("a 32x32 digit classifier for MNIST, never "
                                              "evaluated on ImageNet")},
)
def lenet5(**config: Any) -> LeNet5:
    return LeNet5(**config)
