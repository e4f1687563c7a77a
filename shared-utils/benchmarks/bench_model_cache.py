"""First load (GGUF de-quantisation + caching) vs cached load of the embedded SmolLM2.

Both are measured in this one process: the first into a fresh temporary cache folder, the
second from that folder. Run with ``make bench-shared-utils``.
"""

from __future__ import annotations

import os
import tempfile
import time


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SHARED_UTILS_CACHE"] = cache
        from shared_utils.models import load_causal_lm, resolve_model

        timings = []
        for label in ("first load (GGUF -> safetensors cache)", "cached load"):
            start = time.perf_counter()
            model, _ = load_causal_lm("smollm2-135m-instruct")
            timings.append((label, time.perf_counter() - start))
            del model
        assert resolve_model("smollm2-135m-instruct").from_cache
    width = max(len(label) for label, _ in timings)
    print(f"{'load':<{width}}  seconds")
    for label, seconds in timings:
        print(f"{label:<{width}}  {seconds:7.2f}")
    print(f"{'speed-up':<{width}}  {timings[0][1] / timings[1][1]:7.1f}x")


if __name__ == "__main__":
    main()
