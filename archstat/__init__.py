"""archstat: exact, fast per-layer memory, parameter and FLOP analysis of neural networks.

    >>> import archstat
    >>> result = archstat.analyze("vgg16")            # traced on the meta device
    >>> result.totals["flops"]                          # multiply-accumulates (macs)
    15470264320

The heavy modules (torch, pandas) load on first use of an attribute below, so that
``import archstat`` and ``archstat --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from archstat._version import __version__
from archstat.errors import ArchstatError

_LAZY = {
    "analyze": "archstat.analysis",
    "assert_within_budget": "archstat.budget.checks",
    "Analysis": "archstat.analysis",
    "bottleneck": "archstat.bottlenecks",
    "BottleneckReport": "archstat.bottlenecks",
    "CONVENTIONS": "archstat.conventions",
    "crosscheck": "archstat.peers",
    "Convention": "archstat.conventions",
    "estimate_memory": "archstat.memory",
    "MemoryReport": "archstat.memory",
    "get_model": "archstat.zoo",
    "list_models": "archstat.zoo",
}

__all__ = ["ArchstatError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'archstat' has no attribute {name!r}")
