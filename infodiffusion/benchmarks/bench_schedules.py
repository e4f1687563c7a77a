"""InfoDiffusion's schedule against DiffuSeq's on the same model: training steps/s, sampling
samples/s and reverse steps to 95% of the final BLEU, and ours / a DiffuSeq-equivalent reference
step at the full vocabulary (training steps/s, sampling samples/s with clamping). Same as
``infodiffusion bench``."""

import sys

from infodiffusion.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
