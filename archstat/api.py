"""Small library functions behind CLI commands that are not analyses themselves."""

from __future__ import annotations

import pandas as pd

from archstat.zoo import get_model_info, list_models


def zoo_table() -> pd.DataFrame:
    """One row per zoo model: name, family, default input (CxHxW), parameters its forward
    pass reads (as ``analyze`` counts them) and those it never reads (GoogLeNet's
    auxiliary heads, built but not run by default), source."""
    from archstat.analysis import analyze

    rows = []
    for name in list_models():
        info = get_model_info(name)
        totals = analyze(name).totals
        rows.append({
            "model": name,
            "family": info.family,
            "input": "x".join(map(str, info.input_shape)),
            "params": totals["params"],
            "params_unused": totals["params_unused"],
            "source": info.source,
        })
    return pd.DataFrame(rows, columns=["model", "family", "input", "params", "params_unused",
                                       "source"])
