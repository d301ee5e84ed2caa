"""The timm models in the corpus: a deterministic sample in which every timm family
(the module that registers the model, e.g. ``timm.models.resnet``) is represented.

The rule, applied to timm 1.0.31's registry (``test_*`` models excluded):

* a family of n models gets ``1 + n // 12`` of them (one for a small family, up to
  14 for ``vision_transformer``);
* the first is the family's smallest model by parameter count; the others are taken
  round-robin over the family's name groups (``resnet``, ``seresnext``, ``eca``, ...),
  the smallest of each first, skipping a model that differs from one already taken
  only by its resolution (``_224``/``_384``) and any over 60M parameters;
* each runs at the smallest of 64, 96, 128, 160, 192, 224, 256 (then its default)
  at which it builds and runs, with ``img_size=`` where the model takes one.

Computing parameter counts needs every model built (on meta, about 2 minutes), so the
result is kept here as data; ``python -m tests.realworld.timm_sample`` applies the rule
again and prints the table (after a timm upgrade, paste it in). The corpus test checks
that every family of the installed timm is in it.
"""

from __future__ import annotations

import collections
import re
import warnings
from typing import Any

#: (model name, input height = width, extra create_model arguments), by family.
SAMPLE: list[tuple[str, int, dict[str, Any]]] = [
    ('beit_base_patch16_224', 64, {'img_size': 64}),
    ('halonet_h1', 256, {'img_size': 256}),
    ('halonet26t', 256, {'img_size': 256}),
    ('mobileone_s1', 64, {'img_size': 64}),
    ('mobileone_s0', 64, {'img_size': 64}),
    ('gernet_s', 64, {'img_size': 64}),
    ('repvgg_a0', 64, {'img_size': 64}),
    ('regnetz_b16', 64, {'img_size': 64}),
    ('cait_xxs24_224', 64, {'img_size': 64}),
    ('coat_tiny', 64, {'img_size': 64}),
    ('convit_tiny', 64, {'img_size': 64}),
    ('convmixer_768_32', 64, {}),
    ('convnext_zepto_rms', 64, {}),
    ('convnext_zepto_rms_ols', 64, {}),
    ('convnextv2_atto', 64, {}),
    ('cpubone_nano', 64, {}),
    ('crossvit_tiny_240', 64, {}),
    ('csatv2', 64, {}),
    ('cs3darknet_focus_s', 64, {}),
    ('cs3darknet_s', 64, {}),
    ('cspnext_tiny', 64, {}),
    ('davit_tiny', 64, {}),
    ('deepseek_vit_412m', 224, {'img_size': 224}),
    ('deit_tiny_patch16_224', 64, {'img_size': 64}),
    ('deit_tiny_distilled_patch16_224', 64, {'img_size': 64}),
    ('densenet121', 64, {}),
    ('dla46x_c', 64, {}),
    ('dla46_c', 64, {}),
    ('dpn48b', 64, {}),
    ('edgenext_xx_small', 64, {}),
    ('efficientformer_l1', 224, {'img_size': 224}),
    ('efficientformerv2_s0', 64, {'img_size': 64}),
    ('mobilenetv2_035', 64, {}),
    ('mobilenetv1_100', 64, {}),
    ('mnasnet_small', 64, {}),
    ('tinynet_e', 64, {}),
    ('semnasnet_050', 64, {}),
    ('mobilenet_edgetpu_100', 64, {}),
    ('mixnet_s', 64, {}),
    ('tf_mixnet_s', 64, {}),
    ('spnasnet_100', 64, {}),
    ('efficientnet_lite0', 64, {}),
    ('efficientvim_m1', 64, {}),
    ('efficientvit_b0', 64, {}),
    ('efficientvit_m0', 64, {'img_size': 64}),
    ('vit_tiny_patch16_dinov3_qkvb', 64, {'img_size': 64}),
    ('vit_pe_spatial_tiny_patch16_512', 64, {'img_size': 64}),
    ('eva02_tiny_patch14_224', 64, {'img_size': 64}),
    ('vit_pe_core_tiny_patch16_384', 64, {'img_size': 64}),
    ('eva02_small_patch14_224', 64, {'img_size': 64}),
    ('vit_small_patch16_dinov3', 64, {'img_size': 64}),
    ('fasternet_t0', 64, {}),
    ('fastvit_t8', 64, {}),
    ('fastvit_t12', 64, {}),
    ('focalnet_tiny_srf', 64, {}),
    ('focalnet_tiny_lrf', 64, {}),
    ('gcvit_xxtiny', 64, {'img_size': 64}),
    ('gemma4_vit_167m', 64, {'img_size': 64}),
    ('ghostnet_050', 64, {}),
    ('hardcorenas_b', 64, {}),
    ('hgnetv2_b0', 64, {}),
    ('hiera_tiny_224', 64, {'img_size': 64}),
    ('sam2_hiera_tiny', 64, {}),
    ('hrnet_w18_small', 64, {}),
    ('iformer_t', 64, {}),
    ('inception_next_atto', 64, {}),
    ('inception_resnet_v2', 96, {}),
    ('inception_v3', 96, {}),
    ('inception_v4', 96, {}),
    ('lcnetv2_small', 64, {}),
    ('levit_128s', 64, {'img_size': 64}),
    ('levit_conv_128s', 64, {'img_size': 64}),
    ('lowformer_b0', 64, {}),
    ('mambaout_femto', 64, {}),
    ('maxvit_pico_rw_256', 64, {'img_size': 64}),
    ('maxvit_rmlp_pico_rw_256', 64, {'img_size': 64}),
    ('coatnet_pico_rw_224', 64, {'img_size': 64}),
    ('coatnext_nano_rw_224', 64, {'img_size': 64}),
    ('maxxvit_rmlp_nano_rw_256', 64, {'img_size': 64}),
    ('poolformerv2_s12', 64, {}),
    ('poolformerv2_s24', 64, {}),
    ('gmlp_ti16_224', 64, {'img_size': 64}),
    ('gmlp_s16_224', 64, {'img_size': 64}),
    ('mobilenetv3_small_050', 64, {}),
    ('mobilenetv4_conv_small_035', 64, {}),
    ('lcnet_035', 64, {}),
    ('mobilenetv5_base', 64, {}),
    ('mobilevit_xxs', 64, {'img_size': 64}),
    ('mvitv2_tiny', 64, {'img_size': 64}),
    ('naflexvit_base_patch16_parfac_gap', 64, {'img_size': 64}),
    ('nasnetalarge', 64, {}),
    ('nest_tiny', 64, {'img_size': 64}),
    ('nextvit_small', 64, {}),
    ('nf_regnet_b0', 64, {}),
    ('nf_regnet_b1', 64, {}),
    ('eca_nfnet_l0', 64, {}),
    ('pit_ti_224', 64, {'img_size': 64}),
    ('pnasnet5large', 64, {}),
    ('pvt_v2_b0', 64, {}),
    ('qwen3_vit_88m', 64, {'img_size': 64}),
    ('rdnet_tiny', 64, {}),
    ('regnetx_002', 64, {}),
    ('regnetx_004_tv', 64, {}),
    ('regnety_002', 64, {}),
    ('regnetz_005', 64, {}),
    ('repghostnet_050', 64, {}),
    ('repvit_m1', 64, {'img_size': 64}),
    ('res2next50', 64, {}),
    ('resnest14d', 64, {}),
    ('resnet10t', 64, {}),
    ('resnet14t', 64, {}),
    ('resnetblur18', 64, {}),
    ('seresnet18', 64, {}),
    ('ecaresnext26t_32x4d', 64, {}),
    ('ecaresnet26t', 64, {}),
    ('seresnext26t_32x4d', 64, {}),
    ('resnetv2_18', 64, {}),
    ('resnetv2_18d', 64, {}),
    ('rexnet_100', 64, {}),
    ('selecsls42', 64, {}),
    ('legacy_seresnet18', 64, {}),
    ('sequencer2d_s', 64, {'img_size': 64}),
    ('shvit_s1', 64, {}),
    ('skresnet18', 64, {}),
    ('starnet_s050', 64, {}),
    ('swiftformer_xs', 64, {'img_size': 64}),
    ('swin_tiny_patch4_window7_224', 64, {'img_size': 64}),
    ('swinv2_tiny_window16_256', 64, {'img_size': 64}),
    ('swinv2_tiny_window8_256', 64, {'img_size': 64}),
    ('swinv2_cr_tiny_224', 64, {'img_size': 64}),
    ('swinv2_cr_tiny_ns_224', 64, {'img_size': 64}),
    ('tiny_vit_5m_224', 64, {}),
    ('tnt_s_legacy_patch16_224', 64, {'img_size': 64}),
    ('tresnet_m', 64, {}),
    ('twins_svt_small', 64, {'img_size': 64}),
    ('vgg11', 64, {}),
    ('visformer_tiny', 64, {'img_size': 64}),
    ('vit_tiny_patch16_224', 64, {'img_size': 64}),
    ('vit_xsmall_patch16_clip_224', 64, {'img_size': 64}),
    ('flexivit_small', 64, {'img_size': 64}),
    ('vit_wee_patch16_reg1_gap_256', 64, {'img_size': 64}),
    ('vit_dwee_patch16_reg1_gap_256', 64, {'img_size': 64}),
    ('vit_dpwee_patch16_reg1_gap_256', 64, {'img_size': 64}),
    ('vit_pwee_patch16_reg1_gap_256', 64, {'img_size': 64}),
    ('vit_small_patch8_224', 64, {'img_size': 64}),
    ('vit_small_patch16_224', 64, {'img_size': 64}),
    ('vit_small_patch14_dinov2', 64, {'img_size': 64}),
    ('vit_small_patch14_reg4_dinov2', 64, {'img_size': 64}),
    ('vit_little_patch16_reg1_gap_256', 64, {'img_size': 64}),
    ('vit_little_patch16_reg4_gap_256', 64, {'img_size': 64}),
    ('vit_dlittle_patch16_reg1_gap_256', 64, {'img_size': 64}),
    ('vit_tiny_r_s16_p8_224', 64, {'img_size': 64}),
    ('vit_small_r26_s32_224', 64, {'img_size': 64}),
    ('vit_srelpos_small_patch16_224', 64, {'img_size': 64}),
    ('vit_relpos_small_patch16_rpn_224', 64, {'img_size': 64}),
    ('samvit_base_patch16_224', 64, {'img_size': 64}),
    ('vitamin_small_224', 64, {'img_size': 64}),
    ('volo_d1_224', 64, {'img_size': 64}),
    ('ese_vovnet19b_slim_dw', 64, {}),
    ('legacy_xception', 64, {}),
    ('xception41p', 64, {}),
    ('xcit_nano_12_p8_224', 64, {'img_size': 64}),
    ('xcit_nano_12_p16_224', 64, {'img_size': 64}),
    ('xcit_tiny_12_p8_224', 64, {'img_size': 64}),
]

_SIZES = (64, 96, 128, 160, 192, 224, 256)
_EXTRA_MAX_PARAMS = 60_000_000


def _params_on_meta(name: str) -> int:
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _resolution_free(name: str) -> str:
    return re.sub(r"_\d{3}(?=_|$)", "", name)


def sample_family(names: list[str], params: dict[str, int]) -> list[str]:
    """The rule above for one family's model names."""
    names = sorted((n for n in names if not n.startswith("test_")),
                   key=lambda n: (params[n], n))
    want = 1 + len(names) // 12
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for name in names:
        groups[re.match(r"[a-z]*", name).group()].append(name)
    chosen = [names[0]]
    seen = {_resolution_free(names[0])}
    order = sorted(groups.values(), key=lambda g: (params[g[0]], g[0]))
    while len(chosen) < want and any(order):
        for group in order:
            while group and (group[0] in chosen or _resolution_free(group[0]) in seen
                             or params[group[0]] > _EXTRA_MAX_PARAMS):
                group.pop(0)
            if group and len(chosen) < want:
                chosen.append(group.pop(0))
                seen.add(_resolution_free(chosen[-1]))
    return chosen


def smallest_input(name: str) -> tuple[int, dict[str, Any]]:
    """The smallest size in _SIZES at which the model builds and runs on meta."""
    import timm
    import torch

    default = timm.get_pretrained_cfg(name).input_size[-1]
    for size in (*_SIZES, default):
        for kwargs in ({"img_size": size}, {}):
            try:
                with torch.device("meta"), torch.no_grad():
                    model = timm.create_model(name, pretrained=False, **kwargs).eval()
                    model(torch.empty(1, 3, size, size))
                return size, kwargs
            except Exception:
                continue
    return default, {}


def build_sample() -> list[tuple[str, int, dict[str, Any]]]:
    import timm

    warnings.simplefilter("ignore")
    rows = []
    for family in sorted(timm.list_modules()):
        names = timm.list_models(module=family)
        params = {n: _params_on_meta(n) for n in names if not n.startswith("test_")}
        for name in sample_family(names, params):
            rows.append((name, *smallest_input(name)))
    return rows


if __name__ == "__main__":
    print("SAMPLE: list[tuple[str, int, dict[str, Any]]] = [")
    for row in build_sample():
        print(f"    {row!r},")
    print("]")
