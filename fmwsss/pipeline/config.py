"""Load and validate config.yaml, and resolve a dataset's settings (preset + overrides + schema defaults).

Defaults are applied before anything is hashed, so writing a default explicitly, or reordering keys, never
changes a stage key. Object defaults are deep-merged *under* what the user wrote, so overriding one key of a
section keeps the section's other defaults.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fmwsss.pipeline.yaml_duplicates import duplicate_keys

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value is wrong; the message names the key path."""


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def check_unique_keys(path: str | Path) -> None:
    """Refuse a YAML file that writes a key twice in one mapping (YAML loaders keep the last one silently).

    The Snakefile calls this on every config file Snakemake has already loaded; ``Config.from_file`` on the
    file it reads.
    """
    try:
        found = duplicate_keys(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if found:
        listed = "; ".join(f"{d.path} at lines {d.first_line} and {d.second_line}" for d in found)
        raise ConfigError(f"{path}: duplicate key{'s' if len(found) > 1 else ''} {listed} (only the last one would count: keep one)")


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _raise_first(validator: jsonschema.protocols.Validator, instance: Any, where: str, prefix=()) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        path = _key_path(list(prefix) + list(err.absolute_path))
        raise ConfigError(f"{where}: {path}: {err.message}")


def _resolve(schema: dict, root: dict) -> dict:
    """Merge a local ``$ref`` into the schema that holds it (sibling keywords win)."""
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ConfigError(f"schema: only local $ref supported, got {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def deep_merge(base: Any, update: Any) -> Any:
    """Return ``base`` with ``update`` merged in; dicts merge recursively, anything else is replaced."""
    if isinstance(base, dict) and isinstance(update, dict):
        out = copy.deepcopy(base)
        for key, value in update.items():
            out[key] = deep_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(update)


def apply_defaults(instance: Any, schema: dict, root: dict) -> Any:
    """Fill schema defaults into ``instance`` recursively (returns a new object)."""
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return copy.deepcopy(instance)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        props = schema.get("properties", {})
        instance = {
            k: v if k in props else apply_defaults(v, extra, root) for k, v in instance.items()
        }
    out = {}
    for key, sub in schema.get("properties", {}).items():
        sub_resolved = _resolve(sub, root)
        if key in instance:
            value = instance[key]
            if isinstance(value, dict) and isinstance(sub_resolved.get("default"), dict):
                value = deep_merge(sub_resolved["default"], value)
        elif "default" in sub_resolved:
            value = copy.deepcopy(sub_resolved["default"])
        else:
            continue
        out[key] = apply_defaults(value, sub_resolved, root)
    for key, value in instance.items():
        out.setdefault(key, copy.deepcopy(value))
    return out


def canonical(obj: Any) -> Any:
    """A JSON round trip with sorted keys: the one form that goes to params, keys and spec.json.

    Whole floats stay floats (1.0 and 1 hash differently only if the user writes different types, which
    the schema's ``number`` accepts; normalise ints that the schema calls numbers to float here).
    """
    return json.loads(json.dumps(obj, sort_keys=True, allow_nan=False))


def _check_schedules(settings: dict, where: str) -> None:
    for section in ("prompts_cls", "prompts_seg"):
        sec = settings[section]
        if sec["warmup_iters"] >= sec["iterations"]:
            raise ConfigError(
                f"{where}: {section}.warmup_iters ({sec['warmup_iters']}) must be below "
                f"{section}.iterations ({sec['iterations']})"
            )


def _floats_where_numbers(instance: Any, schema: dict, root: dict) -> Any:
    """Turn ints into floats where the schema says ``number`` so 1 and 1.0 give the same key."""
    schema = _resolve(schema, root)
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if isinstance(instance, bool):
        return instance
    if isinstance(instance, int) and "number" in types and "integer" not in types:
        return float(instance)
    if isinstance(instance, list) and "items" in schema:
        return [_floats_where_numbers(v, schema["items"], root) for v in instance]
    if isinstance(instance, dict) and "properties" in schema:
        return {
            k: _floats_where_numbers(v, schema["properties"][k], root) if k in schema["properties"] else v
            for k, v in instance.items()
        }
    return instance


class Config:
    """A validated config.yaml with defaults applied to its top level and runtime section."""

    def __init__(self, raw: dict, where: str = "config.yaml", schema: dict | None = None):
        self.schema = schema or load_schema()
        self.where = where
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: the top level must be a mapping")
        validator_cls = jsonschema.validators.validator_for(self.schema)
        _raise_first(validator_cls(self.schema), raw, where)
        self.raw = raw
        self.data = apply_defaults(raw, self.schema, self.schema)
        for name, ds in self.data["datasets"].items():
            if ds["preset"] not in self.data["presets"]:
                raise ConfigError(
                    f"{where}: datasets.{name}.preset: unknown preset {ds['preset']!r} "
                    f"(known: {', '.join(sorted(self.data['presets']))})"
                )
        settings_schema = self.schema["$defs"]["settings"]
        for name, preset in self.data["presets"].items():
            _check_schedules(apply_defaults(preset, settings_schema, self.schema), f"{where}: presets.{name}")
        self._settings = {name: self._resolve_settings(name) for name in self.data["datasets"]}

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        path = Path(path)
        check_unique_keys(path)
        try:
            with open(path) as fh:
                raw = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        return cls(raw, where=str(path))

    @property
    def datasets(self) -> dict[str, dict]:
        return self.data["datasets"]

    @property
    def runtime(self) -> dict:
        return self.data["runtime"]

    def settings(self, dataset: str) -> dict:
        """The dataset's full settings: preset, then overrides, then schema defaults; canonical."""
        if dataset not in self._settings:
            raise ConfigError(f"{self.where}: datasets.{dataset}: no such dataset (known: {', '.join(self._settings)})")
        return self._settings[dataset]

    def _resolve_settings(self, name: str) -> dict:
        ds = self.raw["datasets"][name]
        preset = self.raw.get("presets", {}).get(ds["preset"], {}) or {}
        merged = deep_merge(preset, ds.get("overrides", {}) or {})
        settings_schema = self.schema["$defs"]["settings"]
        full = apply_defaults(merged, settings_schema, self.schema)
        validator_cls = jsonschema.validators.validator_for(self.schema)
        _raise_first(
            validator_cls({**settings_schema, "$defs": self.schema["$defs"]}),
            full,
            self.where,
            prefix=("datasets", name, "(preset " + ds["preset"] + " + overrides)"),
        )
        _check_schedules(full, f"{self.where}: datasets.{name}")
        return canonical(_floats_where_numbers(full, settings_schema, self.schema))
