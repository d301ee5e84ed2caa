"""Where archstat stands on the corpus, in one pass (a developer's tool, not a test):

    python -m tests.realworld.survey [ID_PREFIX ...] [--json FILE]

measures every case (or those whose id starts with a prefix: ``block:``, ``timm:``,
``torchvision:resnet``) and prints, per oracle, the cases that fail it and why, then
every op the corpus reaches that archstat neither counts nor declares (the ops
``test_every_op_is_counted_or_declared`` fails on), with the cases that reach it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from typing import Any

from .corpus import (
    Case,
    check_flops,
    check_fvcore,
    check_ops_known,
    check_params,
    measure,
    unknown_ops,
)

_CHECKS = {
    "params": lambda m, case: check_params(m),
    "flops": check_flops,
    "fvcore": check_fvcore,
    "ops": lambda m, case: check_ops_known(m),
}


def all_cases() -> list[Case]:
    from .blocks import BLOCKS
    from .zoos import timm_cases, torchvision_cases, transformers_cases

    return [*BLOCKS, *torchvision_cases(), *timm_cases(), *transformers_cases()]


def survey(cases: list[Case]) -> dict[str, Any]:
    failures: dict[str, dict[str, str]] = defaultdict(dict)
    ops: dict[str, list[str]] = defaultdict(list)
    unhandled: dict[str, dict[str, list[str]]] = {"flops": defaultdict(list),
                                                  "fvcore": defaultdict(list)}
    seconds = {}
    for case in cases:
        m = measure(case)
        seconds[case.id] = m.seconds
        for oracle, check in _CHECKS.items():
            try:
                check(m, case)
            except AssertionError as exc:
                failures[oracle][case.id] = str(exc).splitlines()[0]
        for name in unknown_ops(m.ops):
            ops[name].append(case.id)
        for convention, counts in (("flops", m.flops), ("fvcore", m.fvcore_convention)):
            for name in counts.unhandled if counts else ():
                unhandled[convention][name].append(case.id)
        print(f"{case.id}: {m.seconds}", file=sys.stderr, flush=True)
    return {
        "cases": len(cases),
        "expected_failures": {c.id: c.cannot_trace for c in cases if c.cannot_trace},
        "failures": {k: dict(sorted(v.items())) for k, v in sorted(failures.items())},
        "unknown_ops": {k: sorted(v) for k, v in sorted(ops.items())},
        "unhandled": {conv: {k: sorted(v) for k, v in sorted(by_op.items())}
                      for conv, by_op in unhandled.items()},
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", nargs="*", help="case id prefixes (default: every case)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if not args.prefix or c.id.startswith(tuple(args.prefix))]
    start = time.perf_counter()
    result = survey(cases)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    for oracle, failed in result["failures"].items():
        print(f"\n## {oracle}: {len(failed)} of {len(cases)} fail")
        for case_id, reason in failed.items():
            print(f"- {case_id}: {reason}")
    print("\n## ops reached that archstat neither counts nor declares")
    _print_ops(result["unknown_ops"])
    for convention, by_op in result["unhandled"].items():
        print(f"\n## ops archstat reports unhandled under convention {convention}")
        _print_ops(by_op)
    print(f"\n{len(cases)} cases in {result['wall_seconds']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def _print_ops(by_op: dict[str, list[str]]) -> None:
    for name, where in by_op.items():
        print(f"- {name} ({len(where)}): {', '.join(where[:6])}{' ...' if len(where) > 6 else ''}")


if __name__ == "__main__":
    main()
