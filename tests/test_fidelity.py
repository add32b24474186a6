"""docs/method.md "Differences from the authors' code": the switches it names exist, and its
configuration for the authors' behaviour end to end is valid."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gazeloc.config import check_config, load_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
HEADING = "## Differences from the authors' code"


def _section() -> str:
    text = (ROOT / "docs" / "method.md").read_text()
    assert HEADING in text
    section = text.split(HEADING, 1)[1]
    return section.split("\n## ", 1)[0]


def _in_schema(schema: dict, dotted: str) -> bool:
    node = schema
    for part in dotted.split("."):
        props = node.get("properties", {})
        if part not in props:
            return False
        node = props[part]
    return True


def test_every_switch_in_the_table_is_a_config_key():
    schema = load_schema(SCHEMA)
    keys = set(re.findall(r"`([a-z_]+\.[a-z_]+)[` :]", _section())) - {"config.yaml"}
    assert len(keys) >= 15
    missing = sorted(k for k in keys if not _in_schema(schema, k))
    assert missing == []


def test_the_authors_configuration_is_valid():
    block = re.search(r"```yaml\n(.*?)```", _section(), re.S)
    assert block is not None
    override = yaml.safe_load(block.group(1))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section, values in override.items():
        config[section] = {**config.get(section, {}), **values}
    check_config(config, SCHEMA)
    assert override["labeler"]["mode"] == "reference"


def test_paper_preset_uses_the_reference_labeler():
    preset = yaml.safe_load((ROOT / "workflow" / "presets" / "paper.yaml").read_text())
    assert preset["labeler"]["mode"] == "reference"
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config["labeler"]["mode"] == "gazeloc"
