"""How fast and how lean is archstat's analysis, next to the peer tools, in one run.

Each measurement runs in a fresh subprocess, so that its peak RSS is its own:

* in-process analysis time (median of several runs, after one warm-up analysis of
  another model, so imports and first-dispatch costs are excluded) and peak RSS, for
  archstat, fvcore's FlopCountAnalysis and, where installed, ptflops, thop and torchinfo,
  on vgg16 and resnet152 at 224x224 and 1024x1024 (archstat also at 2048x2048);
* whole-process wall time of ``archstat analyze resnet152 --input 3x1024x1024`` against a
  script that builds the same model and counts it with fvcore; ``archstat --help``; and
  the peak RSS of ``archstat analyze vgg16``.

Usage: ``python benchmarks/analysis_speed.py [--quick]`` (--quick: peers at 224 only).
Numbers are machine- and load-dependent: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs inside the subprocess: prints {"seconds": median, "rss_mb": peak}.
_WORKER = r"""
import json, resource, statistics, sys, time
import torch
tool, name, size, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from archstat.zoo import get_model
shape = (3, size, size)

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if tool == "archstat":
    import archstat
    archstat.analyze("alexnet")  # warm-up: imports, first dispatch
    run = lambda: archstat.analyze(name, input_shape=shape).totals["flops"]
else:
    torch.manual_seed(0)
    model = get_model(name).eval()
    x = torch.randn(1, *shape)
    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis
        def run():
            c = FlopCountAnalysis(model, x)
            c.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return c.total()
    elif tool == "ptflops":
        from ptflops import get_model_complexity_info
        run = lambda: get_model_complexity_info(model, shape, as_strings=False,
                                                print_per_layer_stat=False, verbose=False)[0]
    elif tool == "thop":
        from thop import profile
        run = lambda: profile(model, inputs=(x,), verbose=False)[0]
    elif tool == "torchinfo":
        from torchinfo import summary
        run = lambda: summary(model, input_size=(1, *shape), verbose=0).total_mult_adds
    with torch.no_grad():
        get_model("alexnet")  # a comparable warm-up: one model built
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    with torch.no_grad():
        count = run()
    times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": statistics.median(times), "rss_mb": rss_mb(), "count": int(count)}))
"""


def _available(tool: str) -> bool:
    if tool in ("archstat", "fvcore"):
        return True
    probe = subprocess.run([sys.executable, "-c", f"import {tool}"], capture_output=True)
    return probe.returncode == 0


def measure(tool: str, name: str, size: int, repeats: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, tool, name, str(size), str(repeats)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wall(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a whole process (bytecode caching on, as for an
    installed package, whatever the caller's PYTHONDONTWRITEBYTECODE)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c",
         "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
         "try:\n    runpy.run_module(sys.argv[0], run_name='__main__') if sys.argv[0] != '-c' "
         "else exec(sys.argv[1])\n"
         "except SystemExit:\n    pass\n"
         "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
         "file=sys.stderr)", *cmd],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )
    seconds = time.perf_counter() - t0
    rss = [float(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("RSS")]
    return seconds, rss[-1] if rss else float("nan")


FVCORE_SCRIPT = (
    "import torch; from fvcore.nn import FlopCountAnalysis; from archstat.zoo import get_model\n"
    "m = get_model('resnet152').eval(); x = torch.randn(1, 3, 1024, 1024)\n"
    "with torch.no_grad():\n"
    "    c = FlopCountAnalysis(m, x); c.unsupported_ops_warnings(False); print(c.total())\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="peers at 224x224 only")
    args = parser.parse_args()
    peers = [t for t in ("fvcore", "ptflops", "thop", "torchinfo") if _available(t)]

    print("## In-process analysis (median seconds; peak RSS MB; ratio = tool / archstat)\n")
    print("| model | input | tool | seconds | peak RSS MB | x archstat time | count |")
    print("|---|---|---|---:|---:|---:|---:|")
    archstat_times: dict[tuple[str, int], float] = {}
    for name in ("vgg16", "resnet152"):
        for size in (224, 1024, 2048):
            tools = ["archstat"]
            if size == 224 or (size == 1024 and not args.quick):
                tools += peers if size == 224 else ["fvcore"]
            for tool in tools:
                r = measure(tool, name, size, repeats=5 if tool == "archstat" else 1)
                if "error" in r:
                    print(f"| {name} | {size} | {tool} | failed: {r['error']} | | | |")
                    continue
                if tool == "archstat":
                    archstat_times[(name, size)] = r["seconds"]
                ratio = r["seconds"] / archstat_times[(name, size)]
                print(f"| {name} | {size} | {tool} | {r['seconds']:.4f} | {r['rss_mb']:.0f} "
                      f"| {ratio:.1f}x | {r['count']:,} |")
    for name in ("vgg16", "resnet152"):
        growth = archstat_times[(name, 2048)] / archstat_times[(name, 224)]
        print(f"\narchstat {name}: time at 2048 / time at 224 = {growth:.2f}")

    print("\n## Whole processes (best of 5)\n")
    analyze = ["archstat", "analyze", "resnet152", "--input", "3x1024x1024", "--format", "csv"]
    wall(analyze)  # writes the bytecode caches
    ours = min(wall(analyze)[0] for _ in range(5))
    bare = min(wall(["-c", "import torch"])[0] for _ in range(5))
    print(f"python -c 'import torch':                       {bare:.2f} s")
    print(f"archstat analyze resnet152 --input 3x1024x1024: {ours:.2f} s "
          f"({ours - bare:.2f} s above importing torch)")
    theirs, _ = wall(["-c", FVCORE_SCRIPT])
    print(f"build + fvcore count of resnet152 at 1024:      {theirs:.2f} s "
          f"(archstat takes {ours / theirs:.2f} of it)")
    help_s, _ = wall(["archstat", "--help"])
    print(f"archstat --help: {help_s:.2f} s")
    vgg_s, vgg_rss = wall(["archstat", "analyze", "vgg16"])
    print(f"archstat analyze vgg16: {vgg_s:.2f} s, peak RSS {vgg_rss:.0f} MB")


if __name__ == "__main__":
    main()
