"""The model registry: a name -> builder table shared by the CLI and the API.

Adding a model is one decorated builder function in the family's module:

    @register_model(family="vgg", input_shape=(3, 224, 224), source=VGG_PAPER,
                    reference={"params": 138_357_544})
    def vgg16(**config) -> VGG: ...

The reference figures (published parameter totals, paper FLOPs, ImageNet accuracy under
``reference["imagenet"]``) live next to the builder as data, and the tests read them from
here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from torch import nn

from archstat.errors import ArchstatError, did_you_mean


@dataclass(frozen=True)
class ModelInfo:
    """One zoo entry.

    ``input_shape`` is the default input without the batch dimension (C, H, W).
    ``reference`` holds published figures, e.g. ``{"params": 61_100_840}``, and under
    ``"imagenet"`` its :class:`ImageNetAccuracy`.
    """

    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_shape: tuple[int, ...]
    source: str
    reference: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageNetAccuracy:
    """A zoo entry's published ImageNet-1k accuracy (ILSVRC-2012 validation set), in percent.

    ``top1``/``top5``: images whose label is the first / among the first five predictions
    (None where the source prints none). ``source``: where the figures are printed (paper
    and table, or torchvision weights). ``evaluation``: how they were measured, as the
    source states it. ``crops``: test crops per image (1: single crop; None: not stated).
    ``published_as``: ``"error"`` where the source prints error rates (entered with
    :func:`imagenet_error`, stored as 100 - error), else ``"accuracy"``. ``note``: a caveat,
    or why a model has no figure. Cited data only: never computed from a model.
    """

    top1: float | None
    top5: float | None
    source: str = ""
    evaluation: str = ""
    crops: int | None = 1
    published_as: str = "accuracy"
    note: str = ""


def imagenet_error(top1_error: float | None, top5_error: float | None, *, source: str,
                   evaluation: str, crops: int | None = 1, note: str = "") -> ImageNetAccuracy:
    """Figures a source prints as error rates (percent), stored as accuracy: 100 - error,
    exact to the printed digits (23.29 -> 76.71)."""

    def accuracy(error: float | None) -> float | None:
        return None if error is None else float(Decimal(100) - Decimal(repr(error)))

    return ImageNetAccuracy(accuracy(top1_error), accuracy(top5_error), source, evaluation,
                            crops, "error", note)


#: How torchvision evaluates its classification weights (``ImageClassification`` with its
#: defaults, the crop and resize of the weights' ``transforms``).
TORCHVISION_EVALUATION = ("single centre crop {crop}x{crop} after resizing the shorter side "
                          "to {resize}")


def torchvision_metrics(weights: str, acc1: float, acc5: float, crop: int = 224,
                        resize: int = 256, note: str = "") -> ImageNetAccuracy:
    """torchvision's documented metrics of ``weights`` (``meta["_metrics"]["ImageNet-1K"]``:
    ``acc@1``, ``acc@5``), evaluated as its transforms say."""
    return ImageNetAccuracy(acc1, acc5, f"torchvision {weights} (documented acc@1, acc@5)",
                            TORCHVISION_EVALUATION.format(crop=crop, resize=resize), note=note)


def no_imagenet_figure(reason: str) -> ImageNetAccuracy:
    """An entry with no published ImageNet accuracy, and why: left out of accuracy plots."""
    return ImageNetAccuracy(None, None, crops=None, note=reason)


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    input_shape: tuple[int, ...],
    source: str,
    reference: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated builder under its function name; duplicates are refused."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelInfo(
            name=name,
            builder=builder,
            family=family,
            input_shape=tuple(input_shape),
            source=source,
            reference=MappingProxyType(dict(reference or {})),
        )
        return builder

    return wrap


def list_models(family: str | None = None) -> list[str]:
    """Registered model names in registration order, optionally of one family."""
    return [n for n, info in _MODELS.items() if family is None or info.family == family]


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; raises ArchstatError with suggestions if unknown."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ArchstatError(
            f"unknown model {name!r}{did_you_mean(name, _MODELS)}; `archstat zoo` lists them"
        ) from None


def get_model(name: str, **config: Any) -> nn.Module:
    """Build the zoo model ``name``; ``config`` goes to its builder (e.g. ``aux=True``)."""
    return get_model_info(name).builder(**config)
