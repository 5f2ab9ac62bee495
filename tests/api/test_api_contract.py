"""The public API's signatures: type hints on every public function, and the documented rule that a
command taking its stage's config also takes that config's fields as keyword overrides."""

from __future__ import annotations

import inspect

import pytest

from geopurify import api
from geopurify.errors import ConfigError

PUBLIC = [n for n in api.__all__ if inspect.isfunction(getattr(api, n))]
# commands whose `config` is one stage's dataclass (docs/ARCHITECTURE.md, glue: "or the same as keyword overrides")
STAGE_CONFIG = ["encode", "inspect", "evaluate", "evaluate_instances", "query", "instances", "render", "view",
                "select", "synth"]


def test_every_command_is_exported():
    for name in ["segment", "segment_many", "train", *STAGE_CONFIG]:
        assert name in api.__all__, name


@pytest.mark.parametrize("name", PUBLIC)
def test_public_functions_have_type_hints_and_a_docstring(name):
    fn = getattr(api, name)
    sig = inspect.signature(fn)
    bare = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
    assert not bare, f"api.{name}: parameters without a type hint: {bare}"
    assert sig.return_annotation is not inspect.Signature.empty, f"api.{name}: no return type"
    assert inspect.getdoc(fn), f"api.{name}: no docstring"


@pytest.mark.parametrize("name", STAGE_CONFIG)
def test_stage_config_commands_take_keyword_overrides(name):
    params = inspect.signature(getattr(api, name)).parameters
    assert "config" in params, name
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), f"api.{name} takes no **fields"


def test_an_unknown_override_is_refused_with_the_accepted_list(tmp_path):
    with pytest.raises(ConfigError, match="InstanceConfig: unknown option.*accepted: grouping"):
        api.instances(tmp_path, min_pointz=50)
    with pytest.raises(ConfigError, match="EncodeConfig: unknown option"):
        api.encode(tmp_path, batchsize=2)


def test_geopurify_load_is_typed():
    import geopurify

    sig = inspect.signature(geopurify.load)
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())
    assert sig.return_annotation is not inspect.Signature.empty
