"""Wall time of the table styles, comparisons, reports and plots against
``archstat.analyze`` alone (the trace they all start from). Best of ``--repeat`` runs,
after one warm-up run.

    PYTHONPATH=. python benchmarks/bench_tables.py [--repeat 3] [MODEL ...]

Prints Markdown tables; nothing is asserted (timings belong in reports, not in tests).
"""

from __future__ import annotations

import argparse
import tempfile

from bench_bottleneck import best_of  # beside this script: best of n after a warm-up

import archstat
from archstat.compare import compare_models
from archstat.compute_layers import compute_layers
from archstat.lecture import lecture_table
from archstat.paper import paper_table
from archstat.render.plot import plot_models
from archstat.render.reports import write_reports


def per_model(models: list[str], repeat: int) -> None:
    print("| model | analyze | compute_layers | --style lecture | --style paper |")
    print("|---|---:|---:|---:|---:|")
    for model in models:
        lecture = archstat.analyze(model, convention="lecture")
        macs = archstat.analyze(model)
        cells = [
            best_of(repeat, lambda m=model: archstat.analyze(m)),
            best_of(repeat, lambda a=lecture: compute_layers(a)),
            best_of(repeat, lambda a=lecture: lecture_table(a)),
        ]
        try:
            cells.append(best_of(repeat, lambda a=macs: paper_table(a)))
        except archstat.ArchstatError:
            cells.append(None)
        print(f"| {model} | " + " | ".join("-" if t is None else f"{t * 1000:.1f} ms"
                                            for t in cells) + " |")


def commands(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            "compare googlenet vgg16": lambda: compare_models(["googlenet", "vgg16"]),
            "compare googlenet vgg16 --until-resolution 28":
                lambda: compare_models(["googlenet", "vgg16"], until_resolution=28),
            "report (21 files)": lambda: write_reports(tmp),
            "plot alexnet vgg16 (png, 1600x900)": lambda: plot_models(["alexnet", "vgg16"]),
        }
        print("\n| library call behind | time |")
        print("|---|---:|")
        for name, job in jobs.items():
            print(f"| {name} | {best_of(repeat, job):.3f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*",
                        default=["alexnet", "vgg16", "googlenet", "resnet50", "resnet152"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_model(args.models, args.repeat)
    commands(args.repeat)


if __name__ == "__main__":
    main()
