"""Teacher-forced diagnostics of a QQP run on the dev slice: python diag.py RUN [--init] [--n 100]

For t in {1, T/4, T/2, 3T/4, 0.9T, 0.98T, T}: noise the dev targets to step t (fixed seed), predict
x0-hat once and report the argmax-rounding token accuracy of x0-hat at content target positions
(target words + the closing [SEP]) and at [PAD] positions, the share of the target MSE that is
[PAD], and the accuracy of rounding x_t / sqrt(abar_t) itself (no network: what the noise level
leaves readable) and of copying the source token at the same target offset. ``--init`` scores the
step-0 model (the run's config with ``--set`` overrides, ``model.init_from`` applied) instead of
the trained EMA weights.
Prints one JSON object (``--record NAME``: also stored in probes.json, diagnostics[NAME]).
"""

import argparse
import json
from pathlib import Path

import torch

from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.data import load_pairs
from infodiffusion.diffusion import q_sample
from infodiffusion.evaluate import load_model
from infodiffusion.model import DiffusionTransformer, init_from_encoder
from infodiffusion.run import load_artifacts
from shared_utils.config import load_config

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--init", action="store_true")
parser.add_argument("--n", type=int, default=100)
parser.add_argument("--split", default="valid[:100]")
parser.add_argument("--set", nargs="*", default=[], help="key=value overrides of the run's config (with --init)")
parser.add_argument("--record", help="also store the result in probes.json under diagnostics[RECORD]")
args = parser.parse_args()

run = Path(args.run)
cfg = load_config(InfoDiffusionConfig, str(run / "config.yaml"), dict(kv.split("=", 1) for kv in args.set))
art = load_artifacts(cfg, run)
if args.init:
    model = DiffusionTransformer(cfg.model, len(art.vocab), cfg.data.seq_len)
    if cfg.model.init_from:
        init_from_encoder(model, cfg.model.init_from, art.vocab.full_ids)
else:
    model = load_model(run, True)
model.eval()
ids, mask = art.encode(load_pairs(cfg.data.dataset, args.split, args.n), cfg.data.seq_len)
pad = art.vocab.pad
tmask = mask.bool()
content, pads = tmask & (ids != pad), tmask & (ids == pad)
# copy baseline: target word k <- source word k (source starts after [CLS], target after [SEP])
starts = tmask.float().argmax(1)
copy = torch.full_like(ids, pad)
for b in range(len(ids)):
    s = int(starts[b])
    n_src = s - 2
    for k in range(ids.shape[1] - s):
        copy[b, s + k] = ids[b, 1 + k] if k < n_src else pad
T = art.diffusion.steps
out = {"run": str(run), "weights": "init" if args.init else "ema", "set": args.set, "T": T, "n": len(ids), "by_t": []}
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    x0 = model.embed(ids)
    out["copy_acc_content"] = float((copy == ids)[content].float().mean())
    for t in sorted({1, T // 4, T // 2, 3 * T // 4, int(0.9 * T), int(0.98 * T), T}):
        tt = torch.full((len(ids),), t, dtype=torch.long)
        abar = art.diffusion.schedule.alpha_bar(tt, art.diffusion.token_info(ids, mask))
        x_t = q_sample(x0, abar, torch.randn(x0.shape, generator=gen), mask)
        x0_hat = art.diffusion.denoise(model, x_t, tt, mask, None)
        pred = model.logits(x0_hat).argmax(-1)
        raw = model.logits(x_t / abar.sqrt().unsqueeze(-1)).argmax(-1)
        sq = ((x0_hat - x0) ** 2).mean(-1)
        out["by_t"].append(
            {
                "t": t,
                "abar": round(float(abar.mean()), 5),
                "acc_content": round(float((pred == ids)[content].float().mean()), 4),
                "acc_pad": round(float((pred == ids)[pads].float().mean()), 4),
                "acc_round_xt_content": round(float((raw == ids)[content].float().mean()), 4),
                "mse_content": round(float(sq[content].mean()), 4),
                "mse_pad": round(float(sq[pads].mean()), 4),
                "pad_share_of_mse": round(float(sq[pads].sum() / sq[tmask].sum()), 4),
                "pred_top": art.tokenizer.convert_ids_to_tokens(
                    art.vocab.to_full(torch.bincount(pred[content], minlength=len(art.vocab)).topk(3).indices.tolist())
                ),
            }
        )
out["pad_share_of_target_positions"] = round(float(pads.sum() / tmask.sum()), 4)
print(json.dumps(out))
if args.record:
    path = Path(__file__).resolve().parent / "probes.json"
    data = json.loads(path.read_text())
    data.setdefault("diagnostics", {})[args.record] = out
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
