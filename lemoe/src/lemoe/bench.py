"""``lemoe bench``: editing throughput of LEMoE, WISE, FT-L, LoRA and GRACE, the cost of one batch
after 1, 5, 25 and 50 batches (LEMoE past its expert cap, WISE), inference latency of the edited
model over the unedited one, and parameters/memory per expert, all measured in one run."""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from pathlib import Path

import torch

from lemoe.baselines import FTLEditor, GRACEEditor, LoRAEditor, WISEEditor
from lemoe.config import BaselineConfig, LEMoEConfig
from lemoe.data import load_edits
from lemoe.editor import LEMoEEditor
from shared_utils.atomic import atomic_write_text
from shared_utils.results import device_description, replace_marked_section, write_results


def _ratio(edited, unedited, repeats: int) -> float:
    """Median time of ``edited`` over median time of ``unedited``, timed alternately (shared-CPU drift),
    each going first in every other pair (so neither always runs on a cache the other warmed)."""
    edited(), unedited()  # warm-up
    times: dict[str, list[float]] = {"edited": [], "unedited": []}
    pair = [("edited", edited), ("unedited", unedited)]
    for i in range(repeats):
        for name, fn in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["edited"]) / statistics.median(times["unedited"])


def batch_costs(editor, requests, size: int, marks: tuple[int, ...]) -> dict[int, tuple[float, int]]:
    """Edit ``max(marks)`` batches of ``size`` requests (cycling through ``requests``); for each batch number in
    ``marks``: (seconds that batch took, sequences it trained on)."""
    out = {}
    for b in range(1, max(marks) + 1):
        start = (b - 1) * size
        batch = [requests[(start + i) % len(requests)] for i in range(size)]
        began = time.perf_counter()
        record = editor.edit(batch)
        if b in marks:
            out[b] = (time.perf_counter() - began, record["sequences"])
    return out


def run_bench(
    model_name: str = "smollm2-135m-instruct",
    edits: int = 20,
    steps: int = 10,
    experts: int = 5,
    layer: int = 25,
    repeats: int = 15,
    gate: str = "activation",
    marks: tuple[int, ...] = (1, 5, 25, 50),
    output: str | None = None,
    readme: str | None = None,
) -> dict[str, float]:
    """Print and return the benchmark numbers (ratios are measured in this one process); with ``output``
    also write them as a results JSON (and the printed report beside it as ``.md``), with ``readme`` put
    the report into that README's ``bench`` section."""
    from shared_utils.models import load_causal_lm

    base, tok = load_causal_lm(model_name)
    requests = load_edits("builtin")
    cfg = LEMoEConfig()
    cfg.adaptor.layer, cfg.train.max_steps, cfg.train.early_stop_loss, cfg.train.progress = layer, steps, -1.0, False
    cfg.router.null_threshold = gate
    batch = requests[:edits]
    out: dict[str, float] = {}
    b = BaselineConfig()
    makers = {
        "lemoe": lambda m: LEMoEEditor(m, tok, cfg),
        "wise": lambda m: WISEEditor(m, tok, cfg.adaptor, cfg.train, b.wise),
        "ft_l": lambda m: FTLEditor(m, tok, cfg.adaptor, cfg.train, b.ftl_lr, b.ftl_module),
        "lora": lambda m: LoRAEditor(m, tok, cfg.adaptor, cfg.train, b.lora_lr, b.lora_rank, b.lora_alpha),
        "grace": lambda m: GRACEEditor(m, tok, cfg.adaptor, cfg.train, b.grace_lr, b.grace_eps),
    }
    for name, make in makers.items():
        editor = make(copy.deepcopy(base))
        start = time.perf_counter()
        editor.edit(batch)
        out[f"{name}_edits_per_s"] = edits / (time.perf_counter() - start)
    # cost of one batch as edits accumulate (fixed steps, no early stop): LEMoE reuses its last expert past
    # the cap with a bounded replay; WISE adds one shard per batch
    for name in ("lemoe", "wise"):
        for mark, (seconds, sequences) in batch_costs(
            makers[name](copy.deepcopy(base)), requests, edits, marks
        ).items():
            out[f"{name}_batch{mark}_s"], out[f"{name}_batch{mark}_sequences"] = seconds, sequences
    # inference latency: an editor with `experts` experts (one short batch each) vs the unedited model
    cfg.train.max_steps = 1
    model = copy.deepcopy(base)
    editor = LEMoEEditor(model, tok, cfg)
    for i in range(experts):
        editor.edit(requests[i * edits : (i + 1) * edits] or batch)
    prompts = [r.prompt for r in requests[:32]]
    enc = tok(prompts, return_tensors="pt", padding=True)
    enc_left = tok(prompts, return_tensors="pt", padding=True, padding_side="left")

    # edited vs unedited on the *same* weights (the adaptor on vs ``editor.detached()``): two model copies
    # differed by up to 20% in plain matmul time here, depending on how their memory was allocated
    def timed(run, detached: bool):
        def call():
            with torch.no_grad(), editor.detached() if detached else contextlib.nullcontext():
                return run()

        return call

    def forward():
        return model(**enc)

    def generate():
        return model.generate(**enc_left, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)

    out["forward_latency_ratio"] = _ratio(timed(forward, False), timed(forward, True), repeats)
    out["generate_latency_ratio"] = _ratio(timed(generate, False), timed(generate, True), repeats)
    out["generate_noise_ratio"] = _ratio(timed(generate, True), timed(generate, True), repeats)  # A/A
    expert = editor.adaptor.experts[0]
    per_expert = sum(p.numel() for p in expert.parameters()) + editor.adaptor.router.keys[0].numel()
    out["params_per_expert"] = per_expert
    out["bytes_per_expert"] = per_expert * expert.fc_in.weight.element_size()
    out["anchor_bytes_per_edit"] = (
        editor.adaptor.memory.anchors[0].numel() * editor.adaptor.memory.anchors.element_size()
    )
    out["subject_bytes_per_edit"] = editor.adaptor.subjects.text.numel() / (experts * edits)
    out["router_params"] = sum(
        p.numel() for n, p in editor.adaptor.router.named_parameters() if not n.startswith("keys")
    )
    out["base_params"] = sum(p.numel() for p in base.parameters())
    names = {"lemoe": "LEMoE", "wise": "WISE", "ft_l": "FT-L", "lora": "LoRA", "grace": "GRACE"}
    lines = [
        f"model {model_name}, adaptor layer {layer}, {edits} edits x {steps} steps per method, {experts} experts, "
        f"no-expert path {gate!r}, {device_description()}",
        "editing throughput (edits/s): "
        + ", ".join(f"{label} {out[f'{key}_edits_per_s']:.2f}" for key, label in names.items())
        + f"  (LEMoE/FT-L {out['lemoe_edits_per_s'] / out['ft_l_edits_per_s']:.2f}x)",
    ]
    for key in ("lemoe", "wise"):
        costs = ", ".join(
            f"batch {m}: {out[f'{key}_batch{m}_s']:.1f} s ({out[f'{key}_batch{m}_sequences']} sequences)" for m in marks
        )
        lines.append(f"{names[key]} cost of one batch of {edits} as edits accumulate: {costs}")
    lines += [
        f"inference latency edited/unedited: forward {out['forward_latency_ratio']:.3f}x, "
        f"generate(8 tokens) {out['generate_latency_ratio']:.3f}x  (target <= 1.05x); noise floor "
        f"(unedited timed against itself the same way): {out['generate_noise_ratio']:.3f}x",
        f"per expert: {per_expert} parameters ({out['bytes_per_expert'] / 2**20:.2f} MiB, "
        f"{100 * per_expert / out['base_params']:.3f}% of the base model); "
        f"anchor memory {out['anchor_bytes_per_edit']} bytes per edit; subject index "
        f"{out['subject_bytes_per_edit']:.0f} bytes per edit; shared router {out['router_params']} parameters",
    ]
    report = "\n".join(lines)
    print(report)
    settings = {"model": model_name, "edits": edits, "steps": steps, "experts": experts, "layer": layer}
    settings.update({"repeats": repeats, "gate": gate, "marks": list(marks)})
    if output:
        write_results(output, out, settings)
        atomic_write_text(Path(output).with_suffix(".md"), report + "\n")
    if readme:
        replace_marked_section(readme, "bench", f"```\n{report}\n```")
    return out
