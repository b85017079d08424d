"""The processor registry: ``@register`` on a class makes it a ``main.py`` command.

Processor modules are the public top-level modules of the ``processor``
package (sub-packages such as ``processor/evaluation/`` hold shared code); :func:`discover` imports them all so that
``main.py --help`` can list every processor with its one-line description.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, Type

__all__ = ["register", "discover", "get_processor", "PROCESSORS"]

PROCESSORS: Dict[str, type] = {}

# Modules of the package that hold shared machinery, not processors.
_SUPPORT_MODULES = {"registry", "config", "base", "runtime", "checkpoint", "meters", "sampler",
                    "schedule", "distributed"}


def register(name: str):
    """Class decorator: ``@register("pretrain_acsar")``."""

    def wrap(cls: type) -> type:
        if name in PROCESSORS and PROCESSORS[name] is not cls:
            raise ValueError(f"processor {name!r} registered twice ({PROCESSORS[name].__module__}, {cls.__module__})")
        cls.name = name
        PROCESSORS[name] = cls
        return cls

    return wrap


def discover() -> Dict[str, type]:
    import processor as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg or info.name.startswith("_") or info.name in _SUPPORT_MODULES:
            continue
        importlib.import_module(f"processor.{info.name}")
    return dict(sorted(PROCESSORS.items()))


def get_processor(name: str) -> Type:
    processors = discover()
    if name not in processors:
        import difflib

        close = difflib.get_close_matches(name, list(processors), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown processor {name!r}{hint} Known: {', '.join(processors)}")
    return processors[name]
