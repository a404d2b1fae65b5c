"""The student network: shapes, physical pruning, channel reordering, context blocks, FLOP counts, loading
bundles written with attention blocks."""
import pytest
import torch
import torch.nn.functional as F

from muon_ad_ros.model.bundle import check_retention
from muon_ad_ros.model.student import SlicedConv, Student, StudentConfig


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    net = Student().eval()
    with torch.no_grad():  # break the identity start of the context blocks so they matter
        for blk in net.context_blocks():
            blk.o.weight.normal_(0, 0.05)
    return net


def frame(h=64, w=96, seed=1):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("retention", [1.0, 0.7, 0.4])
@pytest.mark.parametrize("shape", [(64, 96), (72, 88), (120, 160)])
def test_output_is_full_resolution_rgb_in_unit_range(student, retention, shape):
    with torch.no_grad():
        y = student(frame(*shape), retention)
    assert y.shape == (1, 3, *shape)
    assert y.min() >= 0 and y.max() <= 1


def test_batch_of_frames_keeps_batch_dimension(student):
    with torch.no_grad():
        y = student(torch.rand(2, 3, 64, 64), 0.7)
    assert y.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("shape", [(1, 3, 60, 64), (1, 3, 64, 20), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shape_is_rejected_naming_it(student, shape):
    with pytest.raises(ValueError, match=str(shape[-1])):
        student(torch.rand(*shape))


@pytest.mark.parametrize("retention", [0.39, 1.01, -1.0, float("nan")])
def test_retention_outside_range_is_rejected(student, retention):
    with pytest.raises(ValueError, match="retention"):
        student(frame(), retention)


def test_untrained_student_starts_close_to_its_input():
    net = Student().eval()
    x = frame()
    with torch.no_grad():
        y = net(x)
    # the colour skip starts as sigmoid(4x - 2) + a small random conv: correlated with the input
    corr = torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1]
    assert corr > 0.8


def test_retention_one_runs_every_layer_whole(student):
    c = student.counts(1.0)
    assert c == student.channel_groups()
    for conv in student.modules():
        if isinstance(conv, SlicedConv):
            assert conv.sizes(c) == (conv.out_channels, conv.in_channels)


@pytest.mark.parametrize("retention", [0.7, 0.4])
def test_sliced_network_equals_full_network_with_pruned_channels_zeroed(student, retention):
    """Weight slicing computes exactly what a zero mask computes, with smaller layers."""
    masked = Student().eval()
    masked.load_state_dict(student.state_dict())
    c = student.counts(retention)
    with torch.no_grad():
        for name, entries in masked.channel_params().items():
            for p, dim, block in entries:
                if dim == 0:  # zero what a pruned member produces
                    p.narrow(0, c[name] * block, p.shape[0] - c[name] * block).zero_()
        x = frame(128, 192)
        torch.testing.assert_close(student(x, retention), masked(x, 1.0), atol=1e-5, rtol=1e-4)


def test_pruned_layers_are_physically_smaller(student):
    c = student.counts(0.4)
    groups = student.channel_groups()
    assert c["stream"] < groups["stream"] and c["skip4"] < groups["skip4"]
    assert student.down.sizes(c) == (c["stream"], c["skip4"])
    # a context block keeps 8 of its 16 channel groups at the lowest retention (docs/method.md section 4)
    assert all(c[b.name] == 8 for b in student.context_blocks())


def test_flops_fall_with_retention_and_match_layer_shapes(student):
    full, mid, low = (student.flops(480, 640, r) for r in (1.0, 0.7, 0.4))
    assert full > mid > low
    assert low < 0.45 * full  # the method's target is a 60% FLOPs cut at retention 0.4
    # the stem alone: 120*160 outputs * 32 channels * 3*4*4 inputs
    c = student.counts(1.0)
    assert student.stem.macs(480, 640, c)[0] == 120 * 160 * 32 * 48
    assert student.flops(64, 64, 1.0) < student.flops(128, 128, 1.0)


def test_flops_reject_sizes_the_network_does_not_take(student):
    with pytest.raises(ValueError, match="100x64"):
        student.flops(100, 64)


def test_reorder_channels_keeps_the_function_at_full_retention(student):
    net = Student().eval()
    net.load_state_dict(student.state_dict())
    x = frame()
    with torch.no_grad():
        before = net(x, 1.0)
        gen = torch.Generator().manual_seed(3)
        net.reorder_channels({g: torch.rand(n, generator=gen) for g, n in net.channel_groups().items()})
        after = net(x, 1.0)
    assert not torch.equal(net.stem.weight, student.stem.weight)  # it did permute
    torch.testing.assert_close(after, before, atol=2e-5, rtol=1e-4)


def test_reorder_channels_puts_important_channels_first():
    net = Student().eval()
    old = net.down.weight.detach().clone()
    score = torch.zeros(64)
    score[42] = 5.0
    score[7] = 3.0
    net.reorder_channels({"stream": score})
    assert torch.equal(net.down.weight[0], old[42]) and torch.equal(net.down.weight[1], old[7])


def test_reorder_channels_rejects_unknown_group_and_wrong_length():
    net = Student()
    with pytest.raises(KeyError, match="nope"):
        net.reorder_channels({"nope": torch.zeros(3)})
    with pytest.raises(ValueError, match="stream"):
        net.reorder_channels({"stream": torch.zeros(5)})


def test_channel_params_cover_every_group_member(student):
    groups = student.channel_groups()
    for name, entries in student.channel_params().items():
        assert entries, name
        for p, dim, block in entries:
            assert p.shape[dim] == groups[name] * block


def test_context_block_adds_the_same_projected_frame_mean_everywhere(student):
    x = frame(128, 192)
    blk = student.context_blocks()[0]
    c = student.counts(1.0)
    h = torch.rand(1, 64, 16, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        added = blk(h, c) - h
        want = blk.o(blk.v(h.mean(dim=(2, 3), keepdim=True), c), c)
    torch.testing.assert_close(added, want.expand_as(added), atol=1e-6, rtol=1e-5)
    with torch.no_grad():   # it changes the output, and both blocks run at every retention
        for r in (1.0, 0.4):
            full = student(x, r)
            blocks = student.context
            try:
                student.context = torch.nn.ModuleList()
                assert not torch.allclose(full, student(x, r))
            finally:
                student.context = blocks


def test_gradients_reach_every_parameter_at_low_retention_for_kept_slices():
    net = Student()
    with torch.no_grad():
        for blk in net.context_blocks():
            blk.o.weight.normal_(0, 0.05)
    net(frame(), 0.4).mean().backward()
    c = net.counts(0.4)
    # kept slice gets a gradient, pruned channels get none (they were never computed)
    g = net.down.weight.grad
    assert g[: c["stream"]].abs().sum() > 0 and g[c["stream"]:].abs().sum() == 0


def test_config_is_small_and_visible():
    cfg = StudentConfig(widths=(16, 32), res_hidden=32, context_groups=4, group_width=4, min_groups=2)
    net = Student(cfg).eval()
    with torch.no_grad():
        assert net(frame(), 0.4).shape == (1, 3, 64, 96)
    assert check_retention(0.4) == 0.4


def test_attention_block_bundles_load_as_context_blocks():
    """A state_dict and config of the attention-block student (query/key weights, gate buffer, attn.* names,
    heads/head_dim/query_pool/key_pool fields) load into the context-block student; the value and output
    weights carry over, the query and key weights are dropped."""
    torch.manual_seed(0)
    net = Student().eval()
    old = {}
    for k, v in net.state_dict().items():
        old[k.replace("context.", "attn.")] = v.clone()
    for i in range(2):
        old[f"attn.{i}.q.weight"] = torch.randn(128, 64, 1, 1)
        old[f"attn.{i}.q.bias"] = torch.randn(128)
        old[f"attn.{i}.k.weight"] = torch.randn(128, 64, 1, 1)
        old[f"attn.{i}.k.bias"] = torch.randn(128)
        old[f"attn.{i}.keep_gate"] = torch.ones((), dtype=torch.bool)
    saved = {"widths": [32, 64], "attention_blocks": 2, "heads": 16, "head_dim": 8, "min_heads": 8,
             "query_pool": 2, "key_pool": 4, "subpixel": 1, "padding": "replicate"}
    cfg = StudentConfig.from_saved(saved, old)
    assert (cfg.context_blocks, cfg.context_groups, cfg.group_width, cfg.min_groups) == (2, 16, 8, 8)
    loaded = Student(cfg).eval()
    loaded.load_state_dict(old)   # strict: every key accounted for
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


@pytest.mark.parametrize("subpixel", [1, 2, 4])
def test_every_output_head_gives_full_resolution_and_prunes(subpixel):
    torch.manual_seed(0)
    net = Student(StudentConfig(subpixel=subpixel)).eval()
    with torch.no_grad():
        for r in (1.0, 0.4):
            y = net(frame(72, 88), r)
            assert y.shape == (1, 3, 72, 88) and 0 <= y.min() and y.max() <= 1
    assert net.flops(480, 640, 0.4) < 0.5 * net.flops(480, 640, 1.0)


def test_smooth_head_has_no_four_pixel_period():
    """A head that emits one value per 4x4 block (subpixel=1) cannot paint a 4-px checkerboard: with
    random weights and a flat input, the output's 4-px-period energy is far below that of the 4x4
    sub-pixel head."""
    def period4(net):
        with torch.no_grad():
            y = net(torch.full((1, 3, 128, 128), 0.5), 1.0)[0, :, 16:-16, 16:-16]
        blocks = y.reshape(3, 24, 4, 24, 4)
        within = blocks - blocks.mean(dim=(2, 4), keepdim=True)  # what varies inside each 4x4 block
        return within.mean(dim=(1, 3)).abs().mean().item()  # ...the same way in every block
    torch.manual_seed(1)
    nets = {s: Student(StudentConfig(subpixel=s)).eval() for s in (1, 4)}
    for net in nets.values():
        with torch.no_grad():
            net.out.weight.normal_(0, 0.5)
    assert period4(nets[1]) < 0.1 * period4(nets[4])


def test_subpixel_must_be_one_two_or_four():
    with pytest.raises(ValueError, match="subpixel"):
        Student(StudentConfig(subpixel=3))


def test_saved_config_without_subpixel_is_read_from_the_weights():
    for s in (1, 2, 4):
        state = Student(StudentConfig(subpixel=s)).state_dict()
        assert StudentConfig.from_saved({"widths": [32, 64]}, state).subpixel == s
    assert StudentConfig.from_saved({}).subpixel == 4  # a bundle of the first head, no weights at hand
    assert StudentConfig.from_saved({"subpixel": 2, "widths": [32, 64]}).widths == (32, 64)


def test_replicate_padding_has_no_border():
    # a uniform frame stays uniform at every level: no layer can tell the border from the interior
    torch.manual_seed(0)
    net = Student().eval()
    for blk in net.context_blocks():
        torch.nn.init.normal_(blk.o.weight, std=0.1)  # context on, so every path is exercised
    x = torch.full((1, 3, 72, 104), 0.3)
    with torch.no_grad():
        for r in (1.0, 0.7, 0.4):
            y = net(x, r)
            assert float((y - y.mean(dim=(2, 3), keepdim=True)).abs().max()) < 1e-5
        zeros = Student(StudentConfig(padding="zeros")).eval()
        zeros.load_state_dict(net.state_dict())
        y = zeros(x, 1.0)
        assert float((y - y.mean(dim=(2, 3), keepdim=True)).abs().max()) > 1e-3


def test_saved_configs_without_padding_are_the_zero_padded_students():
    assert StudentConfig.from_saved({"subpixel": 1}).padding == "zeros"
    assert StudentConfig().padding == "replicate"


def half_res_student(seed=0):
    torch.manual_seed(seed)
    net = Student(StudentConfig(half_width=16)).eval()
    with torch.no_grad():
        for blk in net.context_blocks():
            blk.o.weight.normal_(0, 0.05)
    return net


def test_half_resolution_stage_gives_full_resolution_prunes_and_counts_its_flops():
    net = half_res_student()
    x = frame(72, 88)
    with torch.no_grad():
        for r in (1.0, 0.7, 0.4):
            y = net(x, r)
            assert y.shape == (1, 3, 72, 88) and 0 <= y.min() and y.max() <= 1
        corr = torch.corrcoef(torch.stack([x.flatten(), net(x).flatten()]))[0, 1]
    assert corr > 0.8  # it starts near its input, like the smooth head
    c = net.counts(0.4)
    assert (c["skip2"], c["dec2"]) == (8, 8) and net.dec2.sizes(c) == (8, 8) and net.out.sizes(c) == (12, 8)
    assert len(net.retention_per_stage(0.4)) == len(Student().retention_per_stage(0.4)) + 2
    # the stage's own cost: 2x2 stem at 1/2, 1x1 at 1/4, 3x3 mix and 3x3 output at 1/2, gain and add
    extra = 240 * 320 * (16 * 12 + 16 * 16 * 9 + 12 * 16 * 9) + 120 * 160 * 16 * 32 + 3 * 480 * 640 * 2
    assert net.flops(480, 640) - Student().flops(480, 640) == extra - 120 * 160 * 3 * 32 * 9 - 3 * 480 * 640 * 5


def test_half_resolution_stage_starts_without_a_two_pixel_checkerboard():
    """The output conv's four sub-pixels start equal (ICNR), so depth-to-space paints 2x2 blocks."""
    net = half_res_student()
    with torch.no_grad():
        y = net.out(torch.rand(1, 16, 24, 24), net.counts(1.0))
    torch.testing.assert_close(y[:, 1::4], y[:, 0::4])
    torch.testing.assert_close(y[:, 3::4], y[:, 0::4])


@pytest.mark.parametrize("r", [2, 4])
def test_depth_to_space_exports_a_transposed_convolution_equal_to_pixel_shuffle(r, monkeypatch):
    # the export path (one nonzero tap per output of a transposed convolution) gives pixel_shuffle's values
    from muon_ad_ros.model.student import depth_to_space
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    x = torch.randn(2, 3 * r * r, 7, 5, generator=torch.Generator().manual_seed(r), requires_grad=True)
    y = depth_to_space(x, r)
    assert torch.equal(y, F.pixel_shuffle(x, r))
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(9))
    (got,) = torch.autograd.grad(y, x, grad)
    assert torch.equal(got, F.pixel_unshuffle(grad, r))


@pytest.mark.parametrize("retention", [1.0, 0.4])
def test_half_resolution_stage_reorders_and_slices_like_the_rest(retention):
    net = half_res_student()
    masked = Student(net.config).eval()
    masked.load_state_dict(net.state_dict())
    x = frame(64, 96)
    with torch.no_grad():
        before = net(x, 1.0)
        gen = torch.Generator().manual_seed(3)
        masked.reorder_channels({g: torch.rand(n, generator=gen) for g, n in masked.channel_groups().items()})
        torch.testing.assert_close(masked(x, 1.0), before, atol=2e-5, rtol=1e-4)
        c = masked.counts(retention)
        sliced = masked(x, retention)
        for name, entries in masked.channel_params().items():
            for p, dim, block in entries:
                if dim == 0:
                    p.narrow(0, c[name] * block, p.shape[0] - c[name] * block).zero_()
        torch.testing.assert_close(sliced, masked(x, 1.0), atol=1e-5, rtol=1e-4)


def test_half_width_is_checked_and_saved():
    with pytest.raises(ValueError, match="half_width"):
        Student(StudentConfig(half_width=16, subpixel=2))
    state = half_res_student().state_dict()
    assert StudentConfig.from_saved({"half_width": 16}, state).half_width == 16
    assert StudentConfig.from_saved({}, Student().state_dict()).half_width == 0
    bare = StudentConfig.from_saved({}, state)   # a student.pt without its model.json
    assert (bare.half_width, bare.subpixel, bare.padding) == (16, 1, "replicate")
    Student(bare).load_state_dict(state)


def test_bilinear_upsampling_leaves_no_two_by_two_blocks_and_counts_its_taps():
    """Nearest upsampling copies each 1/8 value into a 2x2 block at 1/4 (an 8-px block at full resolution);
    bilinear interpolates between them, prunes the same way and costs 4 taps per upsampled value."""
    near, bil = Student().eval(), Student(StudentConfig(upsample="bilinear")).eval()
    bil.load_state_dict(near.state_dict())
    h = torch.rand(1, 32, 6, 8, generator=torch.Generator().manual_seed(0))
    for net, blocky in ((near, True), (bil, False)):
        u = net._up2x(h)
        assert u.shape == (1, 32, 12, 16)
        assert torch.equal(u[..., 0::2, :], u[..., 1::2, :]) is blocky
    torch.testing.assert_close(bil._up2x(torch.full((1, 2, 4, 4), 0.3)), torch.full((1, 2, 8, 8), 0.3))
    x = frame(72, 88)
    with torch.no_grad():
        for r in (1.0, 0.4):
            assert bil(x, r).shape == (1, 3, 72, 88)
            assert not torch.equal(bil(x, r), near(x, r))
    c = bil.counts(0.4)
    assert bil.flops(480, 640, 0.4) - near.flops(480, 640, 0.4) == 4 * c["skip4"] * 120 * 160
    half = Student(StudentConfig(half_width=16, upsample="bilinear"))
    c = half.counts(1.0)
    assert (half.flops(480, 640) - Student(StudentConfig(half_width=16)).flops(480, 640)
            == 4 * (c["skip4"] * 120 * 160 + c["skip2"] * 240 * 320))


def test_upsample_is_checked_and_saved_configs_without_it_are_nearest():
    with pytest.raises(ValueError, match="upsample"):
        Student(StudentConfig(upsample="cubic"))
    assert StudentConfig.from_saved({"subpixel": 1}).upsample == "nearest"
    assert StudentConfig.from_saved({"upsample": "bilinear"}, Student().state_dict()).upsample == "bilinear"
