"""Everything a run needs besides the network: tokenizer, vocabulary map, information scores,
the diffusion process and the packed training data; saved next to the weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.data import VocabMap, as_tensors, load_pairs, pack_dataset, target_tokens, tokenize_pairs
from infodiffusion.diffusion import TextDiffusion
from infodiffusion.information import InformationScores
from infodiffusion.schedule import NoiseSchedule


def load_tokenizer(name: str):
    """The tokenizer of an embedded alias, a local folder or a hub id; an unknown name lists the aliases."""
    from transformers import AutoTokenizer

    from shared_utils.errors import ModelNotFound
    from shared_utils.models import EMBEDDED_MODELS, resolve_model

    path = resolve_model(name).path
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except OSError as err:
        if path.exists():
            raise
        raise ModelNotFound(
            f"data.tokenizer {name!r} is not an embedded alias ({', '.join(EMBEDDED_MODELS)}), "
            f"not a local folder, and not loadable as a hub id here ({str(err).splitlines()[0]})"
        ) from None


def build_diffusion(cfg: InfoDiffusionConfig, info: InformationScores | None) -> TextDiffusion:
    d = cfg.diffusion
    schedule = NoiseSchedule(d.schedule, d.steps, d.info_lambda, d.eps)
    return TextDiffusion(schedule, info if schedule.per_token else None, d.sample_schedule)


@dataclass
class RunArtifacts:
    tokenizer: object
    vocab: VocabMap
    info: InformationScores
    diffusion: TextDiffusion
    train_ids: torch.Tensor | None = None
    train_mask: torch.Tensor | None = None

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        from shared_utils.results import atomic_write_json

        atomic_write_json(folder / "vocab.json", self.vocab.state_dict())
        atomic_write_json(folder / "info.json", self.info.state_dict())

    def encode(self, pairs: list[dict[str, str]], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        return as_tensors(pack_dataset(tokenize_pairs(pairs, self.tokenizer), self.vocab, seq_len))


def prepare_artifacts(cfg: InfoDiffusionConfig, save_to: str | Path | None = None) -> RunArtifacts:
    """Tokenise the training split, build the vocabulary map and information scores."""
    from shared_utils.config import dump_config

    tokenizer = load_tokenizer(cfg.data.tokenizer)
    pairs = load_pairs(cfg.data.dataset, cfg.data.train_split, cfg.data.max_train)
    tokenized = tokenize_pairs(pairs, tokenizer)
    vocab = VocabMap.build(
        tokenizer, [s + t for s, t in zip(tokenized["src_tok"], tokenized["trg_tok"])], restrict=cfg.data.restrict_vocab
    )
    ids, mask = as_tensors(pack_dataset(tokenized, vocab, cfg.data.seq_len))
    info = InformationScores.from_targets(
        target_tokens(ids, mask), len(vocab), vocab.special_ids, cfg.diffusion.info_score
    )
    artifacts = RunArtifacts(tokenizer, vocab, info, build_diffusion(cfg, info), ids, mask)
    if save_to is not None:
        artifacts.save(save_to)
        dump_config(cfg, Path(save_to) / "config.yaml")
    return artifacts


def load_artifacts(cfg: InfoDiffusionConfig, folder: str | Path) -> RunArtifacts:
    """Artifacts of a trained run folder (no training data)."""
    folder = Path(folder)
    vocab = VocabMap(**json.loads((folder / "vocab.json").read_text()))
    info = InformationScores.from_state_dict(json.loads((folder / "info.json").read_text()))
    return RunArtifacts(load_tokenizer(cfg.data.tokenizer), vocab, info, build_diffusion(cfg, info))


# What a trained run fixes for sampling: its network, schedule, vocabulary and data packing.
# Everything else (sample.*, eval.*, seed, the evaluation split, the sampling schedule option,
# where things go, training-only keys) may be set when sampling or scoring.
SAMPLING_MAY_CHANGE = ("data.eval_split", "data.max_eval", "diffusion.sample_schedule")
SAMPLING_FIXED = ("model.", "diffusion.", "data.")


def fixed_by_run(key: str) -> bool:
    return key.startswith(SAMPLING_FIXED) and key not in SAMPLING_MAY_CHANGE


def run_config(
    run_dir: str | Path, cli_cfg: InfoDiffusionConfig, overrides: list[str], config_given: bool = False
) -> InfoDiffusionConfig:
    """The config ``sample``/``eval`` use: the run's saved ``config.yaml`` (written at training
    time) with the command line's options applied where the run does not fix them.

    An option that sets a key the run fixes (``fixed_by_run``: model shape, schedule,
    data/vocabulary, seq_len ...) to another value than the saved one is refused with a
    :class:`ConfigError` naming the key(s). ``overrides`` are the ``--key value`` options;
    with ``config_given`` (an explicit ``--config``) every key of ``cli_cfg`` counts as given.
    A run folder without ``config.yaml`` (older runs) falls back to ``cli_cfg`` with a warning.
    """
    from shared_utils.config import flatten_config, load_config, parse_overrides
    from shared_utils.errors import ConfigError
    from shared_utils.tracking import get_logger

    saved_path = Path(run_dir) / "config.yaml"
    if not saved_path.is_file():
        get_logger(__name__).warning("%s has no config.yaml: using the command line's config as given", run_dir)
        return cli_cfg
    saved = load_config(InfoDiffusionConfig, saved_path)
    old, new = flatten_config(saved), flatten_config(cli_cfg)
    given = set(parse_overrides(overrides)) | (set(new) if config_given else set())
    conflicts = sorted(k for k in given if fixed_by_run(k) and new.get(k) != old.get(k))
    if conflicts:
        listed = "; ".join(f"{k}: run {old.get(k)!r}, asked {new.get(k)!r}" for k in conflicts)
        raise ConfigError(
            f"{run_dir} was trained with other values of {', '.join(conflicts)} ({listed}); "
            f"sampling uses the run's saved {saved_path.name}: drop the option(s)"
        )
    return load_config(InfoDiffusionConfig, saved_path, {k: new[k] for k in given if k in new and k in old})
