"""The restore drill (tests/ops/drill.py, `make drill`) in a reduced form: a handful of people, the same steps
and proofs. It runs as the operator runs it, in a process of its own with databases of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.processes import PROJECT

SUBJECTS = 10


def run_drill(tmp_path: Path, *options: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / "drill.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.ops.drill", "--subjects", str(SUBJECTS), "--json", str(report), *options],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    return done.returncode, json.loads(report.read_text()) if report.exists() else {}, output


def test_after_a_restore_the_replay_erases_the_three_again_and_leaves_everyone_else(tmp_path: Path) -> None:
    # given a seeded database backed up, three people erased after the backup, and the backup restored
    # when the operator replays the erasure log against the restored database
    code, report, output = run_drill(tmp_path)

    # then the three can be neither read nor found, the others are as they were, and every chain verifies
    assert code == 0, output
    assert report["subjects"] == SUBJECTS
    assert report["replay_output"].count(": re-applied") == 3
    assert report["erased_unreadable"] == report["erased_unresolvable"] == 3
    assert report["others_untouched"] == SUBJECTS - 3
    assert report["chains_verified"] > 0
    assert set(report["seconds"]) == {"seed", "dump", "erase", "restore", "replay", "verify"}
    assert report["dump_bytes"] > 0
    print(f"\nrestore drill ({SUBJECTS} subjects): {report['seconds']}")


def test_without_the_replay_the_drill_finds_the_erased_people_readable_again(tmp_path: Path) -> None:
    # given the same drill, when the operator forgets to replay the erasure log after the restore
    code, report, output = run_drill(tmp_path, "--no-replay")

    # then the drill fails, naming an erased person whose data opens again
    assert code == 1, output
    assert "a backed-up identifier still opens" in report["failed"]
