"""The JSON + Markdown pair every benchmark report writes (what it was measured with: muon_ad_ros.measure)."""
from __future__ import annotations

import json
from pathlib import Path

from muon_ad_ros.provenance import git_commit, git_dirty


def write_report(out_dir: Path, name: str, result: dict, markdown: str) -> tuple[Path, Path]:
    """Writes <name>.json and <name>.md into out_dir and prints their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    commit, dirty = git_commit(), git_dirty()
    result = {"commit": (commit or "")[:12] + ("+dirty" if dirty else ""), **result}
    js, md = out_dir / f"{name}.json", out_dir / f"{name}.md"
    js.write_text(json.dumps(result, indent=2, default=float))
    md.write_text(markdown)
    print(f"wrote {js} and {md}")
    return js, md
