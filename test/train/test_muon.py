"""Muon: Newton-Schulz orthogonalization, the optimizer's update rule, and torch.optim.Muon agreement."""
import math

import pytest
import torch

from muon_ad_ros.train.muon import (Muon, muon_param_groups, muon_update_image, update_scale,
                                   zeropower_via_newtonschulz5)


@pytest.mark.parametrize("shape", [(32, 128), (128, 32), (3, 4096), (48, 900)])
def test_ns5_singular_values_in_band(shape):
    torch.manual_seed(0)
    g = torch.randn(*shape) * torch.linspace(0.5, 4.0, shape[0])[:, None]  # rows of unequal scale
    s = torch.linalg.svdvals(zeropower_via_newtonschulz5(g))
    # the quintic with Keller's coefficients lands singular values in ~[0.7, 1.2], not exactly 1
    assert s.min() > 0.6 and s.max() < 1.25, (float(s.min()), float(s.max()))
    s_in = torch.linalg.svdvals(g)
    assert s_in.max() / s_in.min() > 1.5  # the input was far from orthogonal


def test_ns5_square_spread_spectrum():
    # a square matrix with singular values spread over two decades (relative to the largest)
    torch.manual_seed(2)
    u, _ = torch.linalg.qr(torch.randn(64, 64))
    v, _ = torch.linalg.qr(torch.randn(64, 64))
    g = u @ torch.diag(torch.logspace(-2, 0, 64) * 7.0) @ v.T
    s = torch.linalg.svdvals(zeropower_via_newtonschulz5(g))
    assert s.min() > 0.6 and s.max() < 1.25, (float(s.min()), float(s.max()))


def test_ns5_keeps_singular_vectors():
    torch.manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(16, 16))
    v, _ = torch.linalg.qr(torch.randn(16, 16))
    g = u @ torch.diag(torch.linspace(0.1, 5.0, 16)) @ v.T
    o = zeropower_via_newtonschulz5(g)
    d = u.T @ o @ v  # diagonal if the singular vectors are kept
    off = d - torch.diag(torch.diagonal(d))
    assert off.abs().max() < 1e-3
    assert torch.diagonal(d).min() > 0.6


def test_ns5_rejects_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        zeropower_via_newtonschulz5(torch.randn(3, 3, 3))


def test_update_scales():
    assert update_scale((64, 16), "original") == pytest.approx(2.0)
    assert update_scale((16, 64), "original") == 1.0
    assert update_scale((64, 4, 3, 3), "rms") == pytest.approx(0.2 * math.sqrt(64))
    with pytest.raises(ValueError, match="scaling"):
        update_scale((4, 4), "bogus")


def _twin(shape=(24, 40), seed=0):
    torch.manual_seed(seed)
    w = torch.randn(*shape)
    return torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="this PyTorch has no torch.optim.Muon")
@pytest.mark.parametrize("scaling,torch_fn", [("original", "original"), ("rms", "match_rms_adamw")])
@pytest.mark.parametrize("shape", [(24, 40), (40, 24)])
def test_matches_torch_optim_muon(scaling, torch_fn, shape):
    ours, theirs = _twin(shape)
    opt_a = Muon([{"params": [ours], "use_muon": True}], lr=0.02, weight_decay=0.1, scaling=scaling)
    opt_b = torch.optim.Muon([theirs], lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True,
                             adjust_lr_fn=torch_fn)
    torch.manual_seed(5)
    for _ in range(4):  # same gradients, several steps so momentum matters
        g = torch.randn(*shape)
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    # torch runs Newton-Schulz in bfloat16; ours in float32: agree to bf16 precision
    moved = (theirs.detach() - _twin(shape)[0].detach()).norm()
    assert (ours - theirs).norm() / moved < 0.02


def test_weight_decay_and_step_size():
    p = torch.nn.Parameter(torch.ones(8, 8))
    opt = Muon([{"params": [p], "use_muon": True}], lr=0.1, weight_decay=0.5, momentum=0.0, nesterov=False)
    p.grad = torch.zeros(8, 8)
    p.grad[0, 0] = 1.0  # rank one: NS5 maps it to a near-unit singular value
    opt.step()
    assert p[1, 1].item() == pytest.approx(1 - 0.1 * 0.5)  # only decay touches untouched entries
    assert p[0, 0].item() < 0.95 - 0.05  # the orthogonalized step is ~lr * 1


def test_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(10))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a = Muon([{"params": [a], "use_muon": False}], adam_lr=1e-2, adam_weight_decay=0.01)
    opt_b = torch.optim.AdamW([b], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    for _ in range(5):
        g = torch.randn(10)
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    assert torch.allclose(a, b, atol=1e-6)


def test_param_groups_send_edges_and_vectors_to_adamw():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3), torch.nn.Conv2d(8, 3, 3))
    groups = muon_param_groups(net)
    muon_ids = {id(p) for p in groups[0]["params"]}
    assert groups[0]["use_muon"] and not groups[1]["use_muon"]
    assert muon_ids == {id(net[1].weight)}
    with pytest.raises(ValueError, match="1-D"):
        Muon([{"params": [net[1].bias], "use_muon": True}])


def test_param_groups_of_the_student_by_role():
    """The student's input conv and output conv go to AdamW with every bias and gain, whatever order the
    parameters are registered in; every hidden conv (down, residual, context, up, dec) to Muon."""
    from muon_ad_ros.model.student import Student
    student = Student()
    muon, adam = muon_param_groups(student)
    names = {id(p): n for n, p in student.named_parameters()}
    muon_names = {names[id(p)] for p in muon["params"]}
    adam_names = {names[id(p)] for p in adam["params"]}
    assert {"stem.weight", "out.weight", "colour_gain"} <= adam_names
    assert all(n.endswith(".bias") or n in ("stem.weight", "out.weight", "colour_gain") for n in adam_names)
    hidden = {n for n, p in student.named_parameters()
              if p.ndim == 4 and n not in ("stem.weight", "out.weight", "colour_gain")}
    assert muon_names == hidden and "down.weight" in muon_names and "context.0.v.weight" in muon_names


def test_image_update_reduces_a_quadratic():
    torch.manual_seed(0)
    target = torch.rand(1, 12, 16, 16)
    z = torch.zeros_like(target)
    m = torch.zeros_like(z)
    start = float(((z - target) ** 2).mean())
    for _ in range(30):
        muon_update_image(z, 2 * (z - target), m, lr=0.3)  # update RMS ~0.2 * lr
    assert float(((z - target) ** 2).mean()) < 0.2 * start
    with pytest.raises(ValueError, match="shape"):
        muon_update_image(z, torch.zeros(1, 3, 4, 4), m, lr=0.1)
