"""Check ``archstat predict`` against measurement: calibrate this machine, predict every
zoo model, and compare with ``archstat bench`` medians and ``bench --per-layer``.

For each model and batch size:

* ``predicted_ms``: :func:`archstat.predictor.predict` on the calibrated profile (or on
  ``--profile``: a profile file or a device of the table);
* ``measured_ms``: the median latency of :func:`archstat.bench.benchmark` on the same
  device, dtype and threads;
* ``ratio``: predicted / measured (the goal: within 0.8..1.25, "within 25%");
* ``rho``: the Spearman rank correlation, over the model's leaf layers, between the
  predicted time of each layer and its median time under ``bench --per-layer`` (layers
  called several times, such as a shared ReLU, are summed by name on both sides); the
  goal is rho >= 0.8.

Then, over every point, the time per layer type, predicted and measured (where the
model misses: LRN, depthwise convolutions, small 1x1s), and the shares of points within
25% and with rho >= 0.8. Timings come from a shared machine: run it when it is quiet.

    python benchmarks/predict_validation.py                      # every zoo model, 1 and 8
    python benchmarks/predict_validation.py --models lenet5,googlenet --batch-sizes 1 \\
        --iters 3 --quick                                         # a smoke run
    python benchmarks/predict_validation.py --device cuda --dtype bfloat16  # on a GPU
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from archstat.bench import benchmark  # noqa: E402
from archstat.bench.per_layer import OUTSIDE  # noqa: E402
from archstat.predictor import calibrate, device_profile  # noqa: E402
from archstat.zoo import list_models  # noqa: E402

GOAL_RATIO = (0.8, 1.25)
GOAL_RHO = 0.8


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho: the Pearson correlation of the ranks (ties averaged); None for
    fewer than 3 pairs or a constant side."""
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else None


def predicted_leaves(report: Any, trace: Any) -> dict[str, tuple[str, float]]:
    """Leaf layer name -> (type, predicted ms), summed over calls."""
    out: dict[str, tuple[str, float]] = {}
    for record, row in zip(trace.records, report.rows, strict=True):
        if record.leaf:
            kind, ms = out.get(row["name"], (row["type"], 0.0))
            out[row["name"]] = (kind, ms + row["predicted_ms"])
    return out


def measured_leaves(layers: Any) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for name, ms in zip(layers["name"], layers["time_ms"], strict=True):
        if name != OUTSIDE:
            out[name] += float(ms)
    return out


def measure_point(name: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """``archstat bench --per-layer`` of one model and batch: the plain median (ms) and
    each leaf layer's median (ms, summed by name)."""
    timing = {"iters": args.iters} if args.iters else {"min_time": args.min_time}
    bench = benchmark([name], device=args.device, batch_sizes=[batch], dtype=args.dtype,
                      threads=args.threads, per_layer=True, warmup=args.warmup, **timing)
    return {"model": name, "batch": batch,
            "measured_ms": float(bench.results.loc[0, "median_ms"]),
            "min_ms": float(bench.results.loc[0, "min_ms"]),
            "load": os.getloadavg()[0],
            "layers_ms": dict(measured_leaves(bench.per_layer[0]["layers"]))}


def predict_point(measured: dict[str, Any], profile: Any, dtype: str
                  ) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The prediction of one measured point, its ratio and its rho."""
    from archstat.analysis import analyze
    from archstat.predictor import predict_analysis

    name, batch = measured["model"], measured["batch"]
    analysis = analyze(name, batch=batch, convention="full", dtype=dtype)
    report = predict_analysis(analysis, profile)
    predicted = report.totals["predicted_ms"]
    mine = predicted_leaves(report, analysis.trace)
    timed = measured["layers_ms"]
    names = [n for n in mine if n in timed]
    rho = spearman([mine[n][1] for n in names], [timed[n] for n in names])
    by_type: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for n in names:
        by_type[mine[n][0]][0] += mine[n][1]
        by_type[mine[n][0]][1] += timed[n]
    row = {"model": name, "batch": batch, "predicted_ms": predicted,
           "measured_ms": measured["measured_ms"],
           "ratio": predicted / measured["measured_ms"], "rho": rho, "layers": len(names),
           "min_ms": measured.get("min_ms"), "load": measured.get("load"),
           "ratio_min": predicted / measured["min_ms"] if measured.get("min_ms") else None,
           "shares": {b: report.totals[f"{b}_share"] for b in ("compute", "memory", "overhead")}}
    return row, dict(by_type)


def fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def measure_all(models: list[str], batches: list[int], skip: set[tuple[str, int]],
                args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every point not skipped (nor already in ``--measured``), appending each to
    the ``--measured`` JSON-lines file as it completes, so that a run cut short by its
    timeout keeps what it measured."""
    done: list[dict[str, Any]] = []
    if args.measured and args.measured.exists():
        done = [json.loads(line) for line in args.measured.read_text().splitlines() if line]
    have = {(m["model"], m["batch"]) for m in done}
    for batch in batches:  # every model at the first batch size first
        for name in models:
            if (name, batch) in skip or (name, batch) in have or args.no_measure:
                continue
            try:
                measured = measure_point(name, batch, args)
            except Exception as exc:  # a model that fails is reported, the rest go on
                print(f"{name} batch {batch}: failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                continue
            print(f"measured {name} batch {batch}: {measured['measured_ms']:.4g} ms",
                  file=sys.stderr, flush=True)
            done.append(measured)
            if args.measured:
                with args.measured.open("a") as f:
                    f.write(json.dumps(measured) + "\n")
    order = {(m, b): i for i, (m, b) in enumerate((m, b) for m in models for b in batches)}
    return sorted((m for m in done if (m["model"], m["batch"]) in order),
                  key=lambda m: order[(m["model"], m["batch"])])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma-separated, or all (the zoo)")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--skip", default="", help="comma-separated MODEL:BATCH points "
                        "not to measure (too slow for the machine)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=3, help="bench's --warmup")
    parser.add_argument("--iters", type=int, default=None, help="measured calls per point")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per point")
    parser.add_argument("--profile", default=None, help="a profile file or a table device "
                        "instead of calibrating")
    parser.add_argument("--profile-out", type=Path, default=None,
                        help="write the calibrated profile here")
    parser.add_argument("--quick", action="store_true", help="a quick calibration")
    parser.add_argument("--measured", type=Path, default=None, help="JSON lines of "
                        "measurements: points in it are not measured again, new ones are "
                        "appended")
    parser.add_argument("--no-measure", action="store_true", help="predict only the "
                        "points already in --measured")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here")
    parser.add_argument("--csv", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()

    models = list_models() if args.models == "all" else args.models.split(",")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    skip = {(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1]))
            for p in args.skip.split(",") if p}
    if args.profile:
        profile = device_profile(args.profile)
    else:
        profile = calibrate(args.device, dtypes=[args.dtype], threads=args.threads,
                            quick=args.quick)
        if args.profile_out:
            args.profile_out.write_text(json.dumps(profile.data(), indent=2, default=str)
                                        + "\n")
    measured = measure_all(models, batches, skip, args)
    peaks = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in profile.data().items()
             if k not in ("details", "source")}
    lines = [f"# predict vs bench: {profile.name}, {args.dtype}, {args.threads} threads",
             "", f"{datetime.date.today().isoformat()}, torch {torch.__version__}; profile: "
             f"{json.dumps(peaks)}", "",
             "| model | batch | predicted ms | measured ms (median) | ratio | min ms | "
             "ratio to min | rho | layers | compute / memory / overhead | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    rows = []
    types: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for m in measured:
        row, by_type = predict_point(m, profile, args.dtype)
        rows.append(row)
        for kind, (p, t) in by_type.items():
            types[kind][0] += p
            types[kind][1] += t
        shares = " / ".join(f"{row['shares'][b]:.0%}" for b in ("compute", "memory", "overhead"))
        lines.append(f"| {row['model']} | {row['batch']} | {row['predicted_ms']:.4g} | "
                     f"{row['measured_ms']:.4g} | {row['ratio']:.2f} | "
                     f"{fmt(row['min_ms'], '.4g')} | {fmt(row['ratio_min'], '.2f')} | "
                     f"{fmt(row['rho'], '.2f')} | {row['layers']} | {shares} | "
                     f"{fmt(row['load'], '.1f')} |")
    within = [r for r in rows if GOAL_RATIO[0] <= r["ratio"] <= GOAL_RATIO[1]]
    rhos = sorted(r["rho"] for r in rows if r["rho"] is not None)
    good_rho = [r for r in rhos if r >= GOAL_RHO]
    summary = [""]
    if rows:
        summary += [f"points within 25%: {len(within)}/{len(rows)} "
                    f"({len(within) / len(rows):.0%}); median ratio "
                    f"{sorted(r['ratio'] for r in rows)[len(rows) // 2]:.2f}"]
    mins = [r for r in rows if r["ratio_min"] is not None]
    if mins:
        near = [r for r in mins if GOAL_RATIO[0] <= r["ratio_min"] <= GOAL_RATIO[1]]
        summary += [f"against the fastest call (min): {len(near)}/{len(mins)} within 25% "
                    f"({len(near) / len(mins):.0%}); median ratio "
                    f"{sorted(r['ratio_min'] for r in mins)[len(mins) // 2]:.2f}"]
    if rhos:
        summary += [f"rho >= {GOAL_RHO}: {len(good_rho)}/{len(rhos)}; median rho "
                    f"{rhos[len(rhos) // 2]:.2f}"]
    summary += ["", "| layer type | predicted ms | measured ms | ratio |",
                "|---|---:|---:|---:|"]
    for kind, (p, t) in sorted(types.items(), key=lambda kv: -kv[1][1]):
        summary.append(f"| {kind} | {p:.4g} | {t:.4g} | {p / t if t else float('nan'):.2f} |")
    lines += summary
    print("\n".join(lines), flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "batch", "predicted_ms", "measured_ms", "ratio", "min_ms",
                             "ratio_min", "rho", "layers", "compute_share", "memory_share",
                             "overhead_share", "load"])
            for r in rows:
                writer.writerow([r["model"], r["batch"], f"{r['predicted_ms']:.6g}",
                                 f"{r['measured_ms']:.6g}", f"{r['ratio']:.4f}",
                                 fmt(r["min_ms"], ".6g"), fmt(r["ratio_min"], ".4f"),
                                 fmt(r["rho"], ".4f"), r["layers"],
                                 *(f"{r['shares'][b]:.4f}"
                                   for b in ("compute", "memory", "overhead")),
                                 fmt(r["load"], ".2f")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
