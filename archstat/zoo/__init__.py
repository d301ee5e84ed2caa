"""archstat's model zoo: AlexNet, VGG, GoogLeNet, ResNet, DenseNet, SE-ResNet,
EfficientNet, deformable ResNet (and small classics), each faithful to its paper or to the
torchvision layout it names. Importing this package registers every model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archstat.display import Display
from archstat.zoo import (  # noqa: F401  (registers)
    alexnet,
    deformable,
    densenet,
    efficientnet,
    googlenet,
    lenet,
    resnet,
    senet,
    vgg,
)
from archstat.zoo.registry import ModelInfo, get_model, get_model_info, list_models, register_model

__all__ = ["ModelInfo", "ZooListing", "get_model", "get_model_info", "list_models",
           "register_model", "zoo_listing"]


@dataclass
class ZooListing(Display):
    """One row per zoo model: ``model``, ``family``, ``input`` (its default, CxHxW),
    ``params`` its forward reads (as ``analyze`` counts them), ``params_unused`` (built
    but never read: GoogLeNet's auxiliary heads), ``source``."""

    rows: list[dict[str, Any]] = field(default_factory=list)


def zoo_listing() -> ZooListing:
    """Every zoo model, each analysed at its default input (see :class:`ZooListing`)."""
    from archstat.analysis import analyze

    rows = []
    for name in list_models():
        info = get_model_info(name)
        totals = analyze(name).totals
        rows.append({"model": name, "family": info.family,
                     "input": "x".join(map(str, info.input_shape)),
                     "params": totals["params"], "params_unused": totals["params_unused"],
                     "source": info.source})
    return ZooListing(rows)
