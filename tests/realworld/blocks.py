"""Hand-written blocks for the paths the model zoos reach only deep inside: attention
(nn.MultiheadAttention's fast and slow paths, SDPA), a weight used without calling its
module, recurrent layers, nn.TransformerEncoder in eval and in training, a small U-Net,
and odd inputs and outputs. torch only, so the main suite runs them too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .corpus import Case


class SelfAttention(nn.Module):
    """nn.MultiheadAttention on one sequence. Batch-first without weights, in eval and
    without autograd, is the fast path (aten._native_multi_head_attention); sequence-first
    with averaged weights is the slow path (F.multi_head_attention_forward, bmm)."""

    def __init__(self, dim: int = 64, heads: int = 4, batch_first: bool = True,
                 need_weights: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=batch_first)
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


class SDPAttention(nn.Module):
    """Causal self-attention written with F.scaled_dot_product_attention."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape  # N x S x D
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each N x H x S x D/H
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, s, d))


class FunctionalLinear(nn.Module):
    """Uses ``inner``'s weight and bias through F.linear and never calls ``inner``
    (as torchvision's Swin and nn.MultiheadAttention's out_proj do)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(32, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.linear(x, self.inner.weight, self.inner.bias))


class UnusedBranch(nn.Module):
    """An auxiliary head the forward never runs (as inception_v3's AuxLogits in eval)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(32, 32)
        self.aux = nn.Linear(32, 10)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Two-level U-Net: skip connections by concatenation, one transposed-convolution
    and one bilinear-upsampling decoder stage."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1, self.enc2 = _conv_block(3, 8), _conv_block(8, 16)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _conv_block(16, 32)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = _conv_block(32, 16)
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"),
                                 nn.Conv2d(16, 8, 1))
        self.dec1 = _conv_block(16, 8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # N x 8 x H x W
        e2 = self.enc2(self.pool(e1))  # N x 16 x H/2 x W/2
        b = self.bottleneck(self.pool(e2))  # N x 32 x H/4 x W/4
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))  # N x 16 x H/2 x W/2
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))  # N x 8 x H x W
        return self.head(d1)


class DictInput(nn.Module):
    """One positional argument, a dict of tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 8, 3)
        self.meta = nn.Linear(5, 8)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = self.image(batch["image"]).mean(dim=(2, 3))
        return pooled + self.meta(batch["meta"])


class KeywordOnly(nn.Module):
    """A keyword-only tensor input beside a positional one."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * scale


class TupleDictOutput(nn.Module):
    """Returns a dict holding a tensor and a tuple of tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.cls = nn.Linear(32, 10)
        self.box = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        h = torch.relu(self.stem(x))
        return {"features": h, "heads": (self.cls(h), self.box(h))}


class TokenClassifier(nn.Module):
    """Integer token ids through nn.Embedding, mean-pooled into a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens).mean(dim=1))


class MaskingOps(nn.Module):
    """torch.where against a Python scalar, a lower-triangular mask (torch.tril) on a
    score matrix, and im2col (F.unfold) followed by a matmul: a convolution by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.kernel = nn.Parameter(torch.randn(6, 3 * 3 * 3))

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.proj(x)  # N x S x 8
        h = torch.where(h > 0, h, 0.0)
        scores = torch.tril(h @ h.transpose(1, 2))  # N x S x S
        cols = F.unfold(image, kernel_size=3, padding=1)  # N x 27 x HW
        return scores, self.kernel @ cols  # N x 6 x HW


def _randn(*shape: int):
    return lambda: torch.randn(*shape)


def _encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


_RNNS = [
    Case(f"block:{cls.__name__.lower()}{suffix}",
         lambda cls=cls, bi=bi: cls(32, 64, num_layers=2, batch_first=True, bidirectional=bi),
         _randn(2, 20, 32))
    for cls in (nn.LSTM, nn.GRU, nn.RNN)
    for bi, suffix in ((False, ""), (True, "_bidirectional"))
]

BLOCKS: list[Case] = [
    Case("block:mha_fast_path", SelfAttention, _randn(2, 10, 64)),
    Case("block:mha_slow_path",
         lambda: SelfAttention(batch_first=False, need_weights=True), _randn(10, 2, 64)),
    Case("block:sdpa_attention", SDPAttention, _randn(2, 10, 64)),
    Case("block:functional_linear", FunctionalLinear, _randn(4, 32)),
    Case("block:unused_branch", UnusedBranch, _randn(4, 32)),
    *_RNNS,
    Case("block:transformer_encoder", _encoder, _randn(2, 10, 64)),
    Case("block:transformer_encoder_train", _encoder, _randn(2, 10, 64), train=True),
    Case("block:unet", UNet, _randn(1, 3, 32, 32)),
    Case("block:dict_input", DictInput,
         lambda: ({"image": torch.randn(2, 3, 16, 16), "meta": torch.randn(2, 5)},)),
    Case("block:keyword_only", KeywordOnly,
         lambda: {"x": torch.randn(2, 16), "scale": torch.randn(2, 16)},
         fvcore_cannot_trace="fvcore passes inputs positionally; scale is keyword-only"),
    Case("block:tuple_dict_output", TupleDictOutput, _randn(2, 16)),
    Case("block:token_embedding", TokenClassifier, lambda: torch.randint(0, 100, (2, 12))),
    Case("block:masking_ops", MaskingOps,
         lambda: (torch.randn(2, 6, 8), torch.randn(2, 3, 8, 8)),
         fvcore_quirk=("fvcore's matmul handle drops the broadcast batch of a 2-d @ 3-d "
                       "matmul (it counts one of the two batch elements)", 1, 20736)),
]
