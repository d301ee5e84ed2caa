"""torchvision, timm and transformers models (zoos.py) against the oracles: the model's
parameter count and the parameters its forward reads, FlopCounterMode (convention
``flops``) and fvcore (convention ``fvcore``), in total and per top-level module; and
every op reached is one archstat knows.

Memory (allocator-level measurements on a subset of these models, issue 10 section 4)
is not checked here yet.
"""

from __future__ import annotations

import pytest
import timm

from .corpus import check_flops, check_fvcore, check_ops_known, check_params, measure, parametrize
from .timm_sample import SAMPLE
from .zoos import timm_cases, torchvision_cases, transformers_cases

pytestmark = pytest.mark.realworld

CASES = parametrize([*torchvision_cases(), *timm_cases(), *transformers_cases()])


@pytest.mark.parametrize("case", CASES)
def test_params(case) -> None:
    check_params(measure(case))


@pytest.mark.parametrize("case", CASES)
def test_flops_equal_flop_counter_mode(case) -> None:
    check_flops(measure(case), case)


@pytest.mark.parametrize("case", CASES)
def test_fvcore_convention_equals_fvcore(case) -> None:
    check_fvcore(measure(case), case)


@pytest.mark.parametrize("case", CASES)
def test_every_op_is_counted_or_declared(case) -> None:
    check_ops_known(measure(case))


def test_timm_sample_covers_every_family() -> None:
    sampled = {name for name, _, _ in SAMPLE}
    missing = [family for family in sorted(timm.list_modules())
               if not sampled & set(timm.list_models(module=family))]
    assert missing == []
    assert len(sampled) == len(SAMPLE) >= 150
