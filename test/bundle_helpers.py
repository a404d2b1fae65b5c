"""A small exported student bundle for node tests (untrained weights: the tests check plumbing,
headers, pruning and scheduling, not the look)."""
from pathlib import Path

_CACHE: dict = {}


def tiny_bundle(out_dir: Path) -> str:
    """Returns the path of a bundle with levels 1.0/0.7/0.4 exported from a seeded untrained student."""
    import numpy as np
    import torch

    from muon_ad_ros.train.export import export_bundle
    from muon_ad_ros.model.student import Student, StudentConfig
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    calib = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    export_bundle(Student(StudentConfig()), out_dir, levels=(1.0, 0.7, 0.4), calibration_images=calib,
                  style_meta={"name": "test_untrained"}, training_record={"command": "untrained (test)"})
    return str(out_dir)


def attention_student(skipped_block: int):
    """Returns a seeded untrained student in eval mode whose attention outputs are not zero and whose
    attention block `skipped_block` is gated off (the export and backends must honour the gate)."""
    import torch

    from muon_ad_ros.model.student import Student
    torch.manual_seed(0)
    net = Student().eval()
    with torch.no_grad():
        for blk in net.attention_blocks():
            blk.o.weight.normal_(0, 0.05)
    net.attention_blocks()[skipped_block].keep = False
    return net
