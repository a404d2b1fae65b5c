"""The demo's Collector with the whole graph as real processes: a snapshot puts side by side the
camera frame, the stylized frame and the annotated frame of one camera stamp."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import wait_for
from muon_ad_ros import graph
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.launcher.demo import Collector, node_fps


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    scenes = [s for s in rec.bundled_scenes() if s.name.startswith("street")][:2]
    return str(rec.make_recording(tmp_path_factory.mktemp("rec") / "edge.db3", scenes, 320, 240, 30, 20))


def test_snapshot_panels_share_one_camera_stamp(start_nodes, recording, tmp_path):
    from bundle_helpers import tiny_bundle
    bundle = tiny_bundle(tmp_path / "bundle")
    col = Collector("", snapshot_dir=tmp_path)
    try:
        g = start_nodes(graph.edge_graph(("realsense",), recording=recording, style_model=bundle,
                                         camera_fps=30.0, width=320, height=240))
        assert wait_for(lambda: col.matched() is not None, 60), {n: g.log(n)[-1500:] for n in g.procs}
        stamp = col.snapshot(tmp_path / "snap.png")
        assert stamp is not None
        with col.lock:
            raw, stylized, annotated = (col.recent[k][stamp] for k in ("raw", "stylized", "annotated"))
        # annotated is that camera frame with boxes drawn on it: most pixels equal; stylized is not a copy
        assert np.mean(np.all(annotated == raw, axis=-1)) > 0.8
        assert not np.array_equal(stylized, raw)
        snap = cv2.imread(str(tmp_path / "snap.png"))
        assert snap.shape == (240, 3 * 320, 3)
    finally:
        col.close()


def test_node_fps_counts_what_each_node_processed_between_two_snapshots():
    def diag(t, **processed):
        return {name: {"t": t, "values": {"frames_processed": str(n)}} for name, n in processed.items()}
    start = {**diag(100.0, camera=10, style=8), "controller: control": {"t": 100.0, "values": {"mode": "manual"}}}
    end = {**diag(140.0, camera=1210, style=1008, detection=400), "controller: control": start["controller: control"]}
    # detection reported nothing at the start and the controller counts no frames: neither gets a rate
    assert node_fps(start, end) == {"camera": 30.0, "style": 25.0}
    assert node_fps({}, end) == {}
