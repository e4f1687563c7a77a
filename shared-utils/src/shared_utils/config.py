"""Dataclass configs: defaults < YAML file < ``--key value`` command-line overrides.

Nested dataclass fields are addressed with dots (``--router.top_k 2``). Unknown keys,
in the YAML file or on the command line, are rejected with a message naming them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .cli import one_line
from .errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_overrides(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["--a", "1", "--b.c=x", "--flag"]`` -> ``{"a": "1", "b.c": "x", "flag": "true"}``."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    i = 0
    while i < len(overrides):
        token = overrides[i]
        if not token.startswith("--") or len(token) == 2:
            raise ConfigError(f"expected an option like --key value, got {token!r}")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(overrides) and not overrides[i + 1].startswith("--"):
            value = overrides[i + 1]
            i += 2
        else:
            value, i = "true", i + 1
        parsed[key.replace("-", "_")] = value
    return parsed


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"option {key!r} sets a field inside {part!r}, which is not a section")
        node[leaf] = value
    return nested


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
    return False, tp


def _coerce(value: Any, tp: Any, key: str) -> Any:
    optional, inner = _is_optional(tp)
    if optional and (value is None or (isinstance(value, str) and value.lower() in {"none", "null", "~"})):
        return None
    tp = inner
    origin = typing.get_origin(tp)
    try:
        if dataclasses.is_dataclass(tp):
            if isinstance(value, tp):
                return value
            if not isinstance(value, dict):
                raise ConfigError(f"option {key!r} is a section; give it as a mapping or use {key}.<field>")
            return _build(tp, value, prefix=f"{key}.")
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in _TRUE:
                return True
            if str(value).lower() in _FALSE:
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.replace("_", ""))
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin is typing.Literal:
            allowed = typing.get_args(tp)
            if value not in allowed:
                raise ConfigError(f"option {key!r} must be one of {list(allowed)}, got {value!r}")
            return value
        if origin in (list, tuple):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, (list, tuple)):
                value = [value]
            (item_tp, *_) = typing.get_args(tp) or (Any,)
            items = [v if item_tp is Any else _coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
            return list(items) if origin is list else tuple(items)
        if origin is dict and isinstance(value, str):
            value = yaml.safe_load(value)
        if isinstance(value, str) and tp is Any:
            return yaml.safe_load(value)
        return value
    except ConfigError:
        raise
    except (TypeError, ValueError):
        name = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"option {key!r} expects {name}, got {value!r}") from None


def check_choices(config: Any) -> None:
    """Raise :class:`ConfigError` when a ``Literal``-typed field holds a value outside its choices.

    For configs built in Python (``__post_init__`` calls it); YAML and command-line values
    are already checked while they are coerced.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        _, inner = _is_optional(hints[f.name])
        value = getattr(config, f.name)
        if typing.get_origin(inner) is typing.Literal and value is not None and value not in typing.get_args(inner):
            allowed = list(typing.get_args(inner))
            raise ConfigError(f"option {type(config).__name__}.{f.name} must be one of {allowed}, got {value!r}")


def _build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(prefix + u for u in unknown)
        raise ConfigError(
            f"unknown option(s) for {cls.__name__}: {names}. Known: {', '.join(prefix + f for f in fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            default = _field_default(fields[name])
            base = dataclasses.asdict(default) if default is not None else {}
            merged = _deep_merge(base, value)
            kwargs[name] = _build(tp, merged, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    package: str | None = None,
) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then ``overrides``.

    With ``package``, ``path`` may also name a config shipped inside that package
    (``default``, ``paper/...``; see :func:`resolve_config_path`). Choice fields typed
    ``Literal`` are checked here, before any model or data is touched.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    values: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(package, path) if package else Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {one_line(err)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        values = loaded
    cli = _unflatten(parse_overrides(overrides))
    return _build(cls, _deep_merge(values, cli))


def config_to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain YAML/JSON-able data."""
    return dataclasses.asdict(config)


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """A config (dataclass or nested mapping) as ``{"section.key": value}`` with dotted keys."""
    values = config_to_dict(config) if dataclasses.is_dataclass(config) else config
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def diff_configs(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every key whose value differs (missing = None)."""
    a, b = flatten_config(old), flatten_config(new)
    return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


# folders of ``configs/`` that hold launcher files (``accelerate launch --config_file``), not run configs
LAUNCHER_FOLDERS = ("accelerate",)


def packaged_configs(package: str) -> list[str]:
    """Names of the run configs shipped inside ``package`` (``configs/<name>.yaml``), sorted;
    launcher files (``configs/accelerate/``) are not run configs and are left out."""
    from importlib import resources

    root = resources.files(package) / "configs"
    names: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir() and child.name in LAUNCHER_FOLDERS:
                continue
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".yaml"):
                names.append(prefix + child.name[: -len(".yaml")])

    if root.is_dir():
        walk(root, "")
    return sorted(names)


def resolve_config_path(package: str, name_or_path: str | Path) -> Path:
    """A YAML file given by path, or by the name of a config shipped in ``package``.

    ``default``, ``paper/qqp`` or ``paper/qqp.yaml`` name ``<package>/configs/<name>.yaml``
    inside the installed package; anything else must be an existing file.
    """
    from importlib import resources

    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml")
    shipped = resources.files(package) / "configs" / f"{name}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    known = ", ".join(packaged_configs(package)) or "none"
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a config shipped with {package} ({known})")


def dump_config(config: Any, path: str | Path | None = None) -> str:
    """YAML text of the resolved config; also written (atomically) to ``path`` if given."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    if path is not None:
        from .results import atomic_write_text

        atomic_write_text(path, text)
    return text


def describe_config(cls: type, prefix: str = "", defaults: Any = None) -> str:
    """One line per option, with its default and the ``help`` metadata: for ``--help``.

    The defaults are read from an instance (``cls()`` unless given), so a section whose
    ``default_factory`` sets other values than its class shows the values really used.
    """
    defaults = cls() if defaults is None else defaults
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(tp):
            lines.append(describe_config(type(value), prefix=f"{prefix}{f.name}.", defaults=value))
            continue
        help_text = f.metadata.get("help", "")
        _, inner = _is_optional(tp)
        if typing.get_origin(inner) is typing.Literal:
            help_text = f"{{{', '.join(map(str, typing.get_args(inner)))}}} {help_text}"
        lines.append(f"  --{prefix}{f.name} (default: {value!r}) {help_text}".rstrip())
    return "\n".join(lines)


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, default_path: str | None = None, package: str | None = None
) -> None:
    """Add ``--config`` to ``parser`` and list ``cls``'s options (with their defaults) in its epilog.

    ``package`` lets ``--config`` name a config shipped inside it (see
    :func:`resolve_config_path`). Parse with ``parser.parse_known_args`` and hand the
    leftovers to :func:`load_config` as overrides (see :func:`parse_config_cli`).
    """
    shipped = f" or the name of one shipped with {package}: {', '.join(packaged_configs(package))}" if package else ""
    parser.add_argument(
        "--config",
        default=default_path,
        help=f"YAML config file{shipped}; any option below can also be given as --key value",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = f"config options ({cls.__name__}), with their defaults:\n{describe_config(cls)}"


def parse_config_cli(
    cls: type[T],
    argv: list[str] | None = None,
    description: str | None = None,
    default_path: str | None = None,
    package: str | None = None,
) -> T:
    """Standalone parser: ``--config file.yaml --key value ...`` -> ``cls`` instance."""
    parser = argparse.ArgumentParser(description=description)
    add_config_arguments(parser, cls, default_path, package)
    args, rest = parser.parse_known_args(argv)
    return load_config(cls, args.config, rest, package)
