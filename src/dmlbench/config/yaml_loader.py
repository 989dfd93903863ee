"""The one YAML reader of configs: PyYAML's safe loader, with two refusals a plain ``safe_load``
lets through silently.

- A key given twice in one mapping, at any depth (two ``arcface:`` entries under ``methods``):
  ``safe_load`` keeps the last and drops the other without a word.
- A key that YAML 1.1 reads as a boolean or null (``on:``, ``yes:``, ``off:``, ``~:``): it would
  become ``True`` or ``None``, a label the user never wrote.

Both are found on the composed node tree (PyYAML's own parse, with line numbers), before the
document is constructed: no parser of our own. ``dmlbench validate``, ``dmlbench`` stages given
``--config``, the report (which reads the results' config snapshot) and the workflow
(rules/common.smk re-reads each ``--configfile`` with it) all read configs here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dmlbench.errors import ConfigError

_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


def _where(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _check_node(node: yaml.Node, path: tuple, name: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.tag in (_BOOL, _NULL) and not key_node.style:
                    kind = "a boolean" if key_node.tag == _BOOL else "null"
                    raise ConfigError(
                        f"{name}, line {line}: key '{key_node.value}' under {_where(path)} is read by YAML as "
                        f"{kind}, not as the name '{key_node.value}'; quote it ('{key_node.value}':) or rename it"
                    )
                key = key_node.value
            else:
                key = f"<{key_node.id}>"
            if key in seen:
                raise ConfigError(
                    f"{name}, line {line}: duplicate key {_where(path + (key,))} (first given on line "
                    f"{seen[key]}); YAML would keep only the last one - remove or rename one of them"
                )
            seen[key] = line
            _check_node(value_node, path + (key,), name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_node(item, path + (i,), name)


class _CheckedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that checks the composed document before constructing it."""

    def construct_document(self, node):
        _check_node(node, (), self.name)
        return super().construct_document(node)


def load_yaml(text_or_stream: Any, name: str = "config") -> Any:
    """Parse one YAML document safely (no code runs), refusing duplicate keys and boolean or
    null keys with a ConfigError naming ``name``, the line and the key."""
    loader = _CheckedLoader(text_or_stream)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """A YAML file through :func:`load_yaml`, with one line for a path that is missing, a
    folder, unreadable, or not text."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give the path of a YAML file (e.g. config/config.yaml)")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a text file (not UTF-8); give the path of a YAML file") from None
    if "\0" in text:
        raise ConfigError(f"{what} {path} is not a text file (it holds NUL bytes); give the path of a YAML file")
    return load_yaml(text, f"{what} {path}")


#: A number YAML 1.1 reads as text: an exponent without a dot (1e-3), as PyYAML does.
_STRING_NUMBER = re.compile(r"[-+]?\d+([eE][-+]?\d+)")


def string_number_note(value: Any) -> str:
    """For a string where a number is expected that reads as a number, why it is a string and
    how to write it (``lr: 1e-3`` is the string '1e-3' in YAML 1.1; 1.0e-3 is a float); else ''."""
    if not isinstance(value, str):
        return ""
    m = _STRING_NUMBER.fullmatch(value.strip())
    if m:
        fix = value.strip().replace(m[1], f".0{m[1]}", 1)
        return (
            f"; '{value}' is a string here: YAML 1.1 reads a number with an exponent as a number only "
            f"with a dot in it, so write {fix}"
        )
    try:
        float(value)
    except ValueError:
        return ""
    return f"; '{value}' is a string here (quoted in the YAML?): write the number without quotes"
