"""Benchmark: training throughput (tokens/s), step time and peak memory of SFT, KD, KD + intermediate
alignment and cross-tokenizer KD (the WordPiece student with CE + ULD, no intermediate term, against KD),
each with the live teacher (no cache), in one run. Each mode runs in a fresh subprocess so
that its peak resident memory (CPU) or ``torch.cuda.max_memory_allocated`` (GPU) is its own.

The modes are interleaved over ``rounds`` (round r runs them in order, or reversed when r is odd),
so a change in the machine's load hits every mode alike, and the ratio KD + intermediate / KD is
taken on the CPU time of the training process (``step_cpu_s``), which another job on a shared
machine changes far less than the wall time; the wall-time ratio is reported beside it. Every mode
trains on the same batches in the same order (the seeded schedule), so the ratio is of the mean
step over those steps; a median would pick a different step (of another length) in each mode."""

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
    "kd_uld": [
        "--student.tokenizer",
        "minilm-l6",
        "--loss.output",
        "['ce', 'uld']",
        "--loss.intermediate",
        "none",
        "--loss.weighting",
        "fixed",
    ],
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(config_path: str, mode: str, steps: int, output_dir: str) -> dict:
    """One mode in this process: 1 warm-up step + ``steps`` timed steps with the live teacher (the run's
    files go to the scratch folder ``output_dir``)."""
    from distill_hetero.experiment import training_examples, training_records
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
    examples, cross = training_examples(cfg, tokenizer, records)
    cuda = torch.cuda.is_available() and not cfg.accelerator.cpu
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mb()
    history = train(cfg, teacher, tokenizer, examples, progress=False, cross=cross).history[1:]
    times = [h["step_time_s"] for h in history]
    tokens = sum(h["tokens"] for h in history)
    return {
        "mode": mode,
        "steps": len(history),
        "step_s": times,
        "step_cpu_s": [h["step_cpu_s"] for h in history],
        "tokens_per_step": tokens / len(history),
        "peak_rss_mb": _rss_mb(),
        "rss_before_training_mb": rss_before,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def pooled(runs: list[dict]) -> dict:
    """One mode's rounds as one row: mean and median over every timed step of every round, peak memory the max."""
    wall = [t for r in runs for t in r["step_s"]]
    cpu = [t for r in runs for t in r["step_cpu_s"]]
    peak_cuda = [r["peak_cuda_mb"] for r in runs if r["peak_cuda_mb"] is not None]
    return {
        "mode": runs[0]["mode"],
        "rounds": len(runs),
        "steps": len(wall),
        "tokens_per_s": runs[0]["tokens_per_step"] / statistics.mean(wall),
        "mean_step_s": statistics.mean(wall),
        "mean_step_cpu_s": statistics.mean(cpu),
        "median_step_cpu_s": statistics.median(cpu),
        "tokens_per_step": runs[0]["tokens_per_step"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rss_before_training_mb": max(r["rss_before_training_mb"] for r in runs),
        "peak_cuda_mb": max(peak_cuda) if peak_cuda else None,
    }


def run_bench(
    cfg: RunConfig, steps: int = 4, output: str | None = None, readme: str | None = None, rounds: int = 3
) -> dict:
    """Run every mode in its own subprocess, ``rounds`` times interleaved; print a table and the
    KD+intermediate / KD step-time ratio by CPU time (target <= 1.10x) and by wall time."""
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        dump_config(cfg, path)
        for r in range(rounds):
            for mode in list(MODES) if r % 2 == 0 else list(MODES)[::-1]:
                scratch = str(Path(tmp) / f"{mode}{r}")
                out = subprocess.run(
                    [sys.executable, "-m", "distill_hetero.bench", str(path), mode, str(steps), scratch],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"bench mode {mode} (round {r + 1}) failed:\n{out.stderr[-3000:]}")
                runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = [pooled(runs[mode]) for mode in MODES]
    by_mode = {r["mode"]: r for r in rows}
    cpu_ratio = by_mode["kd_inter"]["mean_step_cpu_s"] / by_mode["kd"]["mean_step_cpu_s"]
    wall_ratio = by_mode["kd_inter"]["mean_step_s"] / by_mode["kd"]["mean_step_s"]
    cross_ratio = by_mode["kd_uld"]["mean_step_cpu_s"] / by_mode["kd"]["mean_step_cpu_s"]
    table = render_markdown_table(
        rows,
        {
            "mode": "mode",
            "tokens_per_s": "tokens/s",
            "mean_step_s": "mean step s",
            "mean_step_cpu_s": "mean step CPU s",
            "median_step_cpu_s": "median step CPU s",
            "tokens_per_step": "tokens/step",
            "peak_rss_mb": "peak RSS MB",
            "rss_before_training_mb": "RSS before training MB",
            "peak_cuda_mb": "peak CUDA MB",
        },
        digits=2,
    )
    summary = (
        f"KD+intermediate / KD step time by CPU time: **{cpu_ratio:.3f}x** (target <= 1.10x); by wall time "
        f"{wall_ratio:.3f}x; KD / SFT (CPU time): "
        f"{by_mode['kd']['mean_step_cpu_s'] / by_mode['sft']['mean_step_cpu_s']:.2f}x; cross-tokenizer KD (CE + ULD, "
        f"WordPiece student) / KD (CPU time): **{cross_ratio:.3f}x** (tokens/step differ: the student's own "
        "tokenisation). Live teacher (no "
        f"cache), batch {cfg.train.batch_size}, means over {rounds} interleaved rounds of the same {steps} steps "
        f"after a warm-up step, {cfg.num_threads or torch.get_num_threads()} torch thread(s), {device_description()}.\n"
    )
    print(table + "\n" + summary)
    report = {
        "modes": rows,
        "rounds": {mode: runs[mode] for mode in MODES},
        "kd_inter_over_kd_step_cpu_time": cpu_ratio,
        "kd_inter_over_kd_step_time": wall_ratio,
        "kd_uld_over_kd_step_cpu_time": cross_ratio,
        "steps": steps,
        "batch_size": cfg.train.batch_size,
    }
    if output:
        write_results(output, report, cfg)
        atomic_write_text(Path(output).with_suffix(".md"), table + "\n" + summary)
    if readme:
        replace_marked_section(readme, "bench", table + "\n" + summary)
    return report


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])))
