"""YAML configuration: ``_base_`` inheritance, dotted overrides and strict keys.

A config file is YAML; an optional ``_base_`` (a path or a list of paths,
relative to the file) names files it extends.  Bases are merged in order, then
the file itself: nested mappings merge key by key, everything else replaces.

Every processor declares a *defaults* file (``config/defaults/<name>.yaml``)
that lists every key it understands with its default value and a comment
naming the source of each paper number.  A user config may only set keys that
exist there: an unknown key is a :class:`ConfigError` naming the key, the file
that set it and the closest valid key.  A default of ``{}`` marks an open
mapping (any keys allowed).

Types: a value must be of its default's type (``bool``, ``integer``, ``number``
-- which takes integers too --, ``string``, ``list``, ``mapping``); the items of
a list of the default non-empty list's item type; and ``null`` is refused
where the default is not ``null``.  A defaults file declares the type of a key
whose default does not say it in a ``_types_`` mapping of dotted keys (merged
through ``_base_`` like the rest): ``_types_: {data.root: string,
scheduler.milestones: list of integer}``; ``<type> or null`` also lets a key
with a non-null default take ``null``, and ``positive integer`` / ``positive number``
(also as list items) refuse zero, negative and infinite values (``data.window: positive
integer``: a window of 0 frames fails only deep inside the feeder); ``non-negative integer`` /
``non-negative number`` take 0 too (``text.weight``: 0 turns a loss term off, a negative weight maximises it);
``number in [0, 1]`` takes the finite numbers of an interval, each end closed ``[ ]`` or open ``( )``
(probabilities and fractions: ``number in (0, 1]`` refuses 0).  A ``null`` default without a declared
type accepts any value.

Command-line overrides look like ``optim.lr=0.1`` or ``data.augment.flip.p=0``;
the value is parsed with ``yaml.safe_load`` (never ``eval``).
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

__all__ = [
    "ConfigError", "UnknownKeyError", "load_yaml", "load_with_bases", "parse_override", "apply_overrides",
    "merge", "validate", "resolve_config", "flatten", "dump_yaml", "AttrDict", "KeyType", "Bounds", "parse_type",
    "declared_types", "TYPES_KEY",
]

BASE_KEY = "_base_"
TYPES_KEY = "_types_"   # in a defaults file: {dotted key: type} for keys whose default does not say it
KINDS = ("bool", "integer", "number", "string", "list", "mapping")
CLOSE_SPELLING = 0.75   # difflib ratio from which one key name is taken for a misspelling of another


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


class UnknownKeyError(ConfigError):
    """A key the defaults do not have: ``key`` (dotted) and ``origin`` (the file that set it, or "command line")."""

    def __init__(self, message: str, key: str, origin: str, nearest: Optional[str] = None) -> None:
        super().__init__(message)
        self.key, self.origin, self.nearest = key, origin, nearest

    def close_hint(self) -> str:
        """``"; did you mean 'x.y'?"`` when the nearest valid key has the same or a close name, else ``""``."""
        if self.nearest is None:
            return ""
        mine, theirs = self.key.rsplit(".", 1)[-1], self.nearest.rsplit(".", 1)[-1]
        close = difflib.SequenceMatcher(None, mine, theirs).ratio() >= CLOSE_SPELLING
        return f"; did you mean {self.nearest!r}?" if close else ""


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
    except yaml.YAMLError as err:        # one line, as a file's: the problem and where in the value
        mark = getattr(err, "problem_mark", None)
        where = f" at column {mark.column + 1} of the value" if mark is not None else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"override {text!r}: value is not valid YAML ({problem}{where}); a text value "
                          f"with YAML's special characters takes quotes: key=\"'...'\"") from None
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
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def _a(kind: str) -> str:
    """``"integer"`` -> ``"an integer"``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _fits(kind: str, value: Any) -> bool:
    """Whether ``value`` is of ``kind`` (a ``number`` also takes an integer, never a bool)."""
    found = _kind(value)
    return found == kind or (kind == "number" and found == "integer")


@dataclass(frozen=True)
class Bounds:
    """The finite numbers a ``number`` / ``integer`` key (or each list item) may take: ``low`` to ``high``, each end
    closed or open; ``high`` may be ``inf`` (then open).  Infinite and NaN values are always refused."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: Any) -> bool:
        value = float(value)
        return (math.isfinite(value) and (self.low < value if self.low_open else self.low <= value)
                and (value < self.high if self.high_open else value <= self.high))

    @property
    def word(self) -> Optional[str]:
        """``"positive"`` / ``"non-negative"`` for (0, inf) / [0, inf), else None (written as an interval)."""
        return next((w for w, b in NAMED_BOUNDS.items() if b == self), None)

    def __str__(self) -> str:
        def number(v: float) -> str:
            return "inf" if v == math.inf else f"{v:g}"
        return (f"{'(' if self.low_open else '['}{number(self.low)}, {number(self.high)}"
                f"{')' if self.high_open else ']'}")


#: the bounds written as a word before the kind (``positive integer``); any other as ``number in [0, 1]``
NAMED_BOUNDS = {"positive": Bounds(0.0, math.inf, True, True), "non-negative": Bounds(0.0, math.inf, False, True)}
_TYPE_TEXT = re.compile(r"""^(?P<list>list\s+of\s+)?(?:(?P<word>positive|non-negative)\s+)?(?P<kind>\w+)
    (?:\s+in\s+(?P<open>[\[(])\s*(?P<low>[^,\s]+)\s*,\s*(?P<high>[^\])\s]+)\s*(?P<close>[\])]))?
    (?P<null>\s+or\s+null)?$""", re.X)


@dataclass(frozen=True)
class KeyType:
    """The type a config key takes: a kind of :data:`KINDS`, the kind of a list's items (None: any),
    whether ``null`` is allowed, and the :class:`Bounds` of the number (or of each item), None for any."""

    kind: str
    item: Optional[str] = None
    nullable: bool = False
    bounds: Optional[Bounds] = None

    def _base(self) -> str:
        """``"positive integer"`` / ``"number in [0, 1]"`` (the number's or the item's kind with its bounds)."""
        kind = self.item or self.kind
        if self.bounds is None:
            return kind
        word = self.bounds.word
        return f"{word} {kind}" if word else f"{kind} in {self.bounds}"

    def __str__(self) -> str:
        text = f"list of {self._base()}" if self.item else self._base()
        return f"{text} or null" if self.nullable else text

    def _out_of_bounds(self, number: Any) -> bool:
        return self.bounds is not None and number not in self.bounds

    def problem(self, value: Any) -> Optional[str]:
        """Why ``value`` (not null) is not of this type, or None when it is."""
        if not _fits(self.kind, value) or (not self.item and self._out_of_bounds(value)):
            return f"must be {_a(self.kind if self.item else self._base())}"
        if self.item:
            for i, item in enumerate(value):
                if not _fits(self.item, item) or self._out_of_bounds(item):
                    base = self._base()
                    items = (f"{base} items" if self.bounds is None or self.bounds.word
                             else f"{self.item} items in {self.bounds}")
                    return f"must be a list of {items} (item {i} is {item!r}, {_a(_kind(item))})"
        return None


def parse_type(text: Any, where: str = "<type>") -> KeyType:
    """``"integer"`` / ``"list of string"`` / ``"string or null"`` / ``"positive number"`` /
    ``"list of positive integer"`` / ``"non-negative integer"`` / ``"number in [0, 1]"`` / ``"number in (0, 1]"``
    -> :class:`KeyType`."""
    match = _TYPE_TEXT.match(" ".join(str(text).split()))
    problem = match is None
    if match:
        kind, word, listed = match["kind"], match["word"], bool(match["list"])
        item = kind if listed else None
        bounds = NAMED_BOUNDS[word] if word else None
        if match["open"]:
            try:
                low, high = float(match["low"]), float(match["high"])
            except ValueError:
                low, high = math.nan, math.nan
            high_open = match["close"] == ")" or high == math.inf
            problem = (word is not None or not math.isfinite(low) or math.isnan(high) or low > high
                       or (high_open or match["open"] == "(") and low == high)
            bounds = Bounds(low, high, match["open"] == "(", high_open)
        problem = problem or kind not in KINDS or (bounds is not None and kind not in ("integer", "number"))
    if problem:
        raise ConfigError(f"{where}: unknown type {text!r}; expected one of {', '.join(KINDS)} or 'list of <type>' "
                          f"('positive' / 'non-negative' before integer or number for numbers > 0 / >= 0, or "
                          f"'number in [0, 1]', ends open with '(' / ')'), optionally followed by 'or null'")
    return KeyType("list" if listed else kind, item, bool(match["null"]), bounds)


def type_of_default(default: Any) -> Optional[KeyType]:
    """The type a default value implies: its kind, and for a non-empty list of one kind that item kind
    (integers and numbers mixed: number).  None for a ``null`` default (any value)."""
    if default is None:
        return None
    kind, item = _kind(default), None
    if kind == "list" and default:
        kinds = {_kind(v) for v in default}
        if kinds == {"integer", "number"}:
            kinds = {"number"}
        item = kinds.pop() if len(kinds) == 1 else None
    return KeyType(kind, item)


def declared_types(types: Any, defaults: Mapping[str, Any], where: str) -> Dict[str, KeyType]:
    """Check a defaults file's ``_types_`` mapping (every key exists, every type is known and fits its default)
    and parse it: {dotted key: :class:`KeyType`}."""
    if not isinstance(types, Mapping):
        raise ConfigError(f"{where}: {TYPES_KEY} must be a mapping of dotted key -> type, got {_kind(types)}")
    out: Dict[str, KeyType] = {}
    leaves = flatten(defaults)
    for dotted, text in types.items():
        default = leaves.get(str(dotted))
        if isinstance(default, Mapping) or any(k.startswith(f"{dotted}.") for k in leaves):
            raise ConfigError(f"{where}: {TYPES_KEY} names {dotted!r}, a mapping: its keys say its type")
        if str(dotted) not in leaves:
            raise ConfigError(f"{where}: {TYPES_KEY} names {dotted!r}, which is not a key of the defaults")
        key_type = parse_type(text, f"{where}: {TYPES_KEY}.{dotted}")
        problem = key_type.problem(default) if default is not None else None
        if problem:
            raise ConfigError(f"{where}: {TYPES_KEY} says {dotted!r} is {_a(str(key_type))} but its default "
                              f"{default!r} is not: it {problem}")
        out[str(dotted)] = key_type
    return out


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
    close = difflib.get_close_matches(key, list(tails), n=1, cutoff=CLOSE_SPELLING)
    if close:
        return tails[close[0]]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.4)
    return prefix + close[0] if close else None


def validate(cfg: Mapping[str, Any], defaults: Mapping[str, Any], origins: Mapping[str, str],
             prefix: str = "", root_defaults: Optional[Mapping[str, Any]] = None,
             types: Optional[Mapping[str, KeyType]] = None) -> None:
    """Raise :class:`ConfigError` on the first key of ``cfg`` unknown to ``defaults`` or of the wrong type
    (``types``: the declared ones, :func:`declared_types`; otherwise the default's, :func:`type_of_default`)."""
    types = types or {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        origin = origins.get(dotted) or next((o for k, o in origins.items() if k.startswith(dotted + ".")), "<config>")
        if key not in defaults:
            near = nearest_key(str(key), prefix, defaults, root_defaults or defaults)
            hint = f"; did you mean {near!r}?" if near else ""
            valid = ", ".join(sorted(str(k) for k in defaults)) or "(none)"
            raise UnknownKeyError(f"unknown config key {dotted!r} (set in {origin}){hint} "
                                  f"Valid keys at this level: {valid}", dotted, origin, near)
        default = defaults[key]
        if isinstance(default, Mapping):
            if value is None and default:
                raise ConfigError(f"config key {dotted!r} (set in {origin}) is empty: a mapping of "
                                  f"{', '.join(sorted(str(k) for k in default))} is expected (are all its "
                                  f"lines commented out?)")
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"config key {dotted!r} (set in {origin}) must be a mapping, got {_kind(value)}")
            if value and default:  # an empty default mapping is open: anything goes (null included)
                validate(value, default, origins, dotted + ".", root_defaults or defaults, types)
            continue
        expected = types.get(dotted) or type_of_default(default)
        like = f"like the default {default!r}" if default is not None else f"(declared in the defaults' {TYPES_KEY})"
        if value is None:
            if default is None or expected.nullable:
                continue
            raise ConfigError(f"config key {dotted!r} (set in {origin}) is empty (null); it takes "
                              f"{_a(str(expected))} {like}")
        problem = expected.problem(value) if expected is not None else None
        if problem:
            hint = ""
            if expected.kind == "string" and _kind(value) in ("bool", "integer", "number"):
                hint = (f"; YAML reads on/off, yes/no and numbers as booleans and numbers: quote the value to "
                        f"keep it text ('...' in a file, {dotted}=\"'...'\" on the command line)")
            kind = f" ({_a(_kind(value))})" if not _fits(expected.kind, value) else ""
            raise ConfigError(f"config key {dotted!r} (set in {origin}) {problem} {like}, got {value!r}{kind}{hint}")


def resolve_config(defaults_path: Path, config_path: Optional[Path], overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """defaults <- config file (with bases) <- overrides, validated strictly (the defaults' ``_types_``
    declare the types their values do not say)."""
    defaults = load_with_bases(defaults_path)
    types = declared_types(defaults.pop(TYPES_KEY, {}), defaults, str(defaults_path))
    origins: Dict[str, str] = {}
    user = load_with_bases(config_path, origins) if config_path is not None else {}
    user = apply_overrides(user, overrides, origins)
    validate(user, defaults, origins, types=types)
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
