"""The same run twice, in two fresh processes, gives the same teacher cache bytes, the same losses and
the same outputs (issue 13: numbers that did not reproduce); the teacher cache is also the same under
another torch thread count. Training itself is not: on some CPUs a 2-thread run's losses differ from a
1-thread run's in the 7th digit by step 3 (seen on this project's 2-core machines), so the full
comparison holds the thread count fixed."""

import json
import subprocess
import sys
from pathlib import Path


def _run(tmp_path: Path, name: str, threads: int) -> dict:
    worker = Path(__file__).parent / "determinism_worker.py"
    out = tmp_path / name / "out.json"
    out.parent.mkdir()
    subprocess.run([sys.executable, str(worker), str(out), str(threads)], check=True, timeout=600)
    return json.loads(out.read_text())


def test_two_runs_give_identical_teacher_cache_losses_and_outputs(tmp_path):
    one_thread, first, second = _run(tmp_path, "a", 1), _run(tmp_path, "b", 2), _run(tmp_path, "c", 2)
    assert len(first["history"]) == 3 and "loss/inter" in first["history"][0]
    assert first == second
    assert one_thread["cache_sha256"] == first["cache_sha256"] and one_thread["covered"] == first["covered"]
