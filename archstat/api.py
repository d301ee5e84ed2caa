"""Small library functions behind CLI commands that are not analyses themselves."""

from __future__ import annotations

import pandas as pd

from archstat.zoo import get_model_info, list_models


def zoo_table() -> pd.DataFrame:
    """One row per zoo model: name, family, default input (CxHxW), parameter count of the
    model as built (on the meta device, so nothing is allocated), source."""
    from archstat.metakernels import fast_meta_build

    rows = []
    for name in list_models():
        info = get_model_info(name)
        with fast_meta_build():
            model = info.builder()
        rows.append({
            "model": name,
            "family": info.family,
            "input": "x".join(map(str, info.input_shape)),
            "params": sum(p.numel() for p in model.parameters()),
            "source": info.source,
        })
    return pd.DataFrame(rows, columns=["model", "family", "input", "params", "source"])
