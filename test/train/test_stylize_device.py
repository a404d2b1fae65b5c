"""`muon-ad stylize` device plumbing: the same optimization on the device --device auto picks."""
import numpy as np
import torch

from muon_ad_ros.train import data, distill, stylize


def test_stylize_on_the_auto_device_matches_the_cpu():
    content = data.make_mosaic(96)[::-1].copy()
    style = data.make_mosaic(96)
    cpu = stylize.stylize_image(content, style, iters=3, max_side=64, device="cpu")
    auto = stylize.stylize_image(content, style, iters=3, max_side=64, device=distill.resolve_device("auto"))
    assert cpu.shape == auto.shape and cpu.dtype == np.uint8
    if torch.cuda.is_available():
        assert np.abs(cpu.astype(int) - auto.astype(int)).max() <= 2   # float rounding, in 8-bit levels
    else:
        assert np.array_equal(cpu, auto)
