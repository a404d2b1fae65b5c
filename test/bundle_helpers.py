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


def context_student():
    """Returns a seeded untrained student in eval mode whose global-context blocks change the output (an
    untrained block is the identity)."""
    import torch

    from muon_ad_ros.model.student import Student
    torch.manual_seed(0)
    net = Student().eval()
    with torch.no_grad():
        for blk in net.context_blocks():
            blk.o.weight.normal_(0, 0.05)
    return net