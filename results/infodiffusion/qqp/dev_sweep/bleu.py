"""BLEU (the package's sentence-BLEU mean, package normaliser) of a samples.jsonl: python bleu.py RUN [SAMPLES]"""

import json, sys
from pathlib import Path
from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.evaluate import normaliser, read_samples, group_candidates
from infodiffusion.metrics import corpus_sentence_bleu
from shared_utils.config import load_config
import yaml

run = Path(sys.argv[1])
samples = Path(sys.argv[2]) if len(sys.argv) > 2 else run / "samples.jsonl"
cfg = load_config(InfoDiffusionConfig, str(run / "config.yaml"), {})
cands, refs = group_candidates(read_samples(samples))
norm = normaliser(cfg)
print(round(corpus_sentence_bleu([norm(c[0]) for c in cands], [norm(r) for r in refs]), 4))
