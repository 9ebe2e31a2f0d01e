"""Reading and writing the project's YAML files (spaces, architectures): safe_load only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nas.errors import NasError
from nas.outputs import write_text


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file, or NasError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise NasError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NasError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise NasError(f"{path}: not a text file") from None
    if not isinstance(data, dict):
        raise NasError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def write_yaml(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as block-style YAML, keys in the order given, whole or not at all; create parent folders."""
    return write_text(path, dump_yaml(data))


def dump_yaml(data: dict[str, Any]) -> str:
    """Block-style YAML with one-line mappings for leaves (``down0: {op: conv1d, count: 1}``)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
