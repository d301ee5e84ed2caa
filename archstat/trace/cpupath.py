"""Make a meta trace take the kernels a CPU run takes, so that its memory is the CPU's.

archstat's tensor-level memory is validated against real CPU runs. In these places torch
picks a kernel by device, so a plain meta run and a CPU run would differ:

* RNNs. ``aten::lstm/gru/rnn_tanh/rnn_relu`` are CompositeImplicitAutograd C++ code
  (aten/src/ATen/native/RNN.cpp) that branches on ``input.device().is_cpu()``
  (FullLayer: project the whole sequence at once) and on ``use_mkldnn()`` (LSTM: one
  ``mkldnn_rnn_layer`` per layer and direction). They never reach a dispatch mode, so
  ``torch._VF`` entries are replaced, during the trace, by Python ports of the CPU
  branches, which call the same aten ops in the same order and drop references where
  the C++ destroys its locals.
* Attention. ``aten::_fused_sdp_choice``'s Meta kernel returns the math backend; on the
  CPU, ``_fused_sdp_choice_cpp`` picks ``_scaled_dot_product_flash_attention_for_cpu``.
  The recorder answers the op by asking the CPU selector on stride-0 stand-ins.
* The transformer fast path. ``nn.MultiheadAttention``/``TransformerEncoderLayer`` only
  call ``_native_multi_head_attention``/``_transformer_encoder_layer_fwd`` for devices in
  a list that reads ``torch.utils.backend_registration._privateuse1_backend_name`` at call
  time; the CPU kernels of those ops are themselves compositions of dispatcher calls,
  which the recorder follows by redispatching to the CPU kernel under itself.
* Batch norm at inference: the CPU kernel returns empty saved statistics, the meta
  kernel per-channel ones (:func:`cpu_outputs`).

Everything here is installed only while :func:`archstat.trace.tracer.trace` runs on meta
(:func:`as_cpu`), and swaps module attributes of torch: tracing is not thread-safe.
The ports follow torch's C++ (``RNN.cpp``, ``attention.cpp``); tests on two torch
versions guard them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF

aten = torch.ops.aten
CPU_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)

#: Ops whose CPU kernel is a composition of dispatcher calls with no Meta kernel: the
#: trace (and the watch) follow them inside.
DESCEND = {aten._transformer_encoder_layer_fwd.default, aten._native_multi_head_attention.default}


# ---------------------------------------------------------------- where an op comes from
#: The composite the op being traced runs inside, as TorchScript (and so fvcore) would see
#: it: ``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu`` (the ports below),
#: ``scaled_dot_product_attention`` (whichever kernel it picks), or a fast-path kernel the
#: recorder follows inside (``_native_multi_head_attention``); the innermost one.
ORIGIN: ContextVar[str | None] = ContextVar("archstat_origin", default=None)


@contextmanager
def origin(name: str) -> Iterator[None]:
    """Ops traced inside this block come from ``name`` (see ORIGIN)."""
    token = ORIGIN.set(name)
    try:
        yield
    finally:
        ORIGIN.reset(token)


# ---------------------------------------------------------------- SDPA backend choice
def _standin(t: torch.Tensor) -> torch.Tensor:
    """A CPU tensor with ``t``'s shape, dtype and whether its last stride is 1, backed by
    one row of memory (the selector reads shapes and the last stride only)."""
    if t.dim() == 0:
        return torch.empty((), dtype=t.dtype)
    n = t.shape[-1]
    base = torch.empty(n if t.stride(-1) == 1 else 2 * n, dtype=t.dtype)
    if t.stride(-1) != 1:
        base = base[::2]
    out = base.expand(t.shape)
    return out.requires_grad_(t.requires_grad) if t.is_floating_point() and t.requires_grad \
        else out


def cpu_sdp_choice(args: Any, kwargs: Any) -> int:
    """The backend the CPU's ``_fused_sdp_choice`` picks for these arguments, asked
    outside the trace (the stand-ins are not part of the model's run)."""
    from torch.utils._python_dispatch import _disable_current_modes

    with _disable_current_modes(), torch.no_grad():
        conv = [(_standin(a) if isinstance(a, torch.Tensor) else a) for a in args]
        kw = {k: (_standin(v) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
        return aten._fused_sdp_choice.default(*conv, **kw)


# ---------------------------------------------------------------- RNN ports (RNN.cpp)
def _linear(x, w, b):
    return F.linear(x, w, b)


class _Params:
    def __init__(self, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
        self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_hr = w_ih, w_hh, b_ih, b_hh, w_hr

    def linear_ih(self, x):
        return _linear(x, self.w_ih, self.b_ih)

    def linear_hh(self, h):
        return _linear(h, self.w_hh, self.b_hh)

    def matmul_hr(self, h):
        return torch.matmul(h, self.w_hr.t()) if self.w_hr is not None else h


def _gather_params(params, has_biases, has_projections=False):
    n = (4 if has_biases else 2) + (1 if has_projections else 0)
    out = []
    for i in range(0, len(params), n):
        p = params[i:i + n]
        if has_biases:
            out.append(_Params(p[0], p[1], p[2], p[3], p[4] if has_projections else None))
        else:
            out.append(_Params(p[0], p[1], None, None, p[2] if has_projections else None))
    return out


def _simple_cell(nonlinearity):
    def cell(x, hidden, params, pre):
        return nonlinearity(params.linear_hh(hidden).add_(x if pre else params.linear_ih(x)))
    return cell


def _gru_cell(x, hidden, params, pre):
    chunked_igates = x.unsafe_chunk(3, 1) if pre else params.linear_ih(x).unsafe_chunk(3, 1)
    chunked_hgates = params.linear_hh(hidden).unsafe_chunk(3, 1)
    reset_gate = chunked_hgates[0].add_(chunked_igates[0]).sigmoid_()
    input_gate = chunked_hgates[1].add_(chunked_igates[1]).sigmoid_()
    new_gate = chunked_igates[2].add(chunked_hgates[2].mul_(reset_gate)).tanh_()
    return (hidden - new_gate).mul_(input_gate).add_(new_gate)


def _lstm_cell(x, hidden, params, pre):
    hx, cx = hidden
    gates = params.linear_hh(hx).add_(x if pre else params.linear_ih(x))
    chunked_gates = gates.unsafe_chunk(4, 1)
    ingate = chunked_gates[0].sigmoid_()
    forgetgate = chunked_gates[1].sigmoid_()
    cellgate = chunked_gates[2].tanh_()
    outgate = chunked_gates[3].sigmoid_()
    cy = (forgetgate * cx).add_(ingate * cellgate)
    hy = outgate * cy.tanh()
    hy = params.matmul_hr(hy)
    return (hy, cy)


def _as_output(hidden):
    return hidden[0] if isinstance(hidden, tuple) else hidden


def _unstacked(cell, step_inputs, hidden, params, pre):
    step_outputs = []
    for x in step_inputs:
        hidden = cell(x, hidden, params, pre)
        step_outputs.append(_as_output(hidden))
    return step_outputs, hidden


def _full_layer(cell, inputs, hidden, params):
    # FullLayer::operator() on the CPU: project the whole sequence at once
    inputs_w = params.linear_ih(inputs)
    outputs, final = _unstacked(cell, inputs_w.unbind(0), hidden, params, True)
    return torch.stack(outputs, 0), final


def _full_bidirectional_layer(cell, input, hidden, params):
    input_w = params[0].linear_ih(input)
    step_inputs = input_w.unbind(0)
    fw_outputs, fw_final = _unstacked(cell, step_inputs, hidden[0], params[0], True)
    fw_output = torch.stack(fw_outputs, 0)
    input_w = params[1].linear_ih(input)
    step_inputs = input_w.unbind(0)
    rev_step_inputs = list(reversed(step_inputs))
    del step_inputs  # std::move into reverse()
    rev_outputs, rev_final = _unstacked(cell, rev_step_inputs, hidden[1], params[1], True)
    rev_outputs.reverse()
    rev_output = torch.stack(rev_outputs, 0)
    return torch.cat([fw_output, rev_output], fw_output.dim() - 1), (fw_final, rev_final)


def _apply_layer_stack(cell, bidirectional, input, hiddens, weights, num_layers, dropout_p,
                       train):
    layer_input = input
    final_hiddens = []
    for layer in range(num_layers):
        if bidirectional:
            outputs, final = _full_bidirectional_layer(cell, layer_input, hiddens[layer],
                                                       weights[layer])
        else:
            outputs, final = _full_layer(cell, layer_input, hiddens[layer], weights[layer])
        final_hiddens.append(final)
        layer_input = outputs
        del outputs, final  # the C++ LayerOutput dies with the loop body
        if dropout_p != 0 and train and layer < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout_p, True)
    return layer_input, final_hiddens


def _pairs(values):
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _rnn_impl(cell, input, params, hiddens, num_layers, dropout_p, train, bidirectional):
    if bidirectional:
        out, finals = _apply_layer_stack(cell, True, input, _pairs(hiddens), _pairs(params),
                                         num_layers, dropout_p, train)
        return out, [h for pair in finals for h in pair]
    return _apply_layer_stack(cell, False, input, hiddens, params, num_layers, dropout_p, train)


def _one_hidden_rnn(cell):
    def rnn(input, hx, params, has_biases, num_layers, dropout_p, train, bidirectional,
            batch_first):
        x = input.transpose(0, 1) if batch_first else input
        p = _gather_params(params, has_biases)
        out, finals = _rnn_impl(cell, x, p, hx.unbind(0), num_layers, dropout_p, train,
                                bidirectional)
        results = (out, torch.stack(finals, 0))
        del out, finals
        if batch_first:
            results[0].transpose_(0, 1)
        return results
    return rnn


def _use_mkldnn(input, params, hx) -> bool:
    if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
        return False
    return (input.dtype == torch.float32 and input.numel() != 0)  # bf16/fp16: device checks


def _mkldnn_lstm(input, hx, params, has_biases, num_layers, dropout_p, train, bidirectional,
                 batch_first):
    stride = 4 if has_biases else 2
    x = input.transpose(0, 1) if batch_first else input
    x = x.contiguous()
    h, c = hx[0].contiguous(), hx[1].contiguous()
    hidden_size = h.size(2)
    dirs = 2 if bidirectional else 1
    layer_input = x  # ``input`` stays alive in mkldnn_rnn until it returns
    layer_output = [None] * dirs
    layer_hy = [None] * (num_layers * dirs)
    layer_cy = [None] * (num_layers * dirs)
    for layer in range(num_layers):
        for direction in range(dirs):
            index = layer * dirs + direction
            w = params[index * stride:(index + 1) * stride]
            b0 = w[2] if has_biases else torch.zeros(w[0].shape, dtype=w[0].dtype,
                                                     device=w[0].device)
            b1 = w[3] if has_biases else torch.zeros(w[1].shape, dtype=w[1].dtype,
                                                     device=w[1].device)
            outputs = aten.mkldnn_rnn_layer.default(
                layer_input, w[0], w[1], b0, b1, h[index], c[index], direction > 0, [],
                2, hidden_size, num_layers, has_biases, bidirectional, batch_first, train)
            layer_output[direction] = outputs[0]
            layer_hy[index] = outputs[1]
            layer_cy[index] = outputs[2]
            del outputs, b0, b1
        layer_input = layer_output[0] if dirs == 1 else torch.cat(layer_output, -1)
        if dropout_p != 0 and train and layer < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout_p, True)
    output = layer_input
    del layer_input
    hy = torch.stack(layer_hy, 0)
    cy = torch.stack(layer_cy, 0)
    if batch_first:
        output = output.transpose(0, 1)
    return output, hy, cy


def lstm(input, hx, params, has_biases, num_layers, dropout_p, train, bidirectional,
         batch_first):
    has_projections = hx[0].size(2) != hx[1].size(2)
    if _use_mkldnn(input, params, hx) and not has_projections:
        return _mkldnn_lstm(input, hx, params, has_biases, num_layers, dropout_p, train,
                            bidirectional, batch_first)
    x = input.transpose(0, 1) if batch_first else input
    p = _gather_params(params, has_biases, has_projections)
    layer_hx, layer_cx = hx[0].unbind(0), hx[1].unbind(0)
    hiddens = [(layer_hx[i], layer_cx[i]) for i in range(len(layer_hx))]
    out, finals = _rnn_impl(_lstm_cell, x, p, hiddens, num_layers, dropout_p, train,
                            bidirectional)
    hy = [f[0] for f in finals]
    cy = [f[1] for f in finals]
    results = (out, torch.stack(hy, 0), torch.stack(cy, 0))
    if batch_first:
        results = (results[0].transpose(0, 1), results[1], results[2])
    return results


_PORTS = {
    "lstm": lstm,
    "gru": _one_hidden_rnn(_gru_cell),
    "rnn_tanh": _one_hidden_rnn(_simple_cell(torch.tanh)),
    "rnn_relu": _one_hidden_rnn(_simple_cell(torch.relu)),
}


def _meta_only(name, port):
    original = getattr(torch._C._VariableFunctions, name)

    def call(*args, **kwargs):
        # packed sequences (the data/batch_sizes overload) and real tensors: torch's own
        if len(args) > 1 and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.int64:
            return original(*args, **kwargs)
        first = args[0]
        if not first.is_meta:
            return original(*args, **kwargs)
        with origin(name):
            return port(*args, **kwargs)
    return call




# ---------------------------------------------------------------- SDPA (attention.cpp)
_ORIGINAL_SDPA = torch._C._nn.scaled_dot_product_attention
FLASH = 1  # sdp::SDPBackend::flash_attention


def _convert_boolean_attn_mask(mask: Any, dtype: torch.dtype) -> Any:
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.where(mask, 0.0, torch.scalar_tensor(float("-inf"), dtype=dtype,
                                                      device=mask.device))


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    with origin("scaled_dot_product_attention"):
        return _sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    if not query.is_meta:
        return _ORIGINAL_SDPA(query, key, value, attn_mask, dropout_p, is_causal, scale=scale,
                              enable_gqa=enable_gqa)
    choice = cpu_sdp_choice((query, key, value, attn_mask, dropout_p, is_causal),
                            {"scale": scale, "enable_gqa": enable_gqa})
    if choice != FLASH:
        return _ORIGINAL_SDPA(query, key, value, attn_mask, dropout_p, is_causal, scale=scale,
                              enable_gqa=enable_gqa)
    mask = _convert_boolean_attn_mask(attn_mask, query.dtype)
    return aten._scaled_dot_product_flash_attention_for_cpu.default(
        query, key, value, dropout_p, is_causal, attn_mask=mask, scale=scale)[0]


@contextmanager
def as_cpu() -> Iterator[None]:
    """While tracing on meta, take the CPU's kernels (see the module docstring): the RNN
    ports replace ``torch._VF``'s entries, SDPA asks the CPU's backend selector, and the
    transformer fast path accepts meta tensors (torch reads the private backend's name
    from this attribute on every call). Convolutions with string padding are marked with
    their origin (ORIGIN)."""
    import torch.nn.functional as nnf
    import torch.utils.backend_registration as registration

    saved_name = registration._privateuse1_backend_name
    saved_sdpa = nnf.scaled_dot_product_attention
    saved_convs = {name: getattr(nnf, name) for name in _CONVS}
    for name, original in saved_convs.items():
        setattr(nnf, name, _string_padding_conv(original))
    for name, port in _PORTS.items():
        setattr(_VF, name, _meta_only(name, port))
    registration._privateuse1_backend_name = "meta"
    nnf.scaled_dot_product_attention = sdpa
    torch._C._nn.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        registration._privateuse1_backend_name = saved_name
        nnf.scaled_dot_product_attention = saved_sdpa
        for name, original in saved_convs.items():
            setattr(nnf, name, original)
        torch._C._nn.scaled_dot_product_attention = _ORIGINAL_SDPA
        for name in _PORTS:
            _VF.__dict__.pop(name, None)


def _string_padding_conv(original: Any) -> Any:
    """F.convNd, with the ops of a call with string padding (``padding="same"``) marked as
    coming from ``_convolution_mode``, which is what TorchScript (and fvcore) sees."""
    def conv(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
             dilation: Any = 1, groups: int = 1) -> Any:
        if isinstance(padding, str):
            with origin("_convolution_mode"):
                return original(input, weight, bias, stride, padding, dilation, groups)
        return original(input, weight, bias, stride, padding, dilation, groups)
    return conv


_CONVS = ("conv1d", "conv2d", "conv3d")


def cpu_outputs(func: Any, args: Any, out: Any) -> Any:
    """An op's meta output as the CPU kernel returns it, where the two differ: batch
    norm at inference saves no statistics on the CPU (empty tensors), where the meta
    kernel returns per-channel ones."""
    if func is aten.native_batch_norm.default and not args[5]:
        empty = out[1].new_empty((0,))
        return out[0], empty, empty.new_empty((0,))
    return out


# ---------------------------------------------------------------- meta kernels
def _good_ld(d: int) -> int:
    ld = -(-d // 16) * 16
    return ld + 16 if ld % 256 == 0 else ld


def _pages(n: int) -> int:
    return -(-n // 4096) * 4096


def mkldnn_lstm_workspace_bytes(steps: int, batch: int, features: int, hidden: int) -> int:
    """oneDNN's LSTM forward-training workspace for one layer and direction, fp32, in
    bytes (fitted on 12 shapes of torch 2.13's and 2.14's oneDNN: gates, hidden states and
    five state buffers, each rounded up to 4 KiB pages; leading dimensions padded to 16,
    and by 16 more at a multiple of 256)."""
    states = 2 * (steps + 1) * batch
    return (_pages(steps * batch * _good_ld(4 * hidden) * 4)
            + _pages(steps * batch * _good_ld(hidden) * 4)
            + 3 * _pages(states * _good_ld(max(features, hidden)) * 4)
            + 2 * _pages(states * hidden * 4))


def mkldnn_rnn_layer_meta(input, w0, w1, w2, w3, hx, cx, reverse, batch_sizes, mode,
                          hidden_size, num_layers, has_biases, bidirectional, batch_first,
                          train):
    out = aten.mkldnn_rnn_layer.default(input, w0, w1, w2, w3, hx, cx, reverse, batch_sizes,
                                        mode, hidden_size, num_layers, has_biases,
                                        bidirectional, batch_first, train)
    if not torch.is_grad_enabled() or input.dtype != torch.float32:
        return out
    T, N = input.shape[0], input.shape[1]  # mkldnn_rnn passes a time-major input
    ws = torch.empty(mkldnn_lstm_workspace_bytes(T, N, input.shape[2], hidden_size),
                     dtype=torch.uint8, device="meta")
    return (*out[:3], ws)


def transform_bias_rescale_qkv_meta(qkv, qkv_bias, num_heads):
    B, T, D3 = qkv.shape
    D = D3 // 3
    q_k_v = torch.empty((3, B, num_heads, T, D // num_heads), dtype=qkv.dtype, device="meta")
    return q_k_v[0], q_k_v[1], q_k_v[2]
