"""Corpus cases from torchvision, timm and transformers, built from code and config
only (nothing is downloaded), at small inputs to fit the corpus stage's CPU budget.

What an oracle cannot judge is data here, each with its reason: ``CANNOT_TRACE``
(archstat cannot trace the model on meta: an expected failure of every archstat
check), ``FVCORE_CANNOT_TRACE`` (fvcore's TorchScript tracing fails) and
``FLOPS_COUNTED_TWICE`` (FlopCounterMode's per-module figures overlap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import timm
import torch
import torchvision
import transformers
from torch import nn

from .corpus import Case
from .timm_sample import SAMPLE

#: Models archstat cannot trace, by case id (none: the detectors' data-dependent box
#: selection runs for real on the CPU, see test_corpus.py).
CANNOT_TRACE: dict[str, str] = {}

#: Models fvcore cannot trace, by case id.
FVCORE_CANNOT_TRACE: dict[str, str] = {}

#: Models with a module registered under one top-level child and called from another:
#: FlopCounterMode counts its ops under both, so only totals are compared.
FLOPS_COUNTED_TWICE: dict[str, str] = {
    "timm:coat_tiny": "cpe1-4 and crpe1-4 are top-level children that serial_blocks1-4 "
                      "and parallel_blocks call",
}


#: Models where fvcore's own arithmetic differs from what it means to count, so that no
#: convention can equal it: the check asserts the difference is still there and within
#: the bound given (archstat minus fvcore, in fvcore flops).
FVCORE_QUIRKS: dict[str, tuple[str, int, int]] = {
    "timm:mvitv2_tiny": ("fvcore counts einsum through numpy's einsum_path, a float that "
                         "is not a whole count of multiply-adds", -100, 100),
    "torchvision:maxvit_t": ("fvcore counts einsum through numpy's einsum_path, a float "
                             "that is not a whole count of multiply-adds", -2000, 2000),
    "timm:samvit_base_patch16_224": ("fvcore counts einsum through numpy's einsum_path, a "
                                     "float that is not a whole count of multiply-adds",
                                     -2000, 2000),
    **dict.fromkeys(
        ["torchvision:maskrcnn_resnet50_fpn", "torchvision:maskrcnn_resnet50_fpn_v2"],
        ("mask pasting calls TorchScript-compiled helpers (prim::CallFunction in fvcore's "
         "graph), inside which fvcore counts nothing: their bilinear interpolations",
         1, 5_000_000)),
}


def _case(case_id: str, build: Callable[[], nn.Module], inputs: Callable[[], Any]) -> Case:
    return Case(case_id, build, inputs, cannot_trace=CANNOT_TRACE.get(case_id),
                fvcore_cannot_trace=FVCORE_CANNOT_TRACE.get(case_id),
                flops_counted_twice=FLOPS_COUNTED_TWICE.get(case_id),
                fvcore_quirk=FVCORE_QUIRKS.get(case_id))


# -- torchvision -------------------------------------------------------------------

#: Classification models run at 32x32 unless they need more: AlexNet's stem needs 63
#: pixels, inception_v3's 75, MaxViT's partition grid 224. ViTs are built for their
#: input size, 64 (vit_h_14: 56, a multiple of its patch), to attend over 4 to 16 patches.
_TV_SIZE = {"alexnet": 64, "inception_v3": 80, "maxvit_t": 224, "vit_b_16": 64,
            "vit_b_32": 64, "vit_h_14": 56, "vit_l_16": 64, "vit_l_32": 64}

#: The detectors resize their input themselves: R-CNN, RetinaNet and FCOS to 800
#: pixels unless told otherwise, the SSDs to their fixed 300 or 320.
_TV_DETECTION_RESIZE = {"min_size": 128, "max_size": 128}


def _tv_classifier(name: str) -> Case:
    size = _TV_SIZE.get(name, 32)
    config = {"image_size": size} if name.startswith("vit_") else {}
    if name in ("googlenet", "inception_v3"):
        config = {"init_weights": True}  # what weights=None picks, without its warning
    return _case(f"torchvision:{name}",
                 lambda: torchvision.models.get_model(name, weights=None, **config),
                 lambda: torch.randn(1, 3, size, size))


def torchvision_cases() -> list[Case]:
    """Every classification, detection and segmentation model in torchvision's registry."""
    models = torchvision.models
    cases = [_tv_classifier(name) for name in sorted(models.list_models(module=models))]
    for name in sorted(models.list_models(module=models.detection)):
        config = {} if name.startswith("ssd") else _TV_DETECTION_RESIZE
        cases.append(_case(
            f"torchvision:{name}",
            lambda name=name, config=config: models.get_model(
                name, weights=None, weights_backbone=None, **config),
            lambda: ([torch.rand(3, 128, 128)],)))
    for name in sorted(models.list_models(module=models.segmentation)):
        cases.append(_case(
            f"torchvision:{name}",
            lambda name=name: models.get_model(name, weights=None, weights_backbone=None),
            lambda: torch.randn(1, 3, 64, 64)))
    return cases


# -- timm ------------------------------------------------------------------------------

def timm_cases() -> list[Case]:
    """The deterministic sample of :mod:`.timm_sample`."""
    return [
        _case(f"timm:{name}",
              lambda name=name, config=config: timm.create_model(name, pretrained=False,
                                                                 **config),
              lambda size=size: torch.randn(1, 3, size, size))
        for name, size, config in SAMPLE
    ]


# -- transformers ------------------------------------------------------------------------

_SMALL = {"vocab_size": 1000, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
_BERTLIKE = {**_SMALL, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 128}
_DECODER = {**_BERTLIKE, "num_key_value_heads": 2, "max_position_embeddings": 64,
            "use_cache": False}
_SEQ2SEQ = {**_SMALL, "d_model": 64, "encoder_layers": 2, "decoder_layers": 2,
            "encoder_attention_heads": 4, "decoder_attention_heads": 4,
            "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "use_cache": False,
            "decoder_start_token_id": 1}


def _tokens(length: int = 16) -> torch.Tensor:
    return torch.randint(3, 1000, (2, length))


def _text(**extra: Callable[[], torch.Tensor]) -> Callable[[], dict[str, torch.Tensor]]:
    return lambda: {"input_ids": _tokens(), **{k: make() for k, make in extra.items()}}


#: name -> (config class, its small sizes, keyword inputs, from_config options)
_HF: dict[str, tuple[Any, dict[str, Any], Callable[[], Any], dict[str, Any]]] = {
    "bert": (transformers.BertConfig, {**_BERTLIKE, "max_position_embeddings": 64}, _text(), {}),
    "bert_attention_mask": (
        transformers.BertConfig, {**_BERTLIKE, "max_position_embeddings": 64},
        _text(attention_mask=lambda: torch.ones(2, 16, dtype=torch.int64)), {}),
    "roberta": (transformers.RobertaConfig,
                {**_BERTLIKE, "max_position_embeddings": 66, "pad_token_id": 1}, _text(), {}),
    "distilbert": (transformers.DistilBertConfig,
                   {**_SMALL, "dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128,
                    "max_position_embeddings": 64}, _text(), {}),
    "albert": (transformers.AlbertConfig, {**_BERTLIKE, "embedding_size": 32,
                                           "max_position_embeddings": 64}, _text(), {}),
    "gpt2": (transformers.GPT2Config,
             {**_SMALL, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64,
              "use_cache": False}, _text(), {}),
    "gpt2_eager": (transformers.GPT2Config,
                   {**_SMALL, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64,
                    "use_cache": False}, _text(), {"attn_implementation": "eager"}),
    "llama": (transformers.LlamaConfig, _DECODER, _text(), {}),
    "mistral": (transformers.MistralConfig, {**_DECODER, "sliding_window": 8}, _text(), {}),
    "qwen2": (transformers.Qwen2Config, _DECODER, _text(), {}),
    "mixtral": (transformers.MixtralConfig,
                {**_DECODER, "num_local_experts": 4, "num_experts_per_tok": 2}, _text(), {}),
    "t5": (transformers.T5Config,
           {**_SMALL, "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2,
            "num_heads": 4, "use_cache": False, "decoder_start_token_id": 0},
           _text(decoder_input_ids=lambda: _tokens(8)), {}),
    "bart": (transformers.BartConfig, {**_SEQ2SEQ, "max_position_embeddings": 64},
             _text(), {}),
    "whisper": (transformers.WhisperConfig,
                {**_SEQ2SEQ, "num_mel_bins": 16, "max_source_positions": 32,
                 "max_target_positions": 32},
                lambda: {"input_features": torch.randn(2, 16, 64),
                         "decoder_input_ids": _tokens(8)}, {}),
    "wav2vec2": (transformers.Wav2Vec2Config,
                 {**_BERTLIKE, "vocab_size": 32, "conv_dim": (32, 32), "conv_stride": (5, 2),
                  "conv_kernel": (10, 3), "num_conv_pos_embeddings": 16,
                  "num_conv_pos_embedding_groups": 4},
                 lambda: {"input_values": torch.randn(2, 1600)}, {}),
    "vit": (transformers.ViTConfig, {**_BERTLIKE, "image_size": 32, "patch_size": 8},
            lambda: {"pixel_values": torch.randn(2, 3, 32, 32)}, {}),
    "clip": (transformers.CLIPConfig,
             {"projection_dim": 32,
              "text_config": {**_BERTLIKE, "max_position_embeddings": 32},
              "vision_config": {"hidden_size": 64, "intermediate_size": 128,
                                "num_hidden_layers": 2, "num_attention_heads": 4,
                                "image_size": 32, "patch_size": 8}},
             lambda: {"input_ids": _tokens(), "pixel_values": torch.randn(2, 3, 32, 32)}, {}),
}


def transformers_cases() -> list[Case]:
    """Base models (``AutoModel``) of each architecture above, built from a small config,
    fed token ids (int64) or features as keyword inputs."""
    return [
        _case(f"transformers:{name}",
              lambda config=config, sizes=sizes, options=options: transformers.AutoModel
              .from_config(config(**sizes), **options),
              inputs)
        for name, (config, sizes, inputs, options) in _HF.items()
    ]
