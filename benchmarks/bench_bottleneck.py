"""Wall time of ``archstat.bottlenecks`` per model and level, against ``archstat.analyze``
alone (the trace it starts from). Best of ``--repeat`` runs, after one warm-up run.

    PYTHONPATH=. python benchmarks/bench_bottleneck.py [--repeat 3] [MODEL ...]

Prints a Markdown table; nothing is asserted (timings belong in reports, not in tests).
(Not named bottleneck.py: run as a script, that would shadow pandas's optional
``bottleneck`` accelerator.)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import archstat


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    fn()  # warm-up: imports, torch's lazy initialisation
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["googlenet", "resnet50", "resnet152"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    levels = ("pair", "module", "network", "all")
    print("| model | analyze | " + " | ".join(f"bottleneck --level {lv}" for lv in levels) + " |")
    print("|---|---:|" + "---:|" * len(levels))
    for model in args.models:
        cells = [best_of(args.repeat, lambda m=model: archstat.analyze(m))]
        cells += [best_of(args.repeat, lambda m=model, lv=lv: archstat.bottleneck(m, level=lv))
                  for lv in levels]
        print(f"| {model} | " + " | ".join(f"{t:.3f} s" for t in cells) + " |")


if __name__ == "__main__":
    main()
