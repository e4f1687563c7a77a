"""One call that seeds every random number generator a run touches."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy, torch (CPU and CUDA) and accelerate.

    With ``deterministic=True`` torch is also asked for deterministic algorithms
    (``warn_only`` so that ops without a deterministic kernel still run) and cuDNN
    autotuning is switched off.
    """
    import numpy as np
    import torch

    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    try:
        from accelerate.utils import set_seed
    except ImportError:  # accelerate is a dependency, but seeding must not need it
        pass
    else:
        set_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
