"""tympan.config: dataclass configs from YAML defaults and typed key=value overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from tympan.config import load_config
from tympan.errors import ConfigError


@dataclass(frozen=True)
class Toy:
    encoder: Literal["conv", "gru"] = "conv"  # which encoder
    layers: int = 2  # how many
    lr: float = 1e-3  # learning rate
    augment: bool = True  # SpecAugment on/off
    store: str | None = None  # where runs go


def test_defaults_file_and_overrides_are_typed(tmp_path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text("encoder: gru\nlayers: 4\naugment: false\nstore: null\n")
    cfg = load_config(Toy, path, ["lr=3e-4", "layers=6", "store=/tmp/s"])
    assert cfg == Toy(encoder="gru", layers=6, lr=3e-4, augment=False, store="/tmp/s")
    assert load_config(Toy) == Toy()
    assert load_config(Toy, overrides=["store=null", "augment=0"]) == Toy(augment=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["encodr=gru"], "unknown config key 'encodr'; known keys: encoder, layers"),
        (["encoder=lstm"], "encoder='lstm' is not one of conv | gru"),
        (["layers=two"], "layers='two' is not an integer"),
        (["lr=fast"], "lr='fast' is not a number"),
        (["augment=maybe"], "augment='maybe' is not true or false"),
        (["layers"], "override 'layers' is not key=value"),
    ],
)
def test_bad_overrides_say_what_is_wrong(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")) as info:
        load_config(Toy, overrides=overrides)
    assert isinstance(info.value, ValueError)  # ConfigError is an InvalidInputError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping of key: value, got list"),
        ("layers: [1, 2]\n", "layers must be a single value"),
        ("encoder: [unclosed\n", "cannot read the config"),
        ("layers: 2.5\n", "layers='2.5' is not an integer"),
    ],
)
def test_bad_files_name_the_file(tmp_path, text, message) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(Toy, path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(Toy, tmp_path / "missing.yaml")
