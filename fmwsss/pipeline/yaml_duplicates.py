"""Find duplicate mapping keys in a YAML document.

PyYAML (and Snakemake, which loads config.yaml with it) keeps the last of two equal keys without a word, so
a setting written twice silently loses its first value. This walks the composed node tree instead, where
every key still carries its line, and reports each repeat with its dotted path. Cost: one extra parse of
the file (milliseconds for config.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class DuplicateKey:
    """``path`` (dotted, from the top level) is written at ``first_line`` and again at ``second_line`` (1-based)."""

    path: str
    first_line: int
    second_line: int


def _key_name(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else f"<{node.tag.rsplit(':', 1)[-1]} key>"


def _walk(node: yaml.Node, prefix: tuple[str, ...], seen: set[int], out: list[DuplicateKey]) -> None:
    if id(node) in seen:  # an alias of an anchored node: already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, prefix + (str(i),), seen, out)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    lines: dict[tuple[str, str], int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        name = _key_name(key_node)
        line = key_node.start_mark.line + 1
        # scalar keys compare as written with their resolved tag: `1` (int) and `"1"` (str) are different keys
        ident = (key_node.tag, name)
        if ident in lines:
            out.append(DuplicateKey(".".join(prefix + (name,)), lines[ident], line))
        else:
            lines[ident] = line
        _walk(value_node, prefix + (name,), seen, out)


def duplicate_keys(text: str) -> list[DuplicateKey]:
    """Every repeated key of every mapping in ``text`` (first document), in file order; [] when none.

    Raises ``yaml.YAMLError`` when ``text`` is not YAML.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    out: list[DuplicateKey] = []
    if root is not None:
        _walk(root, (), set(), out)
    return out
