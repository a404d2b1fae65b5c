"""AD losses, content loss and the pretrained feature networks they run on."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from muon_ad_ros.train import data
from muon_ad_ros.train.features import MODEL_DIR, NETWORKS, FeatureNetwork, _clip, feature_network
from muon_ad_ros.train.losses import (AttentionDistillation, ad_kl, ad_l1, attention, channel_stats, colour_directions,
                                     colour_loss, colour_quantiles, content_loss, gram, gram_loss, periodic_penalty,
                                     stats_loss, tokens, total_loss, whitened_spectrum)


def test_attention_hand_computed():
    q = torch.tensor([[[1.0, 0.0]]])
    k = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    v = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]])
    w = torch.softmax(torch.tensor([1 / np.sqrt(2), 0.0]), 0)
    assert torch.allclose(attention(q, k, v), (w[0] * v[0, 0] + w[1] * v[0, 1])[None, None])


def test_tokens_layout():
    f = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    t = tokens(f)
    assert t.shape == (2, 4, 3)
    assert torch.equal(t[1, 3], f[1, :, 1, 1])


def test_ad_l1_zero_when_generated_equals_style():
    torch.manual_seed(0)
    f = torch.randn(1, 8, 4, 4)
    # the generated image's self-attention equals the attention over its own keys/values
    assert ad_l1(f, tokens(f)).item() == pytest.approx(0.0, abs=1e-6)
    assert ad_l1(f, tokens(torch.randn(1, 8, 4, 4))).item() > 0.01


def test_ad_l1_gradient_only_through_generated_self_attention():
    torch.manual_seed(0)
    gen = torch.randn(1, 4, 3, 3, requires_grad=True)
    style = tokens(torch.randn(1, 4, 3, 3)).requires_grad_(True)
    ad_l1(gen, style).backward()
    assert gen.grad.abs().sum() > 0
    assert style.grad is None  # the target is a constant


def test_kl_zero_for_same_distribution_and_positive_otherwise():
    torch.manual_seed(0)
    f = torch.randn(1, 8, 4, 4)
    kv = tokens(f)
    from muon_ad_ros.train.losses import attention_weights
    marginal = attention_weights(kv, kv).mean(1)
    assert ad_kl(f, kv, marginal).item() == pytest.approx(0.0, abs=1e-6)
    assert ad_kl(torch.randn(1, 8, 4, 4) * 3, kv, marginal).item() > 1e-3


def test_content_and_total():
    a = {"l": torch.ones(1, 2, 2, 2)}
    b = {"l": torch.zeros(1, 2, 2, 2)}
    assert content_loss(a, b, ("l",)).item() == 1.0
    assert total_loss(torch.tensor(2.0), torch.tensor(4.0), 0.25).item() == 3.0


def test_feature_network_matches_onnxruntime():
    x = torch.rand(1, 3, 256, 256)  # arbitrary_predict.onnx declares a fixed 256x256 input
    for name, (file, inp, layout, fixed, table) in NETWORKS.items():
        layer = sorted(table)[0]
        model = onnx.load(str(MODEL_DIR / file))
        model.graph.output.append(onnx.helper.make_tensor_value_info(table[layer], onnx.TensorProto.FLOAT, None))
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        xi = x.permute(0, 2, 3, 1).numpy() if layout == "nhwc" else x.numpy()
        ref = sess.run([table[layer]], {inp: xi, **fixed()})[0]
        ours = FeatureNetwork(name, (layer,))(x)[layer].numpy()
        assert ours.shape == ref.shape
        # mobilenet_v2 drops the INT8 activation fake-quantization: equal up to quantization noise
        assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99, name


def test_feature_network_is_frozen_and_validates():
    net = feature_network("mobilenet_v2")
    assert all(not p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="unknown feature network"):
        FeatureNetwork("vgg19")
    with pytest.raises(ValueError, match="unknown layer"):
        FeatureNetwork("mobilenet_v2", ("block99",))
    with pytest.raises(ValueError, match=r"\(N,3,H,W\)"):
        net(torch.rand(1, 1, 32, 32))


def test_clip_is_clamp_in_value_and_gradient():
    """ONNX Clip with both bounds runs as hardtanh (one fused backward kernel): the same values and, away from
    the bounds themselves, the same gradient as clamp; with one bound it stays clamp."""
    x = (torch.randn(4, 8, 16, 16) * 4).requires_grad_(True)
    for lo, hi in ((0.0, 6.0), (-1.0, 2.5), (0.0, None), (None, 6.0)):
        ours = _clip(x, lo, hi)
        ref = x.clamp(lo, hi)
        assert torch.equal(ours, ref)
        g = torch.randn_like(ref)
        (a,) = torch.autograd.grad(ours, x, g)
        (b,) = torch.autograd.grad(ref, x, g)
        assert torch.equal(a, b), (lo, hi)


def test_style_loss_prefers_the_style_image():
    net = feature_network("mobilenet_v2")
    style = data.to_tensor(data.resize_max(data.make_mosaic(256), 128))
    photo = data.to_tensor(data.resize_max(data.skimage_image("astronaut"), 128))
    loss = AttentionDistillation(net, style)
    with torch.no_grad():
        same = loss.style_loss(net(style)).item()
        other = loss.style_loss(net(photo)).item()
    assert same < 0.5 * other


def test_several_style_images_concatenate_tokens():
    net = feature_network("mobilenet_v2")
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 96, 64)
    loss = AttentionDistillation(net, [a, b])
    one = AttentionDistillation(net, a)
    for layer in loss.style_layers:
        assert loss.style_kv[layer].shape[1] > one.style_kv[layer].shape[1]
    with pytest.raises(ValueError, match="loss form"):
        AttentionDistillation(net, a, form="gram")


def test_style_border_tokens_dropped():
    net = feature_network("mobilenet_v2")
    style = torch.rand(1, 3, 128, 128)
    feats = net(style)
    with_border = AttentionDistillation(net, style, border=0)
    inner = AttentionDistillation(net, style, border=1)
    for layer in inner.style_layers:
        h, w = feats[layer].shape[-2:]
        assert with_border.style_kv[layer].shape[1] == h * w
        assert inner.style_kv[layer].shape[1] == (h - 2) * (w - 2)


def test_generated_border_tokens_left_out_of_the_style_loss():
    net = feature_network("mobilenet_v2")
    loss = AttentionDistillation(net, torch.rand(1, 3, 128, 128), gen_border=1)
    full = AttentionDistillation(net, torch.rand(1, 3, 128, 128), gen_border=0)
    full.style_kv = loss.style_kv
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 128, 128))
        edited = {k: v.clone() for k, v in feats.items()}
        for v in edited.values():  # change only the outermost ring of feature pixels
            v[..., 0, :] += 5.0
            v[..., :, -1] -= 5.0
        assert loss.style_loss(edited).item() == pytest.approx(loss.style_loss(feats).item(), rel=1e-6)
        assert full.style_loss(edited).item() != pytest.approx(full.style_loss(feats).item(), rel=1e-3)


def test_stats_loss_is_zero_at_the_style_moments_and_pulls_towards_them():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32) * torch.tensor([0.2, 0.5, 1.0])[:, None, None]
    mean, std = channel_stats(style)
    assert stats_loss(style, mean[0], std[0]).item() == pytest.approx(0.0, abs=1e-6)
    gen = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss = stats_loss(gen, mean[0], std[0])
    loss.backward()
    assert loss.item() > 0.1
    with torch.no_grad():  # a small step against the gradient lowers it
        assert stats_loss(gen - 0.05 * gen.grad.sign(), mean[0], std[0]).item() < loss.item()


def test_palette_term_prefers_the_style_colours_and_ignores_the_border():
    net = feature_network("mobilenet_v2", ("block2", "block5", "block9"))
    style = torch.zeros(1, 3, 96, 96)
    style[:, 2] = 0.9                                          # a blue style image
    ad = AttentionDistillation(net, style, gen_border=1, stats_layers=("rgb", "block2"), stats_weight=1.0)
    plain = AttentionDistillation(net, style, gen_border=1)
    blue, red = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    blue[:, 2], red[:, 0] = 0.9, 0.9
    with torch.no_grad():
        gap = ad.style_loss(net(red), red) - ad.style_loss(net(blue), blue)
        assert gap > plain.style_loss(net(red)) - plain.style_loss(net(blue)) + 0.5
        framed = blue.clone()
        framed[..., :8, :] = 0.0                                 # the 8-px border ring is left out of "rgb"
        assert ad.style_loss(net(blue), framed) == pytest.approx(ad.style_loss(net(blue), blue).item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs the generated image"):
        ad.style_loss(net(blue))
    with pytest.raises(ValueError, match="block12"):
        AttentionDistillation(net, style, stats_layers=("block12",), stats_weight=1.0)


def test_gram_term_is_the_weighted_gram_gap_and_pulls_towards_the_style():
    net = feature_network("mobilenet_v2")
    style = data.to_tensor(data.resize_max(data.make_mosaic(256), 128))
    photo = data.to_tensor(data.resize_max(data.skimage_image("astronaut"), 128))
    plain = AttentionDistillation(net, style)
    with_gram = AttentionDistillation(net, style, gram_weight=0.5)
    with torch.no_grad():
        feats, own = net(photo), net(style)
        added = with_gram.style_loss(feats) - plain.style_loss(feats)
        expected = sum(gram_loss(feats[l], with_gram.style_gram[l]) for l in plain.style_layers)
        assert added.item() == pytest.approx(0.5 * expected.item(), rel=1e-4)
        assert expected > 10 * sum(gram_loss(own[l], with_gram.style_gram[l])
                                   for l in plain.style_layers)
    f = torch.rand(2, 4, 6, 5)
    assert gram_loss(f, gram(f[:1])).item() > 0 and gram_loss(f[:1], gram(f[:1])).item() == pytest.approx(0.0)
    assert plain.style_gram == {}


def two_colours(a, b, n=32):
    img = torch.zeros(1, 3, n, n)
    img[0, :, :, : n // 2], img[0, :, :, n // 2:] = torch.tensor(a)[:, None, None], torch.tensor(b)[:, None, None]
    return img


def test_colour_term_tells_colours_apart_that_the_moments_do_not():
    # yellow and blue against magenta and green: every channel has mean 0.5 and std 0.5 in both
    style, other = two_colours((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)), two_colours((1.0, 0.0, 1.0), (0.0, 1.0, 0.0))
    mean, std = channel_stats(style)
    assert stats_loss(other, mean[0], std[0]).item() == pytest.approx(0.0, abs=1e-6)
    dirs = colour_directions()
    assert dirs.shape == (32, 3) and torch.allclose(dirs.norm(dim=1), torch.ones(32))
    target = colour_quantiles(style.flatten(2)[0].T, dirs)
    assert colour_loss(style, target, dirs).item() == pytest.approx(0.0, abs=1e-6)
    gen = other.clone().requires_grad_(True)
    loss = colour_loss(gen, target, dirs)
    loss.backward()
    assert loss.item() > 0.1
    with torch.no_grad():  # a small step against the gradient lowers it
        assert colour_loss(gen - 0.05 * gen.grad.sign(), target, dirs).item() < loss.item()


def test_colour_weight_adds_the_colour_term_outside_the_border_ring():
    net = feature_network("mobilenet_v2", ("block5", "block9"))
    style = two_colours((1.0, 1.0, 0.0), (0.0, 0.0, 1.0), 96)
    plain = AttentionDistillation(net, style, gen_border=1)
    coloured = AttentionDistillation(net, style, gen_border=1, colour_weight=2.0)
    gen = two_colours((1.0, 0.0, 1.0), (0.0, 1.0, 0.0), 64)
    with torch.no_grad():
        added = coloured.style_loss(net(gen), gen) - plain.style_loss(net(gen), gen)
        inner = gen[..., 8:-8, 8:-8]
        expected = 2.0 * colour_loss(inner, coloured.style_colour_q, coloured.colour_dirs)
        assert added.item() == pytest.approx(expected.item(), rel=1e-4)
        assert added.item() > 0.2
    with pytest.raises(ValueError, match="needs the generated image"):
        coloured.style_loss(net(gen))


def whitened_per_ring(gray: torch.Tensor, periods=(6.0, 40.0)) -> torch.Tensor:
    """whitened_spectrum written out ring by ring, each ring's median from torch.median: the reference."""
    n, h, w = gray.shape
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=gray.dtype),
                      torch.hann_window(w, periodic=False, dtype=gray.dtype))
    power = torch.fft.fft2((gray - gray.mean(dim=(-2, -1), keepdim=True)) * win).abs().pow(2)
    radius = torch.hypot(torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None, :]).to(gray.dtype)
    band = (radius >= 1 / periods[1]) & (radius <= 1 / periods[0])
    ring = torch.round(radius * max(h, w)).long()
    white = torch.zeros_like(power)
    for r in torch.unique(ring[band]).tolist():
        sel = band & (ring == r)
        median = power[:, ring == r].detach().median(dim=1).values.clamp_min(1e-20)
        white[:, sel] = power[:, sel] / median[:, None]
    return white


@pytest.mark.parametrize("shape, dtype", [((2, 90, 122), torch.float64), ((3, 160, 160), torch.float32)])
def test_whitened_spectrum_equals_the_per_ring_reference_in_value_and_gradient(shape, dtype):
    gray = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    weights = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    results = []
    for spectrum in (lambda g: whitened_spectrum(g)[0], whitened_per_ring):
        x = gray.clone().requires_grad_()
        white = spectrum(x)
        (white * weights).sum().backward()
        results.append((white.detach(), x.grad))
    (white, grad), (ref_white, ref_grad) = results
    assert int((ref_white > 0).sum()) > 1000 and float(ref_grad.abs().sum()) > 0
    assert torch.equal(white, ref_white)    # each ring's median is one of its values: no rounding apart
    assert torch.equal(grad, ref_grad)


def test_periodic_penalty_counts_a_check_pattern_the_photo_lacks_whatever_its_phase():
    photo = data.to_tensor(data.fit_frame(data.skimage_image("coffee"), 160, 160))
    yy, xx = torch.meshgrid(torch.arange(160.0), torch.arange(160.0), indexing="ij")
    drift = 8 * xx / 160          # a check of 8-px squares drifting by one square across the crop
    check = torch.where((((xx + drift) // 8 + (yy + drift) // 8) % 2) == 0, 0.06, -0.06)
    painted = (photo + check).clamp(0, 1).requires_grad_()
    assert periodic_penalty(photo, photo).item() == 0.0
    assert periodic_penalty(painted, photo).item() > 1
    assert periodic_penalty(painted, painted.detach()).item() == 0.0   # the photo's own pattern is not counted
    periodic_penalty(painted, photo).backward()
    assert float(painted.grad.abs().sum()) > 0


def test_mirrored_ring_is_cut_back_to_the_image_grid():
    # with image_pad the features cover exactly the image (the mirrored ring cut off at every stride)
    net = feature_network("mobilenet_v2", ("block2", "block5", "block9"))
    style = torch.rand(1, 3, 128, 128)
    padded = AttentionDistillation(net, style, image_pad=16)
    plain = AttentionDistillation(net, style)
    img = torch.rand(2, 3, 160, 96)
    a, b = padded.features(img), plain.features(img)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    # the border pixels reach the style loss through tokens that see image content on every side
    img.requires_grad_(True)
    padded.style_loss(padded.features(img), img).backward()
    assert float(img.grad[..., :2, :].abs().sum()) > 0
