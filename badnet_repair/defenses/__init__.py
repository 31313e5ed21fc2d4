"""The defenses, one module each (defenses/NAME.py), each on the interface base.Defense
states. The registry is this folder: adding a defense adds a file and changes no other
defense's stage. This module imports none of them, so there is no import cycle."""
from __future__ import annotations

import importlib
import pkgutil

SHARED = ("base", "neurons")  # the package's modules that are not defenses


def names() -> list[str]:
    """Every defense, by its module's name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in SHARED)


def load(name: str):
    """The module of defense `name`; a one-line error naming the param if there is none."""
    from ..errors import BadInput
    from ..params import PARAMS_FILE

    if name not in names():
        raise BadInput(f"{PARAMS_FILE}: unknown defense {name!r} in 'defend.names' (known: {', '.join(names())})")
    return importlib.import_module(f"{__name__}.{name}")
