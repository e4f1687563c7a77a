"""Copy-the-source baseline on the QQP evaluation records of the shipped ``qqp_minilm`` config:
the source question as the paraphrase, scored like the models (tokenizer normalisation,
sentence BLEU-4 and ROUGE-L). Run: ``python results/infodiffusion/qqp/copy_source.py``."""

import json
from pathlib import Path

from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.data import load_pairs
from infodiffusion.evaluate import normaliser
from infodiffusion.metrics import corpus_sentence_bleu, rouge_l
from shared_utils.config import load_config

cfg = load_config(InfoDiffusionConfig, "qqp_minilm", {}, package="infodiffusion")
pairs = load_pairs(cfg.data.dataset, cfg.data.eval_split, cfg.data.max_eval)
norm = normaliser(cfg)
hyps, refs = [norm(p["src"]) for p in pairs], [norm(p["trg"]) for p in pairs]
out = {
    "data": f"{cfg.data.dataset} {cfg.data.eval_split} (first {cfg.data.max_eval})",
    "n": len(pairs),
    "bleu": corpus_sentence_bleu(hyps, refs),
    "rouge_l": rouge_l(hyps, refs),
}
Path(__file__).with_name("copy_source.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
