"""The paper's text side: prompt, background, and the released class lists."""

import hashlib

import pytest

from geopurify.encoders.text import PROMPT_TEMPLATE, XDECODER_BACKGROUND, released_classes, vocabulary
from geopurify.errors import ConfigError

# sha1 of "\n".join(DATA.all_label) of tj12323/GeoPurify@d4f323a config/geopurify_<cfg>.yaml, read with `fetch`
RELEASED = {
    "scannet20": (19, "09db76097a67105d577d0f5e50e97abc3bc9a819"),
    "scannet200": (200, "d2c6fab3afa8fcfa4359484e18caaee6bc9ae57b"),
    "matterport21": (21, "1a3fa2565b04c85ef3654016060b02e345542ee6"),
    "matterport40": (40, "0adeb674217e866aadb703435ffe5e830d5997bf"),
    "matterport80": (80, "a13726336a0b1a825d06722fd85869f96154a96c"),
    "matterport160": (160, "084ef75e9c1bdef82cfd3be46666fcde72d477a0"),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_class_lists(name):
    names = released_classes(name)
    n, digest = RELEASED[name]
    assert len(names) == n
    assert hashlib.sha1("\n".join(names).encode()).hexdigest() == digest


def test_prompt_and_background():
    assert PROMPT_TEMPLATE.format("chair") == "a chair in a scene"
    assert XDECODER_BACKGROUND == "background"
    assert "otherfurniture" not in released_classes("scannet")
    assert released_classes("matterport")[-2:] == ["otherfurniture", "ceiling"]


def test_vocabulary_forms():
    assert vocabulary("scannet200") == released_classes("scannet200")
    assert vocabulary("chair, table ,sofa") == ["chair", "table", "sofa"]
    assert vocabulary(["bed"]) == ["bed"]
    assert len(vocabulary("nyu40")) == 40
    with pytest.raises(ConfigError, match="duplicate"):
        vocabulary("a,a")
    with pytest.raises(ConfigError, match="empty"):
        vocabulary(" , ")
