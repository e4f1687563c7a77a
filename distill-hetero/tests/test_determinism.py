"""The same run twice, in two fresh processes with different torch thread counts, gives the same teacher
cache bytes, the same losses and the same outputs (issue 13: numbers that did not reproduce)."""

import json
import subprocess
import sys
from pathlib import Path


def test_two_runs_give_identical_teacher_cache_losses_and_outputs(tmp_path):
    worker = Path(__file__).parent / "determinism_worker.py"
    runs = []
    for name, threads in (("a", 1), ("b", 2)):
        out = tmp_path / name / "out.json"
        out.parent.mkdir()
        subprocess.run([sys.executable, str(worker), str(out), str(threads)], check=True, timeout=600)
        runs.append(json.loads(out.read_text()))
    first, second = runs
    assert len(first["history"]) == 3 and "loss/inter" in first["history"][0]
    assert first == second
