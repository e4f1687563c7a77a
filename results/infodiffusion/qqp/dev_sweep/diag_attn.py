"""Does target slot k attend to source word k? python diag_attn.py RUN [--init] [--t T] [--n 100]

At step t (default T) on the dev slice valid[:100], noise the targets (fixed seed), run the denoiser
once and, from the inputs of every layer's self-attention, recompute each head's attention
weights. For target slots whose position id k (model.target_positions restart) has a source word
k, it reports per layer the attention mass on that aligned source word (mean over heads, and the
best head) and on all source positions (mean over heads); chance for the aligned word is
1/seq_len. ``--init`` scores the step-0 model (init_from applied) instead of the EMA weights.
Prints one JSON object (``--record NAME``: also stored in probes.json, attention[NAME]).
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
parser.add_argument("--t", type=int, default=0, help="diffusion step (0: T)")
parser.add_argument("--n", type=int, default=100)
parser.add_argument("--split", default="valid[:100]")
parser.add_argument("--set", nargs="*", default=[], help="key=value overrides of the run's config (with --init)")
parser.add_argument("--record")
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
T = art.diffusion.steps
t = args.t or T
captured = []
hooks = [
    layer.attention.self.register_forward_hook(lambda mod, inp, out: captured.append((mod, inp[0])))
    for layer in model.encoder.layer
]
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    tt = torch.full((len(ids),), t, dtype=torch.long)
    x0 = model.embed(ids)
    abar = art.diffusion.schedule.alpha_bar(tt, art.diffusion.token_info(ids, mask))
    x_t = q_sample(x0, abar, torch.randn(x0.shape, generator=gen), mask)
    art.diffusion.denoise(model, x_t, tt, mask, None)
    pos = model.position_ids(mask)
    tmask = mask.bool()
    starts = tmask.float().argmax(1)
    B, L = ids.shape
    # aligned[b, j] = index of the source word with target slot j's position id (or -1)
    idx = torch.arange(L).expand(B, L)
    n_src = (starts - 2).unsqueeze(1)
    aligned = torch.where(tmask & (pos >= 1) & (pos <= n_src), pos, torch.full_like(pos, -1))
    rows = aligned >= 0
    src_cols = (idx >= 1) & (idx < (starts - 1).unsqueeze(1))
    layers = []
    for mod, h in captured:
        H, dh = mod.num_attention_heads, mod.attention_head_size
        q = mod.query(h).view(B, L, H, dh).transpose(1, 2)
        k = mod.key(h).view(B, L, H, dh).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5, -1)  # [B, H, L, L]
        gathered = att.gather(-1, aligned.clamp(min=0).unsqueeze(1).unsqueeze(-1).expand(B, H, L, 1)).squeeze(-1)
        per_head = torch.stack([gathered[:, hh][rows].mean() for hh in range(H)])
        src_mass = (att * src_cols.unsqueeze(1).unsqueeze(2)).sum(-1)  # [B, H, L]
        layers.append(
            {
                "aligned_mean": round(float(per_head.mean()), 4),
                "aligned_best_head": round(float(per_head.max()), 4),
                "best_head": int(per_head.argmax()),
                "source_mass_mean": round(
                    float(torch.stack([src_mass[:, hh][rows].mean() for hh in range(H)]).mean()), 4
                ),
            }
        )
for hk in hooks:
    hk.remove()
out = {
    "run": str(run),
    "weights": "init" if args.init else "ema",
    "set": args.set,
    "t": t,
    "T": T,
    "slots": int(rows.sum()),
    "chance_aligned": round(1 / L, 4),
    "layers": layers,
}
print(json.dumps(out))
if args.record:
    path = Path(__file__).resolve().parent / "probes.json"
    data = json.loads(path.read_text())
    data.setdefault("attention", {})[args.record] = out
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
