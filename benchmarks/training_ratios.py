"""Training FLOPs against the rules of thumb (issue 15): "the backward costs 2x the forward"
for conv and linear layers, and "a transformer's training step costs 6·N·D".

    python benchmarks/training_ratios.py                 # zoo, and GPT-2 if transformers is there
    python benchmarks/training_ratios.py --check         # also FlopCounterMode on real CPU runs
    python benchmarks/training_ratios.py --check -o benchmarks/results/training_ratios.md

The zoo table: every zoo model at its default input, batch 1, in training mode, under
``macs``: forward, backward, backward/forward, the backward split into input-gradient and
weight-gradient work, and, for every ratio that is not 2, the reason, read off the
per-layer numbers: which layers compute no input gradient (their forward is missing from
the input side), which compute a weight gradient that is not their forward. The reason is
checked as arithmetic: ratio = 2 - (layers without input gradient)/forward +
(weight-gradient excess)/forward, exactly.

GPT-2 (``transformers.GPT2Config()``, ``GPT2LMHeadModel``, 128 tokens, ``flops``): archstat's
forward + backward against 6·N·D with N the non-embedding parameters (Kaplan et al.'s N)
and with all parameters, and the terms that make up the difference, each computed by hand
from the configuration and checked to add up to archstat's figure exactly.

With ``--check``, FlopCounterMode counts a real CPU forward and ``.sum().backward()`` of each
model (zero weights, one thread; GPT-2 with eager attention, whose QK^T and AV are
matmuls FlopCounterMode counts: its CPU flash-attention kernel has no formula in torch).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.conventions import CONVENTIONS, extra_packets
from archstat.realrun import zoo_model
from archstat.render.text import human
from archstat.zoo import get_model, get_model_info, list_models

TOKENS = 128


def flop_counter(model: nn.Module, args: tuple[Any, ...] = (), kwargs: Any = None
                 ) -> tuple[int, int]:
    """FlopCounterMode's (forward, backward) FLOPs over a real run and the sum's backward."""
    with FlopCounterMode(display=False) as counter:
        out = model(*args, **(kwargs or {}))
        forward = counter.get_total_flops()
        logits = out if isinstance(out, torch.Tensor) else out.logits
        logits.sum().backward()
    return forward, counter.get_total_flops() - forward


# --- the zoo ----------------------------------------------------------------------------

@dataclass
class ZooRow:
    name: str
    shape: tuple[int, ...]
    forward: int
    backward: int
    input: int
    weight: int
    reason: str
    check: str = ""

    def cells(self) -> str:
        ratio = self.backward / self.forward
        return (f"| {self.name} | {'x'.join(map(str, self.shape))} | {human(self.forward)} | "
                f"{human(self.backward)} | {ratio:.4f} | {human(self.input)} | "
                f"{human(self.weight)} | {self.reason} |"
                + (f" {self.check} |" if self.check else ""))


ZOO_HEADER = ("| model | input | forward (MACs) | backward | bwd/fwd | bwd input | bwd weight "
              "| why not 2 |")


def zoo_row(name: str, check: bool) -> ZooRow:
    info = get_model_info(name)
    result = archstat.analyze(name, train=True)
    totals = result.totals
    forward = totals["flops"]
    with torch.device("meta"):
        groups = {n: m.groups for n, m in get_model(name).named_modules()
                  if isinstance(m, nn.Conv2d)}
    no_input, partial_input, extra_weight = [], [], []
    trace = result.trace
    for record, row in zip(trace.records, result.layers.to_dict("records"), strict=True):
        flops, grad_in, grad_w = (int(row[c]) for c in (
            "flops", "backward_input_flops", "backward_weight_flops"))
        if flops and not grad_in:
            reads_input = any(trace.tensors[s].role == "input" for s in record.inputs)
            no_input.append((row["name"], flops, reads_input))
        elif grad_in != flops:
            partial_input.append((row["name"], flops - grad_in))
        if grad_w != flops:
            extra_weight.append((row["name"], grad_w - flops))
    missing = sum(f for _, f, _ in no_input) + sum(f for _, f in partial_input)
    excess = sum(e for _, e in extra_weight)
    # the reason is the arithmetic: every MAC layer's gradients cost its forward, each
    assert totals["backward_flops"] == 2 * forward - missing + excess, name
    reasons = []
    for name_, flops, reads_input in no_input:
        where = "reads the image" if reads_input else "reads nothing that needs a gradient"
        reasons.append(f"`{name_}` {where}: no input gradient (-{flops / forward:.4f})")
    if partial_input:
        reasons.append("input gradient not the forward in "
                       + ", ".join(f"`{n}`" for n, _ in partial_input[:3])
                       + (f" and {len(partial_input) - 3} more" if len(partial_input) > 3
                          else ""))
    if extra_weight:
        kinds = {groups.get(n) for n, _ in extra_weight}
        names = ", ".join(f"`{n}`" for n, _ in extra_weight[:3])
        if len(extra_weight) > 3:
            names += f" and {len(extra_weight) - 3} more"
        why = (f"grouped convs (groups={', '.join(map(str, sorted(kinds)))}): torch's "
               "conv_backward_flop counts their weight gradient as if ungrouped"
               if None not in kinds and kinds != {1} else "weight gradient not the forward")
        real_ratio = (totals["backward_flops"] - excess) / forward
        reasons.append(f"{names}: {why} ({excess / forward:+.4f}; at their real "
                       f"multiply-adds the ratio is {real_ratio:.4f})")
    row = ZooRow(name, info.input_shape, forward, totals["backward_flops"],
                 totals["backward_input_flops"], totals["backward_weight_flops"],
                 "; ".join(reasons) or "2 exactly")
    if check:
        model = zoo_model(name).train()
        real_forward, real_backward = flop_counter(model, (torch.randn(1, *info.input_shape),))
        same = (real_forward, real_backward) == (2 * forward, 2 * row.backward)
        # ops archstat counts beyond torch's registry (grid_sample's bilinear taps)
        extra = extra_packets()
        convention = CONVENTIONS["macs"]
        beyond = {phase: sum(convention.cost(e) or 0 for e in events if e.packet in extra)
                  for phase, events in (("forward", trace.events),
                                        ("backward", trace.backward))}
        if same:
            row.check = "equal"
        elif (real_forward // 2 + beyond["forward"], real_backward // 2 + beyond["backward"]
              ) == (forward, row.backward):
            row.check = (f"equal but for ops torch does not count (grid_sample's bilinear "
                         f"taps: forward +{beyond['forward']:,}, backward "
                         f"+{beyond['backward']:,})")
        else:
            row.check = f"differs: {real_forward // 2} / {real_backward // 2}"
    return row


# --- GPT-2 ------------------------------------------------------------------------------

def gpt2_section(check: bool) -> list[str]:
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return ["GPT-2: skipped, transformers is not installed in this environment."]
    config = GPT2Config()
    with torch.device("meta"):
        model = GPT2LMHeadModel(config)
    result = archstat.analyze(model, input_shape=[f"input_ids={TOKENS}:int64"], train=True,
                              convention="flops")
    totals = result.totals
    train = totals["flops"] + totals["backward_flops"]
    layers, d, vocab, t = config.n_layer, config.n_embd, config.vocab_size, TOKENS
    params = dict(model.named_parameters())  # tied weights once: lm_head.weight is wte's
    n_all = sum(p.numel() for p in params.values())
    embeddings = params["transformer.wte.weight"].numel() + params["transformer.wpe.weight"].numel()
    n_nonemb = n_all - embeddings
    matmul_weights = sum(p.numel() for n, p in params.items()
                         if n.startswith("transformer.h.") and p.dim() == 2)
    assert matmul_weights == layers * 12 * d * d  # qkv 3d², proj d², mlp 4d² and 4d²
    other = n_nonemb - matmul_weights  # biases and LayerNorm scales and shifts
    wpe = params["transformer.wpe.weight"].numel()
    # the forward by hand: 2 FLOPs per multiply-add
    blocks = 2 * t * matmul_weights
    head = 2 * t * d * vocab  # the LM head, tied to wte: a d x V matmul per token
    attention = layers * 2 * (2 * t * t * d)  # QK^T and AV over the full T x T, all heads
    forward = blocks + head + attention
    assert (totals["flops"], totals["backward_flops"]) == (forward, 2 * forward)
    # activations' gradients: every matmul's (the embeddings' output needs one), and all
    # four of the attention backward's matmuls; parameters': the weight matmuls only
    assert totals["backward_input_flops"] == blocks + head + 2 * attention
    assert totals["backward_weight_flops"] == blocks + head
    rule_nonemb, rule_all = 6 * n_nonemb * t, 6 * n_all * t
    # what separates archstat's 3 x forward from each rule, term by term
    assert train == rule_nonemb + 3 * head + 3 * attention - 6 * t * other
    assert train == rule_all + 3 * attention - 6 * t * wpe - 6 * t * other
    lines = [
        f"## GPT-2 at {TOKENS} tokens", "",
        f"`transformers.GPT2Config()` ({layers} layers, d = {d}, V = {vocab}, "
        f"{config.n_head} heads), `GPT2LMHeadModel` (LM head tied to the token embedding), "
        f"`archstat.analyze(model, input_shape=[\"input_ids={TOKENS}:int64\"], train=True, "
        f"convention=\"flops\")`, D = {TOKENS} tokens (batch 1).", "",
        "| | FLOPs | |", "|---|---:|---|",
        f"| forward | {totals['flops']:,} | archstat |",
        f"| backward | {totals['backward_flops']:,} | archstat: 2.0000 x forward "
        f"(input {totals['backward_input_flops']:,}, weight "
        f"{totals['backward_weight_flops']:,}) |",
        f"| forward + backward | {train:,} | archstat |",
        f"| 6·N·D, N = non-embedding params ({n_nonemb:,}) | {rule_nonemb:,} | "
        f"archstat / rule = {train / rule_nonemb:.4f} |",
        f"| 6·N·D, N = all params ({n_all:,}, tied head once) | {rule_all:,} | "
        f"archstat / rule = {train / rule_all:.4f} |", "",
        "The forward by hand, 2 FLOPs per multiply-add (it equals archstat's exactly):", "",
        "| term | forward FLOPs | x3 (training) | share |", "|---|---:|---:|---:|",
        *(f"| {label} | {v:,} | {3 * v:,} | {v / forward:.2%} |" for label, v in [
            (f"block matmuls: 2·D·12·L·d² (qkv, proj, mlp; {matmul_weights:,} weights)", blocks),
            (f"LM head: 2·D·d·V (the tied {d}x{vocab} embedding)", head),
            (f"attention QK^T and AV: 2·L·2·T²·d (T = D = {t})", attention)]),
        "", "Why the rules miss (each term checked to add up exactly):", "",
        "* backward = 2 x forward, exactly: every weight matmul has both gradients (the "
        "first block's input is the embeddings' output, which needs a gradient for the "
        "embedding table, so no layer skips its input gradient), and the attention's "
        "backward is 4 matmuls against its forward's 2, all on the input side: input "
        f"gradients {totals['backward_input_flops']:,} = forward + attention, weight "
        f"gradients {totals['backward_weight_flops']:,} = forward - attention. Per "
        "parameter that is 2 (forward) + 4 (backward): the 6 of 6·N·D.",
        f"* non-embedding N ({train / rule_nonemb:.3f}x): the LM head is a "
        f"{d}x{vocab} matmul per token whose weight is the token embedding, so N leaves it "
        f"out: +{3 * head:,} ({3 * head / rule_nonemb:.1%} of the rule). The attention's "
        f"QK^T and AV multiply activations by activations, no parameter of N: "
        f"+{3 * attention:,}. Biases and LayerNorm parameters ({other:,}) are in N but do "
        f"no matmul work: -{6 * t * other:,}.",
        f"* all params N ({train / rule_all:.4f}x): the tied head is counted once, through "
        "the embedding, and it does its matmul once, so that term is right; the position "
        f"embedding ({wpe:,} params) is a lookup with no multiply-add: -{6 * t * wpe:,}; "
        f"biases and LayerNorm: -{6 * t * other:,}; attention +{3 * attention:,}. The "
        "embedding lookups' backward is a scatter-add into the table: 0 FLOPs, as in "
        "FlopCounterMode.",
        f"* At {TOKENS} tokens attention is {attention / forward:.2%} of the forward; it grows "
        "as T², the rule does not.",
    ]
    if check:
        eager_config = GPT2Config(attn_implementation="eager")
        torch.manual_seed(0)
        real = GPT2LMHeadModel(eager_config).train()
        ids = torch.zeros(1, t, dtype=torch.int64)
        real_forward, real_backward = flop_counter(real, kwargs={"input_ids": ids})
        eager = archstat.analyze(real, input_shape=[f"input_ids={t}:int64"], train=True,
                                 convention="flops").totals
        same = (real_forward, real_backward) == (eager["flops"], eager["backward_flops"]) \
            == (forward, 2 * forward)
        lines += ["", f"FlopCounterMode, real CPU run, eager attention: forward "
                      f"{real_forward:,}, backward {real_backward:,}: "
                      f"{'equal to archstat (eager and sdpa alike)' if same else 'DIFFERS'}."]
    return lines


def machine() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{now}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, load average {load:.2f} at start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="also count real CPU runs with FlopCounterMode")
    parser.add_argument("--no-gpt2", action="store_true", help="only the zoo")
    parser.add_argument("-o", "--output", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    # counts do not depend on the thread count, and one thread is much the faster on a
    # shared machine (two OpenMP threads against another process)
    torch.set_num_threads(1)
    command = " ".join(["python benchmarks/training_ratios.py", *sys.argv[1:]])
    lines = ["# Training FLOPs: backward/forward on the zoo, 6·N·D on GPT-2", "",
             f"`{command}`; {machine()}.", "",
             "## The zoo: backward / forward", "",
             "Default input, batch 1, training mode, `macs` (multiply-adds of convolutions "
             "and matmuls; batch norm, pooling, activations and residual adds count 0 in the "
             "forward and in the backward, so they move no ratio). A conv or linear layer's "
             "input gradient and weight gradient each cost its forward's multiply-adds, so "
             "the ratio is 2 minus the share of the forward whose layers need no input "
             "gradient, plus any weight-gradient count above the forward.", "",
             ZOO_HEADER + (" FlopCounterMode |" if args.check else ""),
             "|---|---|---:|---:|---:|---:|---:|---|" + ("---|" if args.check else "")]
    print("\n".join(lines), flush=True)
    for name in list_models():
        row = zoo_row(name, args.check)
        lines.append(row.cells())
        print(lines[-1], flush=True)
    if not args.no_gpt2:
        gpt2 = ["", *gpt2_section(args.check)]
        print("\n".join(gpt2), flush=True)
        lines += gpt2
    if args.output:
        with open(args.output, "w") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
