"""Our own attention, recurrent, U-Net and odd-I/O blocks (blocks.py) against the
oracles: the model's parameter count and the parameters its forward reads,
FlopCounterMode, fvcore. torch only: the main suite runs these too."""

from __future__ import annotations

import pytest

from .blocks import BLOCKS
from .corpus import check_flops, check_fvcore, check_ops_known, check_params, measure, parametrize

pytestmark = pytest.mark.realworld


@pytest.mark.parametrize("case", parametrize(BLOCKS))
def test_params(case) -> None:
    check_params(measure(case))


@pytest.mark.parametrize("case", parametrize(BLOCKS))
def test_flops_equal_flop_counter_mode(case) -> None:
    check_flops(measure(case), case)


@pytest.mark.parametrize("case", parametrize(BLOCKS))
def test_fvcore_convention_equals_fvcore(case) -> None:
    check_fvcore(measure(case), case)


@pytest.mark.parametrize("case", parametrize(BLOCKS))
def test_every_op_is_counted_or_declared(case) -> None:
    check_ops_known(measure(case))
