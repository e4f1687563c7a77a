"""Benchmark: training throughput (tokens/s), step time and peak memory of SFT, KD and KD + intermediate
alignment, each with the live teacher (no cache), in one run. Each mode runs in a fresh subprocess so
that its peak resident memory (CPU) or ``torch.cuda.max_memory_allocated`` (GPU) is its own."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from distill_hetero.config import RunConfig
from shared_utils.config import dump_config, load_config
from shared_utils.device import apply_threads
from shared_utils.results import (
    atomic_write_text,
    device_description,
    render_markdown_table,
    replace_marked_section,
    write_results,
)

MODES = {
    "sft": ["--loss.output", "['ce']", "--loss.intermediate", "none"],
    "kd": ["--loss.output", "['fkl']", "--loss.intermediate", "none"],
    "kd_inter": ["--loss.output", "['fkl']", "--loss.weighting", "fixed"],
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(config_path: str, mode: str, steps: int, output_dir: str) -> dict:
    """One mode in this process: 1 warm-up step + ``steps`` timed steps with the live teacher (the run's
    files go to the scratch folder ``output_dir``)."""
    from distill_hetero.experiment import tokenize_records, training_records
    from distill_hetero.models import load_teacher
    from distill_hetero.trainer import train

    cfg = load_config(
        RunConfig,
        config_path,
        [
            *MODES[mode],
            "--train.steps",
            str(steps + 1),
            "--train.teacher_cache_top_k",
            "0",
            "--accelerator.tracker",
            "none",
            "--train.checkpoint_every",
            "0",
            "--train.resume",
            "false",
            "--output_dir",
            output_dir,
        ],
    )
    apply_threads(cfg.num_threads)
    teacher, tokenizer = load_teacher(cfg.teacher, cfg.train.teacher_dtype)
    records, _ = training_records(cfg, teacher, tokenizer)
    examples = tokenize_records(cfg, tokenizer, records)
    cuda = torch.cuda.is_available() and not cfg.accelerator.cpu
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mb()
    history = train(cfg, teacher, tokenizer, examples, progress=False).history[1:]
    times = [h["step_time_s"] for h in history]
    tokens = sum(h["tokens"] for h in history)
    return {
        "mode": mode,
        "steps": len(history),
        "tokens_per_s": tokens / sum(times),
        "median_step_s": statistics.median(times),
        "tokens_per_step": tokens / len(history),
        "peak_rss_mb": _rss_mb(),
        "rss_before_training_mb": rss_before,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def run_bench(cfg: RunConfig, steps: int = 4, output: str | None = None, readme: str | None = None) -> dict:
    """Run every mode in its own subprocess, print a table and the KD+intermediate / KD step-time ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        dump_config(cfg, path)
        rows = []
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, "-m", "distill_hetero.bench", str(path), mode, str(steps), str(Path(tmp) / mode)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"bench mode {mode} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    by_mode = {r["mode"]: r for r in rows}
    ratio = by_mode["kd_inter"]["median_step_s"] / by_mode["kd"]["median_step_s"]
    table = render_markdown_table(
        rows,
        {
            "mode": "mode",
            "tokens_per_s": "tokens/s",
            "median_step_s": "median step s",
            "tokens_per_step": "tokens/step",
            "peak_rss_mb": "peak RSS MB",
            "rss_before_training_mb": "RSS before training MB",
            "peak_cuda_mb": "peak CUDA MB",
        },
        digits=2,
    )
    summary = (
        f"KD+intermediate / KD step time: **{ratio:.3f}x** (target <= 1.15x); KD / SFT: "
        f"{by_mode['kd']['median_step_s'] / by_mode['sft']['median_step_s']:.2f}x. Live teacher (no cache), "
        f"batch {cfg.train.batch_size}, median of {steps} steps after a warm-up step, "
        f"{cfg.num_threads or torch.get_num_threads()} torch thread(s), {device_description()}.\n"
    )
    print(table + "\n" + summary)
    report = {"modes": rows, "kd_inter_over_kd_step_time": ratio, "steps": steps, "batch_size": cfg.train.batch_size}
    if output:
        write_results(output, report, cfg)
        atomic_write_text(Path(output).with_suffix(".md"), table + "\n" + summary)
    if readme:
        replace_marked_section(readme, "bench", table + "\n" + summary)
    return report


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])))
