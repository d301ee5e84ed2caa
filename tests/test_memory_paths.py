"""Memory off the conv path (issue 10, section 4): archstat's tensor-level estimate
against a tensor-level watch of the real CPU run, exactly, on the paths where the CPU
runs other kernels than the meta device would:

* LSTM: oneDNN, one ``mkldnn_rnn_layer`` per layer and direction (with, in training,
  the oneDNN workspace it returns and autograd saves), not the per-step cell;
* GRU and RNN: the whole sequence's input projection at once (``RNN.cpp``'s FullLayer
  branch for ``input.device().is_cpu()``), not one projection per step;
* ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` in eval: the fast path
  (``_native_multi_head_attention``, ``_transformer_encoder_layer_fwd``), whose
  intermediates the watch sees by looking inside those kernels;
* ``F.scaled_dot_product_attention``: ``_scaled_dot_product_flash_attention_for_cpu``,
  not the math decomposition.

The oracle is ``benchmarks/memory_oracles.py``'s ``tensor_peak`` (a watch that looks
inside the fused transformer kernels); every comparison is exact: both sides count the
same storages, a byte is a byte. Shapes are small so that the file runs in seconds.
The allocator-level oracle (``allocator_peak``) is checked on cases whose allocations are
known.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archstat.memory import estimate_memory
from benchmarks.memory_oracles import (
    SDPAttention,
    SelfAttention,
    allocator_peak,
    tensor_peak,
)


def _encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(WIDTH, HEADS, 2 * WIDTH, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


# name -> (builder, input shape without the batch, batch). Recurrent layers are time-major
# unless batch_first: there the "batch" is the sequence length (5 steps of batch 2).
# Attention: batch 2, 12 tokens of width 16, 2 heads (at 6 tokens the meta trace's math
# path happens to peak at the same bytes as the CPU's fast path).
TOKENS, WIDTH, HEADS = 12, 16, 2
CASES = {
    "lstm": (lambda: nn.LSTM(8, 16, 2), (2, 8), 5),
    "lstm_batch_first": (lambda: nn.LSTM(8, 16, 2, batch_first=True), (5, 8), 2),
    "lstm_bidirectional": (lambda: nn.LSTM(8, 16, 2, bidirectional=True), (2, 8), 5),
    "gru": (lambda: nn.GRU(8, 16, 2), (2, 8), 5),
    "gru_bidirectional": (lambda: nn.GRU(8, 16, 2, bidirectional=True), (2, 8), 5),
    "transformer_encoder": (_encoder, (TOKENS, WIDTH), 2),
    "mha_fast_path": (lambda: SelfAttention(WIDTH, HEADS), (TOKENS, WIDTH), 2),
    "sdpa": (lambda: SDPAttention(WIDTH, HEADS), (TOKENS, WIDTH), 2),
}


def _case(name: str) -> tuple[nn.Module, tuple[int, ...], int, torch.Tensor]:
    build, shape, batch = CASES[name]
    torch.manual_seed(0)
    model = build()
    return model, shape, batch, torch.randn(batch, *shape)


@pytest.mark.parametrize("name", list(CASES))
def test_inference_peak_is_the_cpu_runs(name: str) -> None:
    model, shape, batch, x = _case(name)
    measured, _ = tensor_peak(model, (x,))
    estimate = estimate_memory(model, input_shape=shape, batch=batch).estimates[0]
    assert measured > 0
    assert estimate.peak_activation_bytes == measured


@pytest.mark.parametrize("name", list(CASES))
def test_training_forward_is_the_cpu_runs(name: str) -> None:
    # the transformer in training: dropout on, so attention takes the math kernel and
    # the encoder its Python path; the bytes do not depend on the random masks
    model, shape, batch, x = _case(name)
    peak, saved = tensor_peak(model, (x,), train=True)
    estimate = estimate_memory(model, input_shape=shape, batch=batch, train=True).estimates[0]
    assert estimate.saved_activation_bytes == saved
    assert estimate.peak_activation_bytes == peak


def test_lstm_training_saves_the_onednn_workspace() -> None:
    # 2 layers of 5 steps, batch 2, 8 -> 16: mkldnn_rnn_layer returns a uint8 workspace
    # that autograd keeps; it is most of what the LSTM saves
    model, shape, batch, x = _case("lstm")
    _, saved = tensor_peak(model, (x,), train=True)
    outputs = 2 * (5 * 2 * 16 * 4 + 2 * (2 * 16 * 4))  # per layer: output, hy, cy
    zeros = 2 * (2 * 2 * 16 * 4)  # h0 and c0 (zeros, one storage each)
    assert saved > 10 * (outputs + zeros)


def test_the_watch_sees_inside_the_fused_attention_kernel() -> None:
    # nn.MultiheadAttention's fast path is one aten op on the CPU; inside it, the qkv
    # projection (B x T x 3D) and q, k, v (one 3 x B x H x T x D/H storage) coexist.
    model, shape, batch, x = _case("mha_fast_path")
    peak, _ = tensor_peak(model, (x,))
    assert peak >= 2 * (batch * TOKENS * 3 * WIDTH * 4)


def test_allocator_peak_excludes_what_exists_before_the_call() -> None:
    class View(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(-1)

    assert allocator_peak(View(), (torch.randn(64, 64),)) == 0


def test_allocator_peak_counts_temporaries() -> None:
    class Chain(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # no Python scalars: torch would wrap them in tensors the allocator sees too
            y = x.exp()
            z = y.neg()  # y and z coexist
            del y
            return z.sum(0)

    x = torch.randn(64, 64)
    assert allocator_peak(Chain(), (x,)) == 2 * 64 * 64 * 4
    assert tensor_peak(Chain(), (x,))[0] == 2 * 64 * 64 * 4


def test_allocator_peak_sees_kernel_workspaces() -> None:
    # the CPU flash-attention kernel takes one fp32 buffer per thread for its blocks
    # (qk, row max, row sum, output block); qSplit = min(32, L), kvSplit = min(512, L)
    model, shape, batch, x = _case("sdpa")
    head_dim = WIDTH // HEADS
    per_thread = TOKENS * TOKENS + 2 * TOKENS + TOKENS * head_dim
    workspace = torch.get_num_threads() * per_thread * 4
    assert allocator_peak(model, (x,)) == tensor_peak(model, (x,))[0] + workspace


def test_allocator_peak_sees_onednn_buffers() -> None:
    # oneDNN reorders the LSTM's weights (and keeps a scratchpad) inside the kernel
    model, _, _, x = _case("lstm")
    reordered_weights = 4 * (8 + 16) * (4 * 16)  # w_ih and w_hh of one layer, fp32
    assert allocator_peak(model, (x,)) > tensor_peak(model, (x,))[0] + reordered_weights
