"""What every console script of the paper packages does with a user's mistake.

:func:`run_cli` calls the command's ``main`` and turns a :class:`~shared_utils.errors.UserError`
(bad option, data file, record or model name) or a missing file into one line on stderr,
``<prog>: error: <message>``, and exit code 2, like argparse's own usage errors; a
``KeyboardInterrupt`` exits with 130 and one line. Any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from .errors import UserError

USAGE_ERROR = 2


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def run_cli(main: Callable[[Sequence[str] | None], int | None], prog: str, argv: Sequence[str] | None = None) -> int:
    """``main(argv)``'s exit code, with user errors reported in one line (exit code 2)."""
    try:
        return int(main(argv) or 0)
    except (UserError, FileNotFoundError) as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
