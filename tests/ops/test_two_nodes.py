"""Past one machine (tests/ops/two_nodes.py, `make two-nodes`) in a reduced form: two web nodes, two worker
nodes, one database and one broker; 50 consent writes through one web node, each checked through the other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.processes import PROJECT

ROUND_TRIPS = 50


def test_a_write_through_one_web_node_is_read_back_through_the_other(tmp_path: Path) -> None:
    # given two web nodes and two workers on one database and one broker
    # when a consent is written through web 1 and checked through web 2, fifty times, each write flipping it
    figures_path = tmp_path / "two-nodes.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.ops.two_nodes", "--round-trips", str(ROUND_TRIPS), "--json", str(figures_path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    # then every check answers what the write before it made, and both nodes are ready and share the workers
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(figures_path.read_text())
    assert figures["round_trips"] == ROUND_TRIPS
    assert figures["stale"] == 0
    assert figures["errors"] == 0
    assert figures["ready"] == {"web1": 200, "web2": 200}
    assert figures["access_completed"] == 4
    assert figures["lines"]["web2"] >= ROUND_TRIPS  # every check was answered by the other web node's process
    print(f"\ntwo nodes: {ROUND_TRIPS} round trips, 0 stale, round trip ms {figures['round_trip_ms']}")
