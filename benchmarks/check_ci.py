"""How long the CI commands take: `archstat check` on the repo's archstat.toml (every zoo
model), a snapshot of the zoo, a diff of the zoo against it, and the layer alignment
alone on ResNet-152 with a block inserted.

    python benchmarks/check_ci.py [--repeat 3]

Prints the best of --repeat wall-clock times, in seconds; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's archstat, installed or not

from bench_bottleneck import best_of  # noqa: E402  (beside this script; best of n after a warm-up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat

    import archstat
    from archstat.budget.checks import run_checks
    from archstat.render.table import to_json
    from archstat.snapshots import align_layers, diff, snapshot
    from archstat.zoo import list_models

    archstat.analyze("lenet5")  # warm-up: imports and first-trace costs
    models = list_models()
    report = run_checks(REPO / "archstat.toml")
    print(f"check archstat.toml ({len(report.results)} limits, {len(models)} models): "
          f"{best_of(repeat, lambda: run_checks(REPO / 'archstat.toml')):.2f} s")
    print(f"snapshot of the zoo: {best_of(repeat, lambda: snapshot(models)):.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "zoo.json"
        baseline.write_text(to_json(snapshot(models)))
        print(f"diff of the zoo against it: {best_of(repeat, lambda: diff(baseline)):.2f} s")
    layers = archstat.analyze("resnet152").data()["layers"]
    grown = layers[:200] + [dict(layers[200], name="inserted")] + layers[200:]
    changes, unchanged = align_layers(layers, grown)
    assert len(changes) == 1 and unchanged == len(layers)
    print(f"align {len(layers)} resnet152 layers with one inserted: "
          f"{best_of(repeat, lambda: align_layers(layers, grown)) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
