"""Recording the graph into MCAP with real node processes: every listed topic written with rosbag2's
conventions (profile ros2, ros2msg schemas, CDR), and read back by an independent decoder
(mcap-ros2-support, what Foxglove's parser does) from the schema text alone."""
from __future__ import annotations

import pytest

from conftest import wait_for
from muon_ad_ros import graph
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.launcher.record import Recorder, graph_topics, message_definition


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    scenes = [s for s in rec.bundled_scenes() if s.name.startswith("street")][:1]
    return str(rec.make_recording(tmp_path_factory.mktemp("rec") / "edge.db3", scenes, 320, 240, 30, 20))


def test_message_definition_lists_each_nested_type_once():
    text = message_definition("muon_ad_ros/msg/DetectionArray")
    assert text.startswith("# Detections") and text.count("MSG: std_msgs/Header") == 1
    assert "MSG: muon_ad_ros/Detection\n" in text and "MSG: builtin_interfaces/Time\n" in text


def test_recording_of_the_graph_opens_with_an_mcap_ros2_reader(start_nodes, recording, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from bundle_helpers import tiny_bundle

    topics = graph_topics("", graph.CAMERA_TOPIC)
    path = tmp_path / "graph.mcap"
    r = Recorder(path, topics)
    try:
        g = start_nodes(graph.edge_graph(("realsense",), recording=recording, style_model=tiny_bundle(tmp_path / "b"),
                                         width=320, height=240))
        # a transient-local topic hands a late subscriber its latest sample only: one /tf_static message
        # when the camera set its transforms before the recorder matched, two when it matched first
        want = {t: 1 if kind == "static" else 2 for t, _, kind in topics}
        assert wait_for(lambda: all(r.counts[t] >= n for t, n in want.items()), 60), \
            (r.counts, {n: g.log(n)[-800:] for n in g.procs})
    finally:
        counts = r.close()
    assert all(counts[t] >= n for t, n in want.items()), counts

    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        summary = reader.get_summary()
        assert header.profile == "ros2"
        by_topic = {c.topic: (c, summary.schemas[c.schema_id]) for c in summary.channels.values()}
        for topic, type_name, _ in topics:
            channel, schema = by_topic[topic]
            assert channel.message_encoding == "cdr" and schema.encoding == "ros2msg" and schema.name == type_name
        seen = {}
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            seen.setdefault(channel.topic, decoded)
    assert set(seen) == {t for t, _, _ in topics}
    assert seen["/stylized/image_raw/compressed"].format == "rgb8; jpeg compressed bgr8"
    assert seen["/stylized/image_raw/compressed"].header.frame_id == "camera_color_optical_frame"
    assert any(t.child_frame_id == "camera_link" for t in seen["/tf_static"].transforms)
    assert seen["/diagnostics"].status and seen["/detections"].backend == "onnxruntime"   # the bundled COCO SSD
