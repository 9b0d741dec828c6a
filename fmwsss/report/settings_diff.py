"""What differs between two stage specs: the ablation table's "settings" column. Pure functions on dicts."""
from __future__ import annotations

import json
from typing import Any, Mapping

MISSING = "(absent)"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``{"caa": {"box_thresh": 0.4}}`` -> ``{"caa.box_thresh": 0.4}``).

    Lists and scalars are leaves; an empty dict is a leaf too, so it is not lost.
    """
    flat: dict[str, Any] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def settings_diff(spec: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, this entry's value, the current variant's value) for every setting that differs.

    Compares ``settings``, ``version`` and the weight ``inputs`` of two spec.json dicts; upstream keys are
    left out (they differ whenever any upstream setting does, which the upstream stage's row shows).
    """
    def view(s: Mapping[str, Any]) -> dict[str, Any]:
        return flatten({"settings": s.get("settings", {}), "version": s.get("version"),
                        "inputs": s.get("inputs", {})})

    mine, theirs = view(spec), view(current)
    rows = []
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key, MISSING), theirs.get(key, MISSING)
        if a != b:
            rows.append((key.removeprefix("settings."), a, b))
    return rows


def format_value(value: Any) -> str:
    """Compact text of a setting value (JSON for lists and dicts)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
