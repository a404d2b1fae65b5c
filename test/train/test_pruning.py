"""Projection (Eq. 2), the curriculum, and channel-importance pruning with hand-computed cases."""
import math

import pytest
import torch

from muon_ad_ros.train.curriculum import Curriculum
from muon_ad_ros.train.projection import cosine, project_conflict
from muon_ad_ros.train.pruning import ChannelImportance, prune_mask, retention_schedule
from muon_ad_ros.model.student import Student, StudentConfig


# -- projection ----------------------------------------------------------------------------------
def test_projection_removes_conflicting_component():
    gs, gc = torch.tensor([-1.0, 1.0]), torch.tensor([1.0, 0.0])  # cos = -0.707 < -0.5
    out, projected = project_conflict(gs, gc)
    assert projected
    assert torch.allclose(out, torch.tensor([0.0, 1.0]))
    assert abs(torch.dot(out, gc).item()) < 1e-6


def test_projection_leaves_mild_conflict_alone():
    gs, gc = torch.tensor([-1.0, 2.0]), torch.tensor([1.0, 0.0])  # cos = -0.447 >= -0.5
    out, projected = project_conflict(gs, gc)
    assert not projected and torch.equal(out, gs)
    assert cosine(gs, gc) == pytest.approx(-1 / math.sqrt(5))


def test_projection_zero_gradient_and_shape_check():
    out, projected = project_conflict(torch.tensor([1.0, 1.0]), torch.zeros(2))
    assert not projected
    with pytest.raises(ValueError, match="shape"):
        project_conflict(torch.zeros(2), torch.zeros(3))


# -- curriculum ----------------------------------------------------------------------------------
def test_curriculum_phases_scale_with_length():
    c = Curriculum(3000)
    assert (c.phase(499), c.phase(500), c.phase(1499), c.phase(1500)) == (1, 2, 2, 3)
    short = Curriculum(600)
    assert short.bounds == (100, 300)
    s1, s3 = short.state(0), short.state(599)
    assert (s1.tau_k, s1.lambda_style, s1.lr_factor, s1.freeze_style) == (-1.5, 0.8, 1.0, False)
    assert s3.tau_k == 1.2 and s3.freeze_style and s3.balance_gamma == 1.0
    assert short.state(200).tau_k == 0.5
    assert s3.lr_factor == pytest.approx(0.1, abs=1e-3)  # 1e-3 -> 1e-4


def test_lambda_style_follows_metric_trend_in_phase_two_only():
    c = Curriculum(300, eta=0.5)  # phase II = steps 50..149
    c.observe(10, 2.0)
    c.observe(20, 1.0)  # phase I: no change
    assert c.lambda_style == 0.8
    c.observe(60, 0.5)  # improved by 50%: lambda * exp(-0.5 * 0.5)
    assert c.lambda_style == pytest.approx(0.8 * math.exp(-0.25))
    before = c.lambda_style
    c.observe(70, 1.0)  # got worse by 100%: lambda grows by exp(0.5)
    assert c.lambda_style == pytest.approx(min(1.0, before * math.exp(0.5)))


def test_curriculum_rejects_zero_length():
    with pytest.raises(ValueError, match="total"):
        Curriculum(0)


# -- pruning -------------------------------------------------------------------------------------
def test_prune_mask_threshold():
    s = torch.tensor([1.0, 2.0, 3.0, 4.0])  # mu 2.5, sigma 1.118
    assert prune_mask(s, 0.5).tolist() == [False, False, False, True]  # tau 3.06
    assert prune_mask(s, -1.0).tolist() == [False, True, True, True]  # tau 1.38
    assert prune_mask(s, -1.5).all()  # tau 0.82


def test_retention_schedule_linear():
    assert retention_schedule(0, 101) == pytest.approx(0.95)
    assert retention_schedule(50, 101) == pytest.approx(0.675)
    assert retention_schedule(100, 101) == pytest.approx(0.40)


def test_channel_importance_window_and_decay():
    s = Student(StudentConfig())
    imp = ChannelImportance(s, window=2, lambda_decay=0.03)
    w = s.stem.weight
    for scale in (1.0, 3.0, 2.0):  # window 2 keeps the last two squared gradients
        for p in s.parameters():
            p.grad = torch.full_like(p, scale)
        imp.update()
    expected = 2.0 / (math.sqrt((9.0 + 4.0) / 2) + 1e-8) + 0.03 * w.detach() ** 2
    assert torch.allclose(imp.element_scores(w), expected)
    scores = imp.scores()
    assert set(scores) == set(s.channel_groups())
    assert all(v.numel() == s.channel_groups()[k] for k, v in scores.items())


def test_importance_orders_channels_in_student():
    torch.manual_seed(0)
    s = Student(StudentConfig())
    imp = ChannelImportance(s)
    x = torch.rand(1, 3, 64, 64)
    s(x).mean().backward()
    imp.update()
    scores = imp.scores()
    old_stem = s.stem.weight.detach().clone()
    with torch.no_grad():
        y0 = s(x)
        s.reorder_channels(scores)
        y1 = s(x)
    assert torch.allclose(y0, y1, atol=1e-5)  # a permutation does not change the function
    best = int(torch.argmax(scores["skip4"]))
    assert torch.equal(s.stem.weight[0], old_stem[best])  # the most important channel comes first

