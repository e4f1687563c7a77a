"""Console logging and the wandb tracker mode.

wandb is the tracker (through accelerate). It must never block on the network:
``WANDB_MODE`` set by the user wins; otherwise a run is ``offline`` unless an API key is
known (environment or ``~/.netrc``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a message is logged, not as it was when the
    logger was made (pytest and notebooks replace, and close, the stream in between)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def get_logger(name: str, level: int | str = logging.INFO) -> logging.Logger:
    """A console logger writing to stderr, configured once per name."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    return logger


def wandb_logged_in() -> bool:
    """True when a wandb API key is available without asking the network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def configure_wandb_mode() -> str:
    """Set ``WANDB_MODE`` when the user has not, and return the mode in force.

    Explicit ``WANDB_MODE`` (e.g. ``disabled`` in tests) is kept; otherwise ``online``
    when logged in, else ``offline`` so a run never waits on a login prompt.
    """
    mode = os.environ.get("WANDB_MODE")
    if not mode:
        mode = "online" if wandb_logged_in() else "offline"
        os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    return mode
