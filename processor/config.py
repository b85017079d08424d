"""YAML configuration: ``_base_`` inheritance, dotted overrides and strict keys.

A config file is YAML; an optional ``_base_`` (a path or a list of paths,
relative to the file) names files it extends.  Bases are merged in order, then
the file itself: nested mappings merge key by key, everything else replaces.

Every processor declares a *defaults* file (``config/defaults/<name>.yaml``)
that lists every key it understands with its default value and a comment
naming the source of each paper number.  A user config may only set keys that
exist there: an unknown key is a :class:`ConfigError` naming the key, the file
that set it and the closest valid key.  A default of ``{}`` marks an open
mapping (any keys allowed) and a default of ``null`` accepts any value.

Command-line overrides look like ``optim.lr=0.1`` or ``data.augment.flip.p=0``;
the value is parsed with ``yaml.safe_load`` (never ``eval``).
"""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

__all__ = [
    "ConfigError", "load_yaml", "load_with_bases", "parse_override", "apply_overrides",
    "merge", "validate", "resolve_config", "flatten", "dump_yaml", "AttrDict",
]

BASE_KEY = "_base_"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does, and refuses a key
    given twice in one mapping (PyYAML would keep the last one without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: Dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first on line {seen[key]})", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def safe_load(text):
    """``yaml.safe_load`` with YAML 1.2 floats (``1e-4``)."""
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A configuration problem, with the file (and key) that caused it."""


def load_yaml(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def merge(base: Dict[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces. Returns a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _record_origins(cfg: Mapping[str, Any], origin: str, origins: Dict[str, str], prefix: str = "") -> None:
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        origins[dotted] = origin
        if isinstance(value, Mapping):
            _record_origins(value, origin, origins, dotted + ".")


def load_with_bases(path: Path, origins: Optional[Dict[str, str]] = None,
                    _chain: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """Load ``path`` with its ``_base_`` chain resolved; fill ``origins`` (dotted key -> file)."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in _chain + (path,))
        raise ConfigError(f"_base_ cycle: {cycle}")
    raw = load_yaml(path)
    bases = raw.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY} must be a path or a list of paths")
    merged: Dict[str, Any] = {}
    for base in bases:
        base_path = (path.parent / base)
        if not base_path.is_file():
            raise ConfigError(f"{path}: {BASE_KEY} file not found: {base} (looked at {base_path})")
        merged = merge(merged, load_with_bases(base_path, origins, _chain + (path,)))
    if origins is not None:
        _record_origins(raw, str(path), origins)
    return merge(merged, raw)


def parse_override(text: str) -> Tuple[List[str], Any]:
    """``"a.b=1e-3"`` -> (["a", "b"], 0.001). The value is YAML (safe_load)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        parsed = safe_load(value) if value.strip() != "" else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None
    return key.split("."), parsed


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[str],
                    origins: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    out = copy.deepcopy(cfg)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for part in keys[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(value, dict) and isinstance(node.get(keys[-1]), dict):
            node[keys[-1]] = merge(node[keys[-1]], value)
        else:
            node[keys[-1]] = value
        if origins is not None:
            origins[".".join(keys)] = "command line"
            if isinstance(value, Mapping):
                _record_origins(value, "command line", origins, ".".join(keys) + ".")
    return out


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1} (open mappings and lists are leaves)."""
    out: Dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def nearest_key(key: str, prefix: str, siblings: Mapping[str, Any], root: Mapping[str, Any]) -> Optional[str]:
    """The valid key a misspelt ``key`` most likely meant (dotted), or None.

    Tries, in order: a sibling whose name is the key's initials (``learning_rate`` -> ``lr``);
    the closest sibling by spelling; a key of that name (or spelling) anywhere in the config.
    """
    words = [w for w in key.lower().replace("-", "_").split("_") if w]
    initials = "".join(w[0] for w in words)
    names = [str(k) for k in siblings]
    for name in names:
        if len(words) > 1 and name.lower() == initials:
            return prefix + name
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return prefix + close[0]
    everywhere = list(flatten(root).keys())
    same = [k for k in everywhere if k.rsplit(".", 1)[-1] == key]
    if same:
        return same[0]
    tails = {k.rsplit(".", 1)[-1]: k for k in everywhere}
    close = difflib.get_close_matches(key, list(tails), n=1, cutoff=0.75)
    if close:
        return tails[close[0]]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.4)
    return prefix + close[0] if close else None


def validate(cfg: Mapping[str, Any], defaults: Mapping[str, Any], origins: Mapping[str, str],
             prefix: str = "", root_defaults: Optional[Mapping[str, Any]] = None) -> None:
    """Raise :class:`ConfigError` on the first key of ``cfg`` unknown to ``defaults`` or of the wrong kind."""
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        origin = origins.get(dotted, "<config>")
        if key not in defaults:
            near = nearest_key(str(key), prefix, defaults, root_defaults or defaults)
            hint = f"; did you mean {near!r}?" if near else ""
            valid = ", ".join(sorted(str(k) for k in defaults)) or "(none)"
            raise ConfigError(f"unknown config key {dotted!r} (set in {origin}){hint} "
                              f"Valid keys at this level: {valid}")
        default = defaults[key]
        if value is None and isinstance(default, Mapping) and default:
            raise ConfigError(f"config key {dotted!r} (set in {origin}) is empty: a mapping of "
                              f"{', '.join(sorted(str(k) for k in default))} is expected (are all its "
                              f"lines commented out?)")
        if value is None and isinstance(default, (bool, int, float)):  # text keys may be null (= none)
            raise ConfigError(f"config key {dotted!r} (set in {origin}) is empty (null); it takes a "
                              f"{_kind(default)} like the default {default!r}")
        if default is None or value is None:
            continue
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {dotted!r} (set in {origin}) must be a mapping, got {_kind(value)}")
            if default:  # an empty default mapping is open: anything goes
                validate(value, default, origins, dotted + ".", root_defaults or defaults)
            continue
        if _kind(default) != _kind(value):
            raise ConfigError(f"config key {dotted!r} (set in {origin}) must be a {_kind(default)} "
                              f"like the default {default!r}, got {value!r}")


def resolve_config(defaults_path: Path, config_path: Optional[Path], overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """defaults <- config file (with bases) <- overrides, validated strictly."""
    defaults = load_with_bases(defaults_path)
    origins: Dict[str, str] = {}
    user = load_with_bases(config_path, origins) if config_path is not None else {}
    user = apply_overrides(user, overrides, origins)
    validate(user, defaults, origins)
    return merge(defaults, user)


def dump_yaml(cfg: Mapping[str, Any]) -> str:
    return yaml.safe_dump(_plain(cfg), sort_keys=False, default_flow_style=None, width=100)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


class AttrDict(dict):
    """A dict with attribute access, recursively (``cfg.optim.lr``)."""

    def __init__(self, data: Mapping[str, Any] = ()):  # noqa: D401
        super().__init__()
        for key, value in dict(data).items():
            self[key] = AttrDict(value) if isinstance(value, Mapping) else value

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def to_dict(self) -> Dict[str, Any]:
        return {k: (v.to_dict() if isinstance(v, AttrDict) else v) for k, v in self.items()}
