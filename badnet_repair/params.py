"""Read one section of params.yaml and check it against a schema: unknown keys,
missing keys and wrong types are errors that name the param."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from .errors import BadInput

PARAMS_FILE = "params.yaml"
PARAMS_ENV = "BADNET_REPAIR_PARAMS"  # another params file (the attack suite feeds each BadNet its own)

# Each leaf is the accepted type(s), or a tuple of allowed string values (an enum). A list
# [type] is a non-empty list, [type, ...] one that may be empty. OTHER in a mapping admits
# further keys whose values are mappings, checked elsewhere.
OTHER = "*"
SCHEMA = {
    "data": {
        "source": ("synthetic", "csaw-lab3", "local"),
        "synthetic": {
            "attack": str, "identities": int, "train_per_identity": int, "valid_per_identity": int,
            "test_per_identity": int, "poison_rate": float, "target": int, "seed": int,
            "epochs": int, "batch_size": int, "learning_rate": float, "input_divisor": float,
        },
        "csaw": {
            "mirror": str, "drive_folder": str, "weights_url": str, "weights_sha256": str,
            "input_divisor": float,
        },
        "local": {
            "valid": str, "test": str, "bd_valid": str, "bd_test": str, "model": str,
            "input_divisor": float,
        },
    },
    "prune": {
        "layer": str,
        "order": ("ascending", "descending"),
        "thresholds": [float],
        "keep": ("first_past", "last_within"),
        "drop": ("absolute", "relative"),
    },
    "finetune": {
        "optimizer": ("adam", "sgd"),
        "learning_rate": float,
        "epochs": int,
        "batch_size": int,
        "holdout": float,
        "seed": int,
    },
    "scan": {
        "top_k": int,
        "candidates": int,
        "shifts": int,
        "images": int,
        "batch_size": int,
        "bound": float,
        "step": float,
        "threshold": float,
    },
    # The shared params of the defenses; each defense's own section (defend.NAME) is
    # checked against the schema its module declares (badnet_repair/defenses/NAME.py: PARAMS).
    "defend": {
        "names": [str],
        "default": str,
        "holdout": float,
        "seed": int,
        "budget": float,
        OTHER: dict,
    },
}


def _check(value, schema, name: str):
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise BadInput(f"{PARAMS_FILE}: '{name}' must be a mapping, got {value!r}")
        unknown = sorted(set(value) - set(schema))
        if unknown and OTHER not in schema:
            raise BadInput(f"{PARAMS_FILE}: unknown param '{name}.{unknown[0]}' (known: {', '.join(schema)})")
        missing = sorted(set(schema) - set(value) - {OTHER})
        if missing:
            raise BadInput(f"{PARAMS_FILE}: missing param '{name}.{missing[0]}'")
        for k in unknown:  # OTHER: a mapping, checked by its owner
            _check(value[k], schema[OTHER], f"{name}.{k}")
        return {k: _check(value[k], schema[k], f"{name}.{k}") if k in schema else value[k] for k in value}
    if isinstance(schema, list):
        if isinstance(value, list) and not value and schema[1:] == [...]:
            return []
        if not isinstance(value, list) or not value:
            raise BadInput(f"{PARAMS_FILE}: '{name}' must be a non-empty list, got {value!r}")
        return [_check(v, schema[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(schema, tuple):
        if value not in schema:
            raise BadInput(f"{PARAMS_FILE}: '{name}' is {value!r}, expected one of {', '.join(schema)}")
        return value
    if schema is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if value is None and schema is str:
        return ""
    if not isinstance(value, schema) or isinstance(value, bool) and schema is not bool:
        raise BadInput(f"{PARAMS_FILE}: '{name}' must be {schema.__name__}, got {value!r}")
    return value


def check_section(name: str, value, schema=None) -> dict:
    """Validate an in-memory params section (used by tests and by `load`) against SCHEMA's,
    or against `schema` (a defense's own section)."""
    return _check(value, SCHEMA[name] if schema is None else schema, name)


def load(section: str, path=None) -> dict:
    """The named top-level section of params.yaml (or of $BADNET_REPAIR_PARAMS), validated."""
    path = Path(path or os.environ.get(PARAMS_ENV) or PARAMS_FILE)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or section not in doc:
        raise BadInput(f"{path}: no '{section}' section")
    return check_section(section, doc[section])


def positive(cfg: dict, name: str, keys, upper: dict | None = None, zero_ok=()) -> None:
    """Range checks shared by the sources: each key > 0 (>= 0 for those of `zero_ok`), and
    < its upper bound."""
    for k in keys:
        if cfg[k] < 0 or cfg[k] == 0 and k not in zero_ok:
            raise BadInput(f"{PARAMS_FILE}: '{name}.{k}' must be {'>=' if k in zero_ok else '>'} 0, got {cfg[k]}")
    for k, hi in (upper or {}).items():
        if not cfg[k] < hi:
            raise BadInput(f"{PARAMS_FILE}: '{name}.{k}' must be < {hi}, got {cfg[k]}")


def thresholds(cfg: dict) -> list[float]:
    """prune.thresholds: distinct values in (0, 100), in the given order."""
    ts = cfg["thresholds"]
    for t in ts:
        if not 0 < t < 100:
            raise BadInput(f"{PARAMS_FILE}: 'prune.thresholds' value {t:g} must be in (0, 100) percentage points")
    if len(set(ts)) != len(ts):
        raise BadInput(f"{PARAMS_FILE}: 'prune.thresholds' has duplicates: {ts}")
    return ts
