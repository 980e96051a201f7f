"""Backbones: registry, ONNX export that matches PyTorch, preprocessing (crop, pad), ResNet-50 loading, onnx:PATH."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lookalike.backbone.models import ResNet50Trunk, efficientnet_lite_features
from lookalike.backbone.registry import REGISTRY, SUBJECT_MARGIN, get_spec
from lookalike.backbone.runtime import (
    FeatureExtractor,
    border_colour,
    load_backbone,
    subject_box,
)
from lookalike.errors import BackboneError

from imagegen import make_image, make_product, studio_photo


def test_registry_names_and_preprocessing():
    assert {"efficientnet-lite0", "efficientnet-lite2", "resnet50"} <= set(REGISTRY)
    lite0 = get_spec("efficientnet-lite0")
    assert lite0.preprocessing.input_size == 224 and lite0.preprocessing.mean == (0.5, 0.5, 0.5)
    assert get_spec("resnet50").num_features == 2048
    with pytest.raises(BackboneError, match="unknown backbone"):
        get_spec("vgg16")


def test_exported_lite0_matches_pytorch_eager(extractor):
    assert extractor.num_features == 1280
    image = make_image("circles", 1)
    batch = extractor.prepare(image)[None]
    expected = efficientnet_lite_features("lite0", None)(torch.from_numpy(batch)).detach().numpy()
    assert np.allclose(extractor(batch), expected, atol=1e-4 * np.abs(expected).max())


def test_multiscale_lite0_export_matches_pytorch(models_dir):
    from lookalike.backbone.models import efficientnet_lite_multiscale

    backbone = load_backbone("efficientnet-lite0-multiscale", models_dir)
    assert backbone.num_features == get_spec("efficientnet-lite0-multiscale").num_features == 4864
    assert backbone.preprocessing.input_size == 112
    batch = np.stack([backbone.prepare(make_image(c, 3)) for c in ("circles", "checks")])
    expected = efficientnet_lite_multiscale("lite0", None)(torch.from_numpy(batch)).detach().numpy()
    assert np.allclose(backbone(batch), expected, atol=1e-4 * np.abs(expected).max())


def test_prepare_pads_to_square_with_the_pictures_border_colour_and_normalizes(extractor):
    background = (20, 40, 60)
    tall = Image.new("RGB", (40, 80), background)
    tall.paste((230, 10, 10), (8, 24, 32, 56))  # a red garment on a dark blue background
    x = extractor.prepare(tall)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert x[:, 112, 2] == pytest.approx((np.array(background) / 255 - 0.5) / 0.5, abs=1e-5)  # no white band
    assert x[:, 112, 112] == pytest.approx((np.array([230, 10, 10]) / 255 - 0.5) / 0.5, abs=1e-5)
    square = Image.new("RGB", (80, 80), background)  # the same photo taken square
    square.paste(tall, (20, 0))
    np.testing.assert_array_equal(extractor.prepare(square), x)
    np.testing.assert_array_equal(extractor.prepare(np.asarray(tall)), x)


def test_a_named_pad_colour_is_used_and_makes_another_model(extractor):
    white = FeatureExtractor(extractor.onnx_path, extractor.name,
                             dataclasses.replace(extractor.preprocessing, pad_color=(255, 255, 255)))
    x = white.prepare(Image.new("RGB", (50, 100), (0, 0, 0)))
    assert x[:, 112, 2] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)  # white padding -> +1 in [-1, 1]
    assert x[:, 112, 112] == pytest.approx([-1.0, -1.0, -1.0], abs=1e-5)  # black garment -> -1
    assert white.fingerprint != extractor.fingerprint  # other inputs, other features: caches and heads tell them apart
    assert white.fingerprint.startswith("efficientnet-lite0@")


def test_export_is_reused_not_repeated(models_dir, extractor):
    again = load_backbone("efficientnet-lite0", models_dir)
    assert again.fingerprint == extractor.fingerprint


def test_resnet50_loads_a_torchvision_style_weights_file(tmp_path):
    torch.manual_seed(0)
    state = ResNet50Trunk().state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)  # as torchvision saves
    weights = tmp_path / "resnet50-random.pth"
    torch.save(state, weights)
    backbone = load_backbone("resnet50", tmp_path / "models", weights=str(weights))
    assert backbone.num_features == 2048 and backbone.preprocessing.input_size == 224
    features = backbone(np.stack([backbone.prepare(make_image("checks", i)) for i in range(2)]))
    assert features.shape == (2, 2048) and np.isfinite(features).all()


def test_resnet50_weights_that_do_not_fit_are_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises((BackboneError, RuntimeError)):
        load_backbone("resnet50", tmp_path / "models", weights=str(bad))
    with pytest.raises(BackboneError, match="not found"):
        load_backbone("resnet50", tmp_path / "models", weights=str(tmp_path / "missing.pth"))


def test_external_onnx_backbone_with_sidecar(tmp_path, models_dir, extractor):
    model = tmp_path / "mine.onnx"
    shutil.copy(models_dir / "efficientnet-lite0" / "backbone.onnx", model)
    with pytest.raises(BackboneError, match="sidecar"):
        load_backbone(f"onnx:{model}", tmp_path)
    (tmp_path / "mine.onnx.json").write_text(json.dumps({"input_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3}))
    external = load_backbone(f"onnx:{model}", tmp_path)
    batch = external.prepare(make_image("stripes", 2))[None]
    assert np.allclose(external(batch), extractor(batch), atol=1e-5)
    assert external.preprocessing.pad_color is None  # the picture's border colour, unless the sidecar names one
    (tmp_path / "mine.onnx.json").write_text(json.dumps({"input_size": 224, "pad_color": [128, 128, 128]}))
    assert load_backbone(f"onnx:{model}", tmp_path).preprocessing.pad_color == (128, 128, 128)
    with pytest.raises(BackboneError, match="not found"):
        load_backbone(f"onnx:{tmp_path / 'nope.onnx'}", tmp_path)


def test_the_subject_box_holds_the_garment_and_a_margin_and_nothing_else():
    background = (236, 232, 228)
    garment = Image.new("RGB", (100, 100), background)
    garment.paste((40, 60, 150), (20, 10, 80, 90))  # a navy garment, 60 x 80, on the studio's background
    pixels = studio_photo(garment, (480, 640), 0.5)  # the 100 px square at 240 px: the garment at 144 x 192
    rows, columns = subject_box(pixels, border_colour(pixels))
    garment_rows, garment_columns = (320 - 120 + 24, 320 - 120 + 216), (240 - 120 + 48, 240 - 120 + 192)
    margin = round(SUBJECT_MARGIN * 192)
    expected = (garment_rows[0] - margin, garment_rows[1] + margin, garment_columns[0] - margin,
                garment_columns[1] + margin)
    box = (rows.start, rows.stop, columns.start, columns.stop)
    assert np.abs(np.subtract(box, expected)).max() <= 1  # the enlarged garment's edge blurs by a pixel


def test_a_picture_without_a_subject_apart_from_its_background_keeps_its_frame():
    rng = np.random.default_rng(3)
    busy = rng.integers(0, 256, (120, 90, 3), np.uint8)  # a busy background differs from its median everywhere
    plain = np.full((120, 90, 3), 200, np.uint8)
    faint = plain.copy()
    faint[30:90, 20:70] = 215  # a garment too close to its background's colour to tell apart
    speck = plain.copy()
    speck[5, 5] = 0  # one stray pixel is not a subject
    close_up = np.full((120, 90, 3), (40, 60, 150), np.uint8)  # a garment filling the frame but for a patch of wall
    close_up[:30, :25] = (235, 230, 220)
    for pixels in (busy, plain, faint, speck, close_up):
        assert subject_box(pixels, border_colour(pixels)) == (slice(0, 120), slice(0, 90))


def test_a_garment_photographed_from_further_away_gets_the_same_input(extractor):
    garment = make_product("dresses", 4, 160)
    near = extractor.prepare(studio_photo(garment, (480, 640), 0.95, seed=1))
    far = extractor.prepare(studio_photo(garment, (480, 640), 0.55, seed=2))
    square = extractor.prepare(studio_photo(garment, (600, 600), 0.7, seed=3))
    uncropped = FeatureExtractor(extractor.onnx_path, extractor.name,
                                 dataclasses.replace(extractor.preprocessing, crop_to_subject=False))
    near_uncropped = uncropped.prepare(studio_photo(garment, (480, 640), 0.95, seed=1))
    far_uncropped = uncropped.prepare(studio_photo(garment, (480, 640), 0.55, seed=2))

    def cosine(a, b):
        return float(np.dot(a.ravel(), b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(near, far) > 0.97 and cosine(near, square) > 0.97
    assert cosine(near_uncropped, far_uncropped) < 0.9  # uncropped, the frame sets the garment's size
    assert uncropped.fingerprint != extractor.fingerprint


def test_a_sidecar_may_turn_the_crop_off_and_must_say_so_plainly(tmp_path, models_dir):
    model = tmp_path / "mine.onnx"
    shutil.copy(models_dir / "efficientnet-lite0" / "backbone.onnx", model)
    (tmp_path / "mine.onnx.json").write_text(json.dumps({"input_size": 224}))
    assert load_backbone(f"onnx:{model}", tmp_path).preprocessing.crop_to_subject
    (tmp_path / "mine.onnx.json").write_text(json.dumps({"input_size": 224, "crop_to_subject": False}))
    assert not load_backbone(f"onnx:{model}", tmp_path).preprocessing.crop_to_subject
    (tmp_path / "mine.onnx.json").write_text(json.dumps({"input_size": 224, "crop_to_subject": "no"}))
    with pytest.raises(BackboneError, match="crop_to_subject|true or false"):
        load_backbone(f"onnx:{model}", tmp_path)
