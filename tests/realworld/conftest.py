"""The real-world corpus (issue 10): torchvision, timm and transformers models and our
own blocks, each against independent oracles (see oracles.py).

test_corpus.py, test_zoo_references.py and test_training_corpus.py import torchvision,
timm and transformers, which only the corpus stage of .ci/run installs (torchvision does
not import beside the main suite's torch 2.13 CPU wheel). They are collected only when
the run selects the marker:

    python -m pytest tests/realworld -m realworld

test_blocks.py needs torch alone and runs in both stages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_NEEDS_THE_ZOOS = ("test_corpus.py", "test_zoo_references.py", "test_training_corpus.py")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in _NEEDS_THE_ZOOS and "realworld" not in config.option.markexpr:
        return True
    return None
