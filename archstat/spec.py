"""Turn what a user names into a model: a zoo name, ``package.module:callable``,
``torchvision:NAME`` or ``timm:NAME``, or an ``nn.Module`` they already have.

Models named by string are built under ``torch.device("meta")``, so no weight is ever
allocated; a builder that cannot run on meta (it loads a checkpoint, say) is built
normally instead and still traced on meta.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.tracer import fast_meta_build
from archstat.zoo import get_model_info

#: Input shape (without batch) assumed for a model that is not in the zoo.
DEFAULT_INPUT_SHAPE = (3, 224, 224)


@dataclass(frozen=True)
class ResolvedModel:
    module: nn.Module
    label: str  # the name to show: zoo name, spec string or class name
    input_shape: tuple[int, ...]  # default input without batch
    from_zoo: bool = False


def _build_on(builder: Callable[[], Any], what: str, device: str = "meta") -> nn.Module:
    try:
        with fast_meta_build() if device == "meta" else torch.device(device):
            model = builder()
    except ArchstatError:
        raise
    except Exception:
        try:
            model = builder()
            if isinstance(model, nn.Module) and device != "meta":
                model = model.to(device)
        except Exception as exc:
            raise ArchstatError(f"building {what} failed: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ArchstatError(f"{what} returned {type(model).__name__}, not a torch nn.Module")
    return model


def _import_attr(spec: str) -> Callable[[], Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ArchstatError(
            f"cannot import {module_name!r} for model spec {spec!r}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ArchstatError(f"module {module_name!r} has no attribute {attr!r} (spec {spec!r})")
        target = getattr(target, part)
    if isinstance(target, nn.Module):
        return lambda: target
    if not callable(target):
        raise ArchstatError(f"{spec!r} is neither an nn.Module nor callable")
    return target


def _hub_builder(package: str, name: str) -> Callable[[], Any]:
    try:
        if package == "torchvision":
            from torchvision import models as hub  # type: ignore[import-not-found]

            return lambda: hub.get_model(name, weights=None)
        import timm  # type: ignore[import-not-found]

        return lambda: timm.create_model(name, pretrained=False)
    except Exception as exc:
        raise ArchstatError(
            f"model spec '{package}:{name}' needs the {package} package, which cannot be "
            f"imported here ({type(exc).__name__})"
        ) from None


def resolve_model(model: str | nn.Module, *, device: str = "meta", **config: Any) -> ResolvedModel:
    """Resolve a model argument. ``config`` goes to a zoo builder (e.g. ``aux=True``).

    Models named by string are built on ``device``: ``meta`` (the default: nothing is
    allocated) for analysis, a real device for benchmarking (real, randomly initialised
    weights). An ``nn.Module`` is passed through as it is.
    """
    if isinstance(model, nn.Module):
        return ResolvedModel(model, type(model).__name__, DEFAULT_INPUT_SHAPE)
    if not isinstance(model, str) or not model.strip():
        raise ArchstatError(f"a model is a zoo name, a spec string or an nn.Module, not {model!r}")
    spec = model.strip()
    package, sep, name = spec.partition(":")
    if not sep:
        info = get_model_info(spec)
        module = _build_on(lambda: info.builder(**config), spec, device)
        return ResolvedModel(module, spec, info.input_shape, from_zoo=True)
    if not package or not name:
        raise ArchstatError(f"malformed model spec {spec!r}; expected package.module:callable")
    if package in ("torchvision", "timm"):
        builder = _hub_builder(package, name)
    else:
        builder = _import_attr(spec)
    return ResolvedModel(_build_on(builder, spec, device), spec, DEFAULT_INPUT_SHAPE)


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``3x224x224`` (also ``3,224,224``) into a tuple of positive ints."""
    parts = text.replace(",", "x").replace("X", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ArchstatError(
            f"malformed input shape {text!r}; expected dimensions joined by x, e.g. 3x224x224"
        ) from None
    if not shape or any(d <= 0 for d in shape):
        raise ArchstatError(f"input shape {text!r} must have positive dimensions")
    return shape
