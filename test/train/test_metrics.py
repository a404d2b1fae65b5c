"""SSIM and style distances on real images and the real pretrained feature networks."""
import numpy as np
import pytest
import torch

from muon_ad_ros.train import data, metrics


@pytest.fixture(scope="module")
def photo():
    return data.resize_max(data.skimage_image("chelsea"), 192, 8)


@pytest.fixture(scope="module")
def mosaic():
    return data.make_mosaic(192)


def test_ssim_is_one_for_the_same_image_and_lower_for_noise(photo):
    assert metrics.ssim(photo, photo) == pytest.approx(1.0)
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 40, photo.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(noisy, photo) < 0.6


def test_ssim_resizes_a_reference_of_another_size(photo):
    big = np.repeat(np.repeat(photo, 2, 0), 2, 1)
    assert metrics.ssim(photo, big) > 0.9


def test_ssim_rejects_non_rgb_uint8(photo):
    with pytest.raises(ValueError, match="float64"):
        metrics.ssim(photo / 255.0, photo)


def test_gram_of_known_features():
    f = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])  # N=1, C=2, h=1, w=2
    np.testing.assert_allclose(metrics.gram(f)[0].numpy(), [[2.5, 1.0], [1.0, 0.5]])


@pytest.mark.parametrize("kind", metrics.KINDS)
def test_style_distance_with_a_callable_feature_network(photo, mosaic, kind):
    def pixels(x):  # the simplest feature extractor: the image itself, at two scales
        return {"rgb": x, "half": torch.nn.functional.avg_pool2d(x, 2)}

    assert metrics.style_distance(mosaic, mosaic, pixels, kind) == pytest.approx(0.0, abs=1e-9)
    assert metrics.style_distance(photo, mosaic, pixels, kind) > 0


@pytest.mark.parametrize("network", ["mobilenet_v2", "multistyle26"])
def test_pretrained_networks_place_a_restyled_image_nearer_the_style(photo, mosaic, network):
    """Blending the mosaic's pixels into the photo moves it towards the mosaic's style."""
    blend = (0.5 * photo + 0.5 * mosaic[: photo.shape[0], : photo.shape[1]]).astype(np.uint8)
    far = metrics.style_distance(photo, mosaic, network, max_side=192)
    near = metrics.style_distance(blend, mosaic, network, max_side=192)
    assert near < far


def test_style_distances_names_every_network_and_statistic(photo, mosaic):
    d = metrics.style_distances(photo, mosaic, networks=("multistyle26",), max_side=128)
    assert set(d) == {"multistyle26/gram", "multistyle26/meanstd"} and all(v > 0 for v in d.values())
    with pytest.raises(ValueError, match="fft"):
        metrics.style_distance(photo, mosaic, "multistyle26", kind="fft")


def test_style_reference_keeps_the_features_of_its_own_image_per_network_and_size(photo, mosaic):
    passes = []

    def pixels(x):
        passes.append(tuple(x.shape[-2:]))
        return {"rgb": x, "half": torch.nn.functional.avg_pool2d(x, 2)}

    def half(x):
        return {"half": torch.nn.functional.avg_pool2d(x, 2)}

    style = mosaic.copy()
    reference = metrics.StyleReference(style)
    fresh = {(n, s, k): metrics.style_distance(photo, mosaic, n, k, s)
             for n in (pixels, half) for s in (128, 96) for k in metrics.KINDS}
    passes.clear()
    style[:] = 0                  # the reference holds its own copy of the style
    for _ in range(2):
        for (n, s, k), d in fresh.items():
            assert metrics.style_distance(photo, reference, n, k, s) == d
    assert [p for p in passes if p[0] == p[1]] == [(128, 128), (96, 96)]   # the square style: once per size
    assert reference.features(pixels, 96)["rgb"].shape[-1] == 96 and not reference.image.flags.writeable
    other = metrics.StyleReference(photo)
    assert metrics.style_distance(photo, other, pixels, "gram", 128) == pytest.approx(0.0, abs=1e-9)
    assert metrics.style_distance(photo, reference, pixels, "gram", 128) > 0
    assert metrics.style_distances(photo, reference, (pixels,), max_side=96) == {
        f"{pixels}/{k}": fresh[(pixels, 96, k)] for k in metrics.KINDS}


def test_periodic_peak_finds_a_check_pattern_whose_phase_drifts():
    photo = data.fit_frame(data.skimage_image("coffee"), 640, 480)
    strength, _ = metrics.periodic_peak(photo)
    assert strength < metrics.PERIODIC_FLOOR
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    # 8-px squares, +-6 about the photo, drifting by a square across the frame: not locked to any grid
    drift = 8 * xx / 640
    check = np.where((((xx + drift) // 8 + (yy + drift) // 8) % 2) == 0, 6.0, -6.0)
    painted = (photo + check[..., None]).clip(0, 255).astype(np.uint8)
    strength, period = metrics.periodic_peak(painted)
    assert strength > 40 and 9 < period < 13          # the check's diagonal fundamental: 16 / sqrt(2) px
    assert metrics.periodic_excess(painted, photo) > 2.5 > metrics.periodic_excess(photo, photo)
    own = metrics.periodic_peak(photo)[0]
    assert metrics.periodic_excess(painted, photo, own) == metrics.periodic_excess(painted, photo)
    with pytest.raises(ValueError, match="uint8"):
        metrics.periodic_peak(photo.astype(np.float32))


def test_lattice_pattern_finds_a_grid_locked_to_the_stride_and_ignores_ramps_and_photos():
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    ramp = np.stack([40 + xx, 60 + 0.5 * yy, 100 + 0.3 * (xx + yy)], -1)
    assert metrics.lattice_rms(ramp.astype(np.uint8)) < 0.5        # smooth content leaves no pattern
    grid = ramp + 8 * ((yy // 4 + xx // 4) % 2)[..., None]          # an 8-px checkerboard, +-4 about its mean
    assert 3.5 < metrics.lattice_rms(grid.clip(0, 255).astype(np.uint8)) < 4.5
    photo = data.fit_frame(data.skimage_image("chelsea"), 320, 240)
    assert metrics.lattice_rms(photo) < 1.0
    y = torch.from_numpy(grid.transpose(2, 0, 1)[None] / 255).requires_grad_()
    metrics.lattice_pattern(y).pow(2).mean().backward()            # the distillation's penalty has a gradient
    assert float(y.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="lattice_pattern"):
        metrics.lattice_pattern(torch.zeros(1, 3, 16, 64))
