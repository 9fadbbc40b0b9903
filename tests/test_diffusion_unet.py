"""ADM UNet: guided-diffusion keys and shapes, numerics against the reference, flag errors."""

import json

import numpy as np
import pytest
import torch
from diffusion_fixtures import fixture_path, small_reference, small_state_dict

from egg_cli.diffusion import ADM256_FLAGS, UNetConfig, UNetModel
from egg_cli.diffusion.checkpoint import load_weights
from egg_cli.errors import EggError


def test_adm256_state_dict_matches_manifest_key_for_key_and_shape_for_shape():
    manifest = json.loads(fixture_path("adm256_uncond_manifest.json").read_text())
    with torch.device("meta"):
        model = UNetModel(UNetConfig.from_flags(manifest["config"]))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(manifest["state_dict"])
    assert shapes == manifest["state_dict"]
    assert sum(int(np.prod(s)) for s in shapes.values()) == 552_814_086


def test_adm256_flags_constant_agrees_with_manifest_config():
    manifest = json.loads(fixture_path("adm256_uncond_manifest.json").read_text())
    for key, value in ADM256_FLAGS.items():
        if key in manifest["config"]:
            assert manifest["config"][key] == value, key


def test_small_reference_raw_output_reproduced_to_float32_precision():
    meta, arrays = small_reference()
    model = UNetModel(UNetConfig.from_flags(meta["config"]))
    model.load_state_dict(small_state_dict(arrays), strict=True)
    with torch.no_grad():
        out = model(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["t_raw"]))
    ref = torch.from_numpy(arrays["out_raw"])
    assert out.shape == ref.shape == (2, 6, 32, 32)
    assert (out - ref).abs().max().item() < 1e-5
    assert ref.abs().max().item() > 0.1  # the reference is not trivially zero


def test_checkpoint_that_does_not_fit_flags_lists_differences_in_one_line():
    meta, arrays = small_reference()
    flags = dict(meta["config"], learn_sigma=False)
    with torch.device("meta"):
        model = UNetModel(UNetConfig.from_flags(flags))
    state = small_state_dict(arrays)
    del state["time_embed.0.bias"]
    state["label_emb.weight"] = torch.zeros(10, 128)
    with pytest.raises(EggError) as err:
        load_weights(model, state, "small.pt", "learn_sigma=False")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("checkpoint small.pt does not fit the UNet flags (learn_sigma=False): ")
    assert "1 missing keys: time_embed.0.bias" in message
    assert "1 unexpected keys: label_emb.weight" in message
    assert "2 shape mismatches (file vs flags): out.2.weight (6, 32, 3, 3) vs (3, 32, 3, 3), out.2.bias (6,) vs (3,)" in message


@pytest.mark.parametrize(
    "variant",
    [
        dict(use_new_attention_order=True),
        dict(resblock_updown=False, use_scale_shift_norm=False),
        dict(class_cond=True, num_classes=3),
    ],
)
def test_unet_variants_run_and_keep_shape(variant):
    cfg = UNetConfig.from_flags(
        dict(
            image_size=16,
            num_channels=32,
            channel_mult="1,2",
            attention_resolutions="8",
            num_head_channels=16,
            in_channels=1,
            learn_sigma=True,
            **variant,
        )
    )
    model = UNetModel(cfg)
    # make the zero-initialized output layers non-zero so the output depends on the whole network
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.dim() > 1 else None
    x = torch.randn(2, 1, 16, 16)
    y = torch.tensor([0, 2]) if variant.get("class_cond") else None
    out = model(x, torch.tensor([3, 900]), y)
    assert out.shape == (2, 2, 16, 16)
    assert out[0].sub(out[1]).abs().max() > 1e-4
    if variant.get("resblock_updown") is False:
        assert "input_blocks.2.0.op.weight" in model.state_dict()
        assert "output_blocks.1.2.conv.weight" in model.state_dict()  # res, attention, upsample


def test_bad_flags_raise_egg_error_naming_the_flag():
    with pytest.raises(EggError, match="channel_mult"):
        UNetConfig.from_flags(dict(image_size=48, channel_mult=""))
    with pytest.raises(EggError, match="image_size=30"):
        UNetConfig.from_flags(dict(image_size=30, channel_mult="1,2,2"))
