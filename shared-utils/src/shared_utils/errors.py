"""The errors a user can fix: a bad option, data file, record or model name.

Every CLI of the paper packages turns a :class:`UserError` into one line on stderr and exit
code 2 (:func:`shared_utils.cli.run_cli`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base class: the message names the option, file or record at fault."""


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be applied; the message names the key."""


class RecordError(UserError, ValueError):
    """A data file that cannot be read, or a record in it that is malformed; names file and line."""


class ModelNotFound(UserError, FileNotFoundError):
    """A model name that is neither an embedded alias, an existing folder nor a loadable hub id."""
