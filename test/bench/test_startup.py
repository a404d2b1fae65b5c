"""muon-ad bench startup on one start: the graph comes up, a default-environment process lists every
node and reads a parameter, and the report carries each figure."""
from muon_ad_ros.bench.startup import markdown, run


def test_one_start_reports_every_first(tmp_path):
    r = run(1, 60.0, tmp_path)
    row = r["rows"][0]
    assert row["first_stylized_s"] is not None and row["first_detections_s"] is not None, row
    assert row["default_process_lists_all_s"] is not None and row["default_process_read_param_s"] is not None, row
    assert set(row["exit_codes"].values()) == {0}, row
    md = markdown(r)
    assert "| stylized frame |" in md and "| default process lists every node |" in md
