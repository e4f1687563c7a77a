"""Benchmark: re-weighted vs plain LoRA step time, and the filtering pass vs one training epoch.

    python semantic-peft/benchmarks/bench_speed.py [--steps 6] [any config option, e.g. --train.batch_size 8]

Both numbers come from one run on one machine (ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import json

from semantic_peft.bench import run_bench
from semantic_peft.config import ExperimentConfig
from shared_utils.config import add_config_arguments, load_config

PACKAGE = "semantic_peft"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    add_config_arguments(parser, ExperimentConfig, "default", package=PACKAGE)
    args, rest = parser.parse_known_args()
    result = run_bench(load_config(ExperimentConfig, args.config, rest, package=PACKAGE), args.steps)
    print(json.dumps(result, indent=2))
    print(f"re-weighted / plain LoRA step time: {result['reweighted_over_plain']:.3f}x (target <= 1.10x)")
    print(f"filtering pass / one training epoch: {result['filtering_over_epoch']:.3f}x")


if __name__ == "__main__":
    main()
