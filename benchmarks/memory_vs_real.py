"""archstat memory's estimates against real CPU allocations, for every zoo model.

    PYTHONPATH=. python benchmarks/memory_vs_real.py          # default inputs, batch 1
    PYTHONPATH=. python benchmarks/memory_vs_real.py --quick  # the validation test's inputs

Prints Markdown tables: per model, the inference peak and the saved activations (meta
estimate vs measured under a StorageWatch, and the time each took), then the training
step peak (estimate vs a measured steady-state step with torch's foreach optimizers,
the implementation the estimate assumes) for a few models and every optimizer.
"""

from __future__ import annotations

import argparse
import time

import torch

from archstat.memory import estimate_memory
from archstat.realrun import (
    measure_forward,
    measure_training_step,
    smallest_input,
    torch_optimizer,
    zoo_model,
)
from archstat.zoo import get_model_info, list_models

STEP_MODELS = ["lenet5", "alexnet", "resnet18", "resnet50", "googlenet_tv", "vgg11"]
STEP_INPUT, STEP_BATCH = 64, 4


def _input(name: str, quick: bool) -> tuple[tuple[int, ...], int]:
    if quick:
        return smallest_input(name, 2), 2
    return get_model_info(name).input_shape, 1


def _ratio(estimate: int, measured: int) -> str:
    return f"{estimate / measured:.4f}"


def forward_table(quick: bool) -> None:
    print("| model | input | inference peak est | measured | est/meas | saved est | measured "
          "| est/meas | estimate s | real run s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in list_models():
        shape, batch = _input(name, quick)
        start = time.perf_counter()
        inference = estimate_memory(name, input_shape=shape, batch=batch).estimates[0]
        training = estimate_memory(name, input_shape=shape, batch=batch, train=True).estimates[0]
        estimated_s = time.perf_counter() - start
        model = zoo_model(name)
        inputs = (torch.randn(batch, *shape),)
        start = time.perf_counter()
        real = measure_forward(model, inputs)
        real_train = measure_forward(model, inputs, train=True)
        real_s = time.perf_counter() - start
        del model
        print(f"| {name} | {batch}x{'x'.join(map(str, shape))} "
              f"| {inference.peak_activation_bytes} | {real.peak_activation_bytes} "
              f"| {_ratio(inference.peak_activation_bytes, real.peak_activation_bytes)} "
              f"| {training.saved_activation_bytes} | {real_train.saved_activation_bytes} "
              f"| {_ratio(training.saved_activation_bytes, real_train.saved_activation_bytes)} "
              f"| {estimated_s:.2f} | {real_s:.2f} |", flush=True)


def step_table() -> None:
    print(f"\nTraining step, input {STEP_BATCH}x3x{STEP_INPUT}x{STEP_INPUT} (lenet5: 1x32x32):\n")
    print("| model | optimizer | training peak est | measured | est/meas |")
    print("|---|---|---:|---:|---:|")
    for name in STEP_MODELS:
        channels = get_model_info(name).input_shape[0]
        size = 32 if name == "lenet5" else STEP_INPUT
        shape = (channels, size, size)
        for opt in ("sgd", "sgd-momentum", "adam"):
            report = estimate_memory(name, input_shape=shape, batch=STEP_BATCH, train=True,
                                     optimizer=opt)
            estimate = report.estimates[0].training_peak_bytes
            model = zoo_model(name)
            measured = measure_training_step(model, (torch.randn(STEP_BATCH, *shape),),
                                             torch_optimizer(opt, list(model.parameters()),
                                                             foreach=True))
            del model
            print(f"| {name} | {opt} | {estimate} | {measured} | {_ratio(estimate, measured)} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, batch 2")
    parser.add_argument("--no-step", action="store_true", help="skip the training steps")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    forward_table(args.quick)
    if not args.no_step:
        step_table()


if __name__ == "__main__":
    main()
