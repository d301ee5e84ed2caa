"""The model registry: a name -> builder table shared by the CLI and the API.

Adding a model is one decorated builder function in the family's module:

    @register_model(family="vgg", input_shape=(3, 224, 224), source=VGG_PAPER,
                    reference={"params": 138_357_544})
    def vgg16(**config) -> VGG: ...

The reference figures (published parameter totals, paper FLOPs) live next to the builder
as data, and the tests read them from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from archstat.errors import ArchstatError, did_you_mean


@dataclass(frozen=True)
class ModelInfo:
    """One zoo entry.

    ``input_shape`` is the default input without the batch dimension (C, H, W).
    ``reference`` holds published figures, e.g. ``{"params": 61_100_840}``.
    """

    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_shape: tuple[int, ...]
    source: str
    reference: Mapping[str, Any] = field(default_factory=dict)


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
