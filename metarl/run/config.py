"""Load a YAML experiment config (and the config it ``extends``), apply ``--set`` overrides,
and validate it.

Every mistake becomes one :class:`UserError` that names the key, the value and what is allowed::

    error: config.yaml: unknown key `algo.max_kll`; did you mean `max_kl`? allowed keys in
    `algo`: cg_damping, cg_iters, ...
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import UserError

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (plain PyYAML reads it as a string)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str, source: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise UserError(f"{source}: not valid YAML: {str(e).splitlines()[0]}") from None


DOMAINS = ("fewshot", "rl")

#: keys that change how a run is logged, checkpointed and threaded, not what it learns:
#: ``train --resume --set`` may change them (the resumed run's metrics equal an uninterrupted
#: run's), and ``metarl compare`` groups runs across them
BOOKKEEPING_KEYS = (
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints_every",
    "train.num_threads",
)


def domain_schema(domain: str) -> type[BaseModel]:
    """The config model of a domain (imported on demand: a few-shot run never imports gym)."""
    if domain == "fewshot":
        from metarl.fewshot.config import FewShotConfig

        return FewShotConfig
    from metarl.rl.config import RLConfig

    return RLConfig


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config as a mapping, with the config it ``extends`` (if any) under it: see
    :func:`merge_configs`. ``extends: PATH`` is relative to the file that names it."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory; give the YAML file)" if path.is_dir() else ""
        raise UserError(f"config file not found: {path}{hint}; see configs/ for examples")
    data = parse_yaml(path.read_text(), str(path))
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: a config is a YAML mapping of sections, got {type(data).__name__}"
        )
    if "extends" not in data:
        return data
    base = data.pop("extends")
    if not isinstance(base, str) or not base.strip():
        raise UserError(
            f"{path}: `extends` names the config this one builds on (a path relative to this "
            f"file), got {base!r}"
        )
    base_path = path.parent / base
    chain = (*_chain, path)
    if base_path.resolve() in {p.resolve() for p in chain}:
        loop = " -> ".join(str(p) for p in (*chain, base_path))
        raise UserError(f"{path}: `extends` goes round in a circle: {loop}")
    if not base_path.is_file():
        raise UserError(f"{path}: extends {base}, which is not a file (looked at {base_path})")
    return merge_configs(read_config_file(base_path, chain), data)


def merge_configs(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override``'s keys over ``base``'s: a section merges key by key (recursively); a value
    or a list replaces the base's, and so does a section whose ``name`` differs from the base's
    (another algorithm or model: its keys are not the base's)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            if value.get("name", old.get("name")) == old.get("name"):
                out[key] = merge_configs(old, value)
                continue
        out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``0.05``, ``true``, ``[64, 64]``)."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key.sub=value, got {item!r}")
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise UserError(f"--set {item}: `{where}` is a value, not a section")
            node = child
        node[parts[-1]] = parse_yaml(raw, f"--set {item}")
    return data


def override_key(item: str) -> str:
    """The dotted key a ``--set key.sub=value`` item changes (``rl2.iterations`` for
    ``rl2.iterations=30``)."""
    return item.partition("=")[0].strip()


def override_section(item: str) -> str:
    """The top-level section a ``--set key.sub=value`` item changes (``rl2`` for
    ``rl2.iterations=30``)."""
    return override_key(item).split(".")[0]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two configs, with (old, new) values (a key
    only one of them has pairs with None)."""
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional / Union / Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _check_keys(model: type[BaseModel], data: Any, path: str, source: str) -> None:
    """Reject unknown keys with a did-you-mean and the list of allowed keys."""
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key in data:
        if key not in fields:
            where = f"`{path}`" if path else "the top level"
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            full = f"{path}.{key}" if path else str(key)
            raise UserError(
                f"{source}: unknown key `{full}`{hint} allowed keys in {where}: "
                f"{', '.join(sorted(fields))}"
            )
    for key, field in fields.items():
        models = _models_in(field.annotation)
        if len(models) > 1 and isinstance(data.get(key), dict):  # tagged by `name`
            models = [m for m in models if _tag(m) == data[key].get("name")]
        if len(models) == 1 and key in data:
            _check_keys(models[0], data[key], f"{path}.{key}" if path else key, source)


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("name")
    return None if field is None else field.default


def _drop_removed_keys(model: type[BaseModel], data: dict[str, Any], source: str) -> dict:
    """Drop the keys a domain removed (``model.REMOVED_KEYS``) where they hold their old
    default; any other value is a :class:`UserError` saying why the key went."""
    removed = getattr(model, "REMOVED_KEYS", {})
    if not removed:
        return data
    data = copy.deepcopy(data)
    for dotted, (default, why) in removed.items():
        *parents, key = dotted.split(".")
        section = data
        for part in parents:
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict) and key in section:
            if section[key] != default:
                raise UserError(f"{source}: `{dotted}` was removed: {why}; delete the key")
            del section[key]
    return data


def _key_path(model: type[BaseModel], loc: tuple) -> str:
    """The config key of an error location: pydantic adds the tags of unions to ``loc`` (the
    chosen ``algo`` schema's name, a member type such as ``float``), which are not keys."""
    parts: list[str] = []
    models: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            parts.append(str(part))
            continue
        if not models:
            continue  # a union member's type name inside a plain field
        tagged = [m for m in models if _tag(m) == part and part not in m.model_fields]
        if len(models) > 1 and tagged:
            models = tagged
            continue
        field = models[0].model_fields.get(part)
        parts.append(str(part))
        models = _models_in(field.annotation) if field is not None else []
    return ".".join(parts)


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = _key_path(model, err["loc"])
    value = err.get("input")
    msg = err["msg"]
    ctx = err.get("ctx") or {}
    if err["type"] == "missing":
        return f"missing key `{loc}`: {msg.lower()}"
    if err["type"] == "value_error" and "error" in ctx:
        msg = str(ctx["error"])
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"`{loc}` = {shown}: {msg}"


def validate(data: dict[str, Any], source: str = "config") -> BaseModel:
    """Validate a raw config dict; return the domain's typed config or raise :class:`UserError`."""
    domain = data.get("domain")
    if domain not in DOMAINS:
        raise UserError(
            f"{source}: `domain` = {domain!r}: must be one of {', '.join(DOMAINS)} "
            "(fewshot: supervised few-shot; rl: meta-reinforcement learning)"
        )
    model = domain_schema(domain)
    data = _drop_removed_keys(model, data, source)
    upgrade = getattr(model, "upgrade", None)
    if upgrade is not None:
        try:
            data = upgrade(data)
        except ValueError as e:
            raise UserError(f"{source}: {e}") from None
    return validate_model(model, data, source)


def validate_model(model: type[BaseModel], data: dict[str, Any], source: str) -> BaseModel:
    """Validate ``data`` against ``model``; every mistake is one :class:`UserError` line."""
    _check_keys(model, data, "", source)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # a value of the wrong kind for one member of a union (``float | list[float]``) is not
        # the error to show when another member reports what is wrong with it
        errors = sorted(e.errors(include_url=False), key=lambda err: err["type"].endswith("_type"))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"{source}: {_describe(errors[0], model)}{more}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> BaseModel:
    """Read, override and validate a config file."""
    data = apply_overrides(read_config_file(path), overrides or [])
    return validate(data, str(path))


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML (what ``config.yaml`` in a run directory holds)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
