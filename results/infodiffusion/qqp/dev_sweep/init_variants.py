"""Step-0 variants of the target slots (dev slice valid[:100], t = T unless noted), run on probe K's
run folder for its config and vocabulary: python init_variants.py RUN

(1) the target slots filled with the zero vector, the [MASK] or the [PAD] embedding (no input scaling):
accuracy of x̂₀, share equal to the aligned copy, attention mass on the source per layer; (2) the
segment embedding as initialised (AB) or with the target given the source's (AA), at t = T and 0.9T:
aligned attention mean/best head per layer. Printed only; the numbers are in probes.json, init_variants.
"""

import sys
from pathlib import Path

import torch

from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.data import load_pairs
from infodiffusion.model import DiffusionTransformer, init_from_encoder
from infodiffusion.run import load_artifacts
from shared_utils.config import load_config
from shared_utils.models import load_encoder

run = Path(sys.argv[1])
cfg = load_config(InfoDiffusionConfig, str(run / "config.yaml"), {"model.input_scaling": "none"})
art = load_artifacts(cfg, run)
model = DiffusionTransformer(cfg.model, len(art.vocab), cfg.data.seq_len)
init_from_encoder(model, cfg.model.init_from, art.vocab.full_ids)
model.eval()
enc, _ = load_encoder("minilm-l6")
W = enc.embeddings.word_embeddings.weight
scale = W[torch.tensor(art.vocab.full_ids)].std()
ids, mask = art.encode(load_pairs(cfg.data.dataset, "valid[:100]", 100), cfg.data.seq_len)
tm = mask.bool()
pad = art.vocab.pad
content = tm & (ids != pad)
starts = tm.float().argmax(1)
copy = torch.full_like(ids, pad)
for b in range(len(ids)):
    s = int(starts[b])
    n = s - 2
    for k in range(ids.shape[1] - s):
        copy[b, s + k] = ids[b, 1 + k] if k < n else pad
captured = []
for layer in model.encoder.layer:
    layer.attention.self.register_forward_hook(lambda m, i, o: captured.append((m, i[0])))
tok = art.tokenizer
for name, vec in [
    ("zero", torch.zeros(W.shape[1])),
    ("mask", W[tok.mask_token_id] / scale),
    ("pad", W[tok.pad_token_id] / scale),
]:
    captured.clear()
    with torch.no_grad():
        x = model.embed(ids)
        x = torch.where(tm.unsqueeze(-1), vec.expand_as(x), x)
        tt = torch.full((len(ids),), 500)
        x0 = model(x, tt, mask, None)
        pred = model.logits(x0).argmax(-1)
        B, L = ids.shape
        srcc = (torch.arange(L).expand(B, L) >= 1) & (torch.arange(L).expand(B, L) < (starts - 1).unsqueeze(1))
        masses = []
        for m, h in captured:
            H, dh = m.num_attention_heads, m.attention_head_size
            q = m.query(h).view(B, L, H, dh).transpose(1, 2)
            k = m.key(h).view(B, L, H, dh).transpose(1, 2)
            att = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5, -1)
            masses.append(round(float((att * srcc[:, None, None, :]).sum(-1).permute(0, 2, 1)[content].mean()), 3))
    print(
        name,
        "acc",
        round(float((pred == ids)[content].float().mean()), 3),
        "pred==copy",
        round(float((pred == copy)[content].float().mean()), 3),
        "src mass by layer",
        masses,
    )

# (2) segment embeddings: AB (as initialised) vs AA (target slots get the source's)
from infodiffusion.diffusion import q_sample  # noqa: E402

cfg = load_config(InfoDiffusionConfig, str(run / "config.yaml"), {})
real = content & (copy != pad)
for variant in ["AB", "AA"]:
    model = DiffusionTransformer(cfg.model, len(art.vocab), cfg.data.seq_len)
    init_from_encoder(model, cfg.model.init_from, art.vocab.full_ids)
    if variant == "AA":
        with torch.no_grad():
            model.segment_embedding.weight[1] = model.segment_embedding.weight[0]
    model.eval()
    captured = []
    for layer in model.encoder.layer:
        layer.attention.self.register_forward_hook(lambda m, i, o: captured.append((m, i[0])))  # noqa: B023
    for t in [500, 450]:
        captured.clear()
        with torch.no_grad():
            tt = torch.full((len(ids),), t)
            x0 = model.embed(ids)
            abar = art.diffusion.schedule.alpha_bar(tt)
            x_t = q_sample(x0, abar, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)), mask)
            out = art.diffusion.denoise(model, x_t, tt, mask)
            pred = model.logits(out).argmax(-1)
            B, L = ids.shape
            pos = model.position_ids(mask)
            al = torch.where(tm & (pos >= 1) & (pos <= (starts - 2).unsqueeze(1)), pos, torch.zeros_like(pos))
            res = []
            for m, h in captured:
                H, dh = m.num_attention_heads, m.attention_head_size
                q = m.query(h).view(B, L, H, dh).transpose(1, 2)
                k = m.key(h).view(B, L, H, dh).transpose(1, 2)
                att = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5, -1)
                g = att.gather(-1, al[:, None, :, None].expand(B, H, L, 1)).squeeze(-1)  # B H L
                ph = torch.stack([g[:, hh][al > 0].mean() for hh in range(H)])
                res.append((round(float(ph.mean()), 3), round(float(ph.max()), 3)))
        print(
            variant,
            t,
            "acc",
            round(float((pred == ids)[content].float().mean()), 3),
            "pred==aligned src word",
            round(float((pred == copy)[real].float().mean()), 3),
            "aligned attn mean/best",
            res,
        )
