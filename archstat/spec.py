"""Turn what a user names into a model: a zoo name, ``package.module:callable``,
``torchvision:NAME`` or ``timm:NAME``, or an ``nn.Module`` they already have.

Models named by string are built under ``torch.device("meta")``, so no weight is ever
allocated; a builder that cannot run on meta (it loads a checkpoint, say) is built
normally instead and still traced on meta. ``package.module`` is imported as ``python -m``
would: the current directory comes first on the import path. Keyword options (``config``)
go to the builder: the zoo's, the imported callable, torchvision's ``get_model`` or timm's
``create_model``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError, did_you_mean
from archstat.inputs import parse_shape  # noqa: F401  (re-exported: spec strings and shapes)
from archstat.trace.tracer import fast_meta_build
from archstat.zoo import get_model_info

#: Input shape (without batch) assumed for a model that is not in the zoo.
DEFAULT_INPUT_SHAPE = (3, 224, 224)


@dataclass(frozen=True)
class ResolvedModel:
    """``build(device)`` builds the model again (``None`` for a module the caller passed):
    on ``cpu`` with real weights, seeded, for a run that needs real values."""

    module: nn.Module
    label: str  # the name to show: zoo name, spec string or class name
    input_shape: tuple[int, ...]  # default input without batch
    from_zoo: bool = False
    build: Callable[[str], nn.Module] | None = None


#: The seed of the weights a model built on the CPU gets (archstat runs are reproducible).
SEED = 0


def _build_on(builder: Callable[[], Any], what: str, device: str = "meta") -> nn.Module:
    if device != "meta":
        torch.manual_seed(SEED)
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


def _import_attr(spec: str, config: dict[str, Any]) -> Callable[[], Any]:
    module_name, _, attr = spec.partition(":")
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)  # as ``python -m`` would
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
        if config:
            raise ArchstatError(f"{spec!r} is a module instance: it takes no options "
                                f"({', '.join(config)})")
        return lambda: target
    if not callable(target):
        raise ArchstatError(f"{spec!r} is neither an nn.Module nor callable")
    return lambda: target(**config)


def _hub_builder(package: str, name: str, config: dict[str, Any]) -> Callable[[], Any]:
    try:
        if package == "torchvision":
            from torchvision import models as hub  # type: ignore[import-not-found]

            def build() -> Any:
                # Detection and segmentation builders take a backbone's weights too; never
                # download either (archstat needs no weight values).
                options = {"weights": None, **config}
                if "weights_backbone" in inspect.signature(
                        hub.get_model_builder(name)).parameters:
                    options.setdefault("weights_backbone", None)
                return hub.get_model(name, **options)

            return build
        import timm  # type: ignore[import-not-found]

        return lambda: timm.create_model(name, pretrained=False, **config)
    except Exception as exc:
        raise ArchstatError(
            f"model spec '{package}:{name}' needs the {package} package, which cannot be "
            f"imported here ({type(exc).__name__})"
        ) from None


def resolve_model(model: str | nn.Module, *, device: str = "meta", **config: Any) -> ResolvedModel:
    """Resolve a model argument. ``config`` goes to the builder (e.g. ``aux=True`` for the
    zoo's googlenet, ``num_classes=10`` for a torchvision model).

    Models named by string are built on ``device``: ``meta`` (the default: nothing is
    allocated) for analysis, a real device for benchmarking (real, randomly initialised
    weights, seeded). An ``nn.Module`` is passed through as it is.
    """
    if isinstance(model, nn.Module):
        if config:
            raise ArchstatError(f"unexpected option(s) {', '.join(map(repr, config))} for an "
                                f"nn.Module{did_you_mean(next(iter(config)), _OPTION_NAMES)}; "
                                "options go to a zoo or spec model's builder")
        return ResolvedModel(model, type(model).__name__, DEFAULT_INPUT_SHAPE)
    if not isinstance(model, str) or not model.strip():
        raise ArchstatError(f"a model is a zoo name, a spec string or an nn.Module, not {model!r}")
    spec = model.strip()
    package, sep, name = spec.partition(":")
    if not sep:
        info = get_model_info(spec)
        builder: Callable[[], Any] = lambda: info.builder(**config)  # noqa: E731
        label, shape, zoo = spec, info.input_shape, True
    elif not package or not name:
        raise ArchstatError(f"malformed model spec {spec!r}; expected package.module:callable")
    else:
        builder = (_hub_builder(package, name, config) if package in ("torchvision", "timm")
                   else _import_attr(spec, config))
        label, shape, zoo = spec, DEFAULT_INPUT_SHAPE, False
    return ResolvedModel(_build_on(builder, spec, device), label, shape, zoo,
                         lambda where: _build_on(builder, spec, where))


#: Keyword arguments of the analysis functions, for did-you-mean on a misspelt one that
#: would otherwise be taken for a builder option.
_OPTION_NAMES = ("input_shape", "batch", "convention", "dtype", "depth", "inputs", "train",
                 "execute", "level", "optimizer", "fit")
