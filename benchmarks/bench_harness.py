"""Check archstat's benchmark harness against ``torch.utils.benchmark.Timer``.

For each model and batch size, the same zoo model (seed-0 random weights, eval mode,
one fixed random input, ``torch.inference_mode``) is timed twice on the CPU with the
same thread count: by ``archstat.bench.benchmark`` (median of per-iteration
``perf_counter_ns`` latencies after its warm-up) and by
``Timer.blocked_autorange`` (torch's own median over blocks of calls). The medians
should agree within ``--tolerance`` (10%); the script prints a Markdown table with the
run's metadata, writes it to ``--out`` when given, and exits 1 if any pair disagrees.

The machine may be shared, and its load changes from minute to minute, so each point is
measured ``--repeats`` times as back-to-back pairs (Timer, then archstat); every run is
printed, and the point's difference is the median over pairs of archstat / Timer - 1,
so that a burst of load that hits one pair does not decide the result.

    python benchmarks/bench_harness.py --models googlenet,vgg16 --batch-sizes 1 --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.benchmark import Timer  # noqa: E402

from archstat.bench import benchmark  # noqa: E402
from archstat.zoo import get_model, get_model_info  # noqa: E402


def torch_timer_median_ms(name: str, batch: int, threads: int, min_time: float) -> float:
    torch.manual_seed(0)
    model = get_model(name).eval()
    x = torch.randn((batch, *get_model_info(name).input_shape),
                    generator=torch.Generator().manual_seed(0))
    timer = Timer(stmt="with torch.inference_mode():\n    model(x)",
                  globals={"model": model, "x": x, "torch": torch}, num_threads=threads)
    timer.timeit(3)  # the same kind of warm-up the harness does before measuring
    return timer.blocked_autorange(min_run_time=min_time).median * 1e3


def harness_median_ms(name: str, batch: int, threads: int, min_time: float) -> float:
    report = benchmark([name], device="cpu", batch_sizes=[batch], threads=threads,
                       min_time=min_time)
    return float(report.results.loc[0, "median_ms"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="googlenet,vgg16")
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    lines = [
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
        f"{os.getloadavg()[0]:.2f} at start, {os.cpu_count()} CPUs; "
        f"torch {torch.__version__}, CPU, {args.threads} threads, min time "
        f"{args.min_time} s per timing, {args.repeats} alternating repeats, float32",
        "",
        "| model | batch | archstat median ms, per run | Timer median ms, per run | "
        "difference (median of pairs) | within tolerance |",
        "|---|---:|---|---|---:|---|",
    ]
    failed = 0
    for name in args.models.split(","):
        for batch in map(int, args.batch_sizes.split(",")):
            ours, theirs = [], []
            for _ in range(args.repeats):
                theirs.append(torch_timer_median_ms(name, batch, args.threads, args.min_time))
                ours.append(harness_median_ms(name, batch, args.threads, args.min_time))
            diff = statistics.median(a / b - 1 for a, b in zip(ours, theirs, strict=True))
            ok = abs(diff) <= args.tolerance
            failed += not ok
            runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
            lines.append(f"| {name} | {batch} | {runs(ours)} | {runs(theirs)} | "
                         f"{diff:+.1%} | {'yes' if ok else 'NO'} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
