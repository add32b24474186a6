"""The network: shapes per configuration, feature combination, input normalisation, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gazeloc import weights
from gazeloc.model import GazeLocNet, ModelSettings, build_model, image_probabilities, load_model
from gazeloc.model.network import IMAGENET_MEAN, IMAGENET_STD, combine_features
from gazeloc.weights import WeightsError


def _settings(**kw) -> ModelSettings:
    return ModelSettings(**{"backbone": "resnet18", "pretrained": "none", "input_size": 64, **kw})


@pytest.mark.parametrize(
    ("kw", "grid", "decoder"),
    [
        ({}, 4, 32),  # layer3 ‖ layer4 at S/16
        ({"layers": (4,)}, 2, 16),  # single resolution at S/32
        ({"layers": (4,), "grid": 4}, 4, 32),  # smaller map: bilinear up to the grid
        ({"grid": 2}, 2, 16),  # larger map: stride-1 max pool down to the grid
        ({"decoder": False}, 4, None),
    ],
)
def test_output_shapes(kw, grid, decoder):
    torch.manual_seed(0)
    model = GazeLocNet(_settings(**kw)).eval()
    out = model(torch.rand(2, 1, 64, 64))
    assert out.grid_logits.shape == (2, 10, grid, grid)
    assert out.activations.shape == (2, 512, grid, grid)
    if decoder is None:
        assert out.decoder_logits is None and model.decoder is None
    else:
        assert out.decoder_logits.shape == (2, 10, decoder, decoder)
    assert model.settings.decoder_size == 8 * grid


def test_resnet50_paper_shapes_are_derived_without_running():
    s = ModelSettings(backbone="resnet50", input_size=512)
    assert (s.grid_size, s.decoder_size, s.feature_channels) == (32, 256, 3072)
    s = ModelSettings(backbone="resnet50", input_size=512, layers=(4,))
    assert (s.grid_size, s.feature_channels) == (16, 2048)


def test_combine_features_nearest_then_slice():
    deep = torch.arange(4.0).view(1, 1, 2, 2)
    shallow = torch.zeros(1, 2, 4, 4)
    x = combine_features([shallow, deep], 4)
    assert x.shape == (1, 3, 4, 4)
    assert torch.equal(
        x[0, 2],
        torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]], dtype=torch.float32),
    )
    pooled = combine_features([torch.arange(16.0).view(1, 1, 4, 4)], 3)  # kernel 2, stride 1
    assert torch.equal(pooled[0, 0], torch.tensor([[5.0, 6, 7], [9, 10, 11], [13, 14, 15]]))
    up = combine_features([deep], 3)
    assert torch.allclose(up, F.interpolate(deep, size=(3, 3), mode="bilinear", align_corners=True))


@pytest.mark.parametrize("double", [True, False])
def test_input_normalisation(double):
    model = GazeLocNet(_settings(double_normalization=double))
    x = torch.full((1, 1, 2, 2), 0.3)
    out = model.normalize(x)
    for c in range(3):
        expected = (0.3 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        if double:
            expected = (expected - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(out[0, c], torch.tensor(expected), atol=1e-6)
    u8 = model.normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(u8, model.normalize(torch.ones(1, 1, 2, 2)))
    with pytest.raises(ValueError, match="gray"):
        model.normalize(torch.rand(1, 3, 2, 2))


def test_image_probabilities_are_eq1():
    g = torch.randn(2, 10, 4, 4, dtype=torch.float64)
    expected = 1 - torch.prod(1 - 0.02 * torch.sigmoid(g).flatten(2), dim=-1)
    assert torch.allclose(image_probabilities(g), expected)


def test_bad_settings():
    with pytest.raises(ValueError, match="backbone"):
        _settings(backbone="vgg16")
    with pytest.raises(ValueError, match="layers"):
        _settings(layers=(3, 5))
    with pytest.raises(ValueError, match="multiple of 32"):
        _settings(input_size=48)


def test_seeded_build_is_reproducible():
    a = build_model(_settings(), seed=3).state_dict()
    b = build_model(_settings(), seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_imagenet_weights_missing_stop(tmp_path, monkeypatch):
    """No fallback to random weights: a missing cache file is an error naming the file, the
    folder and the fetch command."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as error:
        build_model(_settings(pretrained="imagenet"), seed=0)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "gazeloc fetch-weights --backbone resnet18" in message


def test_torchvision_file_names_are_current():
    import torchvision

    for backbone, name in weights.IMAGENET_FILES.items():
        enum = getattr(torchvision.models, f"ResNet{backbone[6:]}_Weights").IMAGENET1K_V1
        assert enum.url == weights.DOWNLOAD_URL + name


def test_torch_cache_dir_matches_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert weights.torch_cache_dir() == Path(torch.hub.get_dir()) / "checkpoints"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert weights.torch_cache_dir(env) == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"


def test_imagenet_weights_from_cache_and_from_path(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(5)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, tmp_path / "made.pth")
    sha = weights.sha256_file(tmp_path / "made.pth")
    # a cache file named as torchvision names it: <arch>-<sha256 prefix>.pth
    name = f"resnet18-{sha[:8]}.pth"
    (tmp_path / "made.pth").rename(cache / name)
    monkeypatch.setitem(weights.IMAGENET_FILES, "resnet18", name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for source, expect in (("imagenet", None), (str(cache / name), None), (str(cache / name), sha)):
        model = build_model(_settings(pretrained=source, pretrained_sha256=expect), seed=0)
        assert model.weights_sha256 == sha
        assert torch.equal(model.encoder.conv1.weight, reference["conv1.weight"])
        assert torch.equal(
            model.encoder.layer4[1].bn2.running_var, reference["layer4.1.bn2.running_var"]
        )
    assert build_model(_settings(), seed=0).weights_sha256 == "random"
    with pytest.raises(WeightsError, match="does not exist"):
        build_model(_settings(pretrained=str(tmp_path / "absent.pt")))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="state dict"):
        build_model(_settings(pretrained=str(tmp_path / "bad.pt")))


def test_weights_with_another_hash_are_refused(tmp_path, monkeypatch):
    import torchvision

    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    # torchvision's real file name, other content: the sha256 prefix does not match
    torch.save(
        torchvision.models.resnet18(weights=None).state_dict(), cache / "resnet18-f37072fd.pth"
    )
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="does not match the expected f37072fd"):
        build_model(_settings(pretrained="imagenet"))
    path = str(cache / "resnet18-f37072fd.pth")
    with pytest.raises(WeightsError, match="does not match"):
        build_model(_settings(pretrained=path, pretrained_sha256="0" * 64))


def test_typo_in_pretrained_names_the_nearest_known_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match="did you mean 'imagenet'"):
        weights.weights_spec({"backbone": "resnet50", "pretrained": "imagnet"})
    with pytest.raises(WeightsError, match="did you mean 'none'"):
        weights.weights_spec({"backbone": "resnet50", "pretrained": "None "})
    spec = weights.weights_spec({"backbone": "resnet50", "pretrained": "w/my.pth"})
    assert spec.kind == "file"
    with pytest.raises(WeightsError, match=r"w/my\.pth does not exist"):
        weights.locate({"backbone": "resnet50", "pretrained": "w/my.pth"})


def test_fetch_weights_uses_torchvisions_hash_check(tmp_path, monkeypatch):
    """No network in tests: the download function is replaced by one that copies a file."""
    import shutil

    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "made.pth")
    name = f"resnet18-{weights.sha256_file(tmp_path / 'made.pth')[:8]}.pth"
    monkeypatch.setitem(weights.IMAGENET_FILES, "resnet18", name)
    calls = []

    def download(url, model_dir, progress, check_hash, weights_only):
        calls.append((url, check_hash, weights_only))
        shutil.copy(tmp_path / "made.pth", Path(model_dir) / url.rsplit("/", 1)[1])

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", download)
    path = weights.fetch("resnet18", progress=False)
    assert calls == [(weights.DOWNLOAD_URL + name, True, True)]
    assert path == tmp_path / "th" / "hub" / "checkpoints" / name and path.is_file()
    weights.fetch("resnet18", progress=False)  # already there: no second download
    assert len(calls) == 1


def test_load_model_round_trip(tmp_path):
    model = build_model(_settings(), seed=1).eval()
    payload = {"state_dict": model.state_dict(), "model": model.settings.to_dict(), "epoch": 2}
    torch.save(payload, tmp_path / "model.pt")
    loaded, meta = load_model(tmp_path / "model.pt")
    assert meta["epoch"] == 2 and meta["model"]["backbone"] == "resnet18"
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x).grid_logits, loaded(x).grid_logits)
