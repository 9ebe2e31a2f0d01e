"""Search spaces and architectures: loading, counting, sampling, canonical form."""

import math

import pytest

from nas.errors import NasError
from nas.space import Architecture, SearchSpace
from tests.conftest import DEFAULT


def test_tiny_space_counts_every_architecture(tiny_space):
    assert tiny_space.num_architectures == 5 ** len(tiny_space.slots)


def test_default_space_shape_and_levels():
    space = SearchSpace.load(DEFAULT)
    assert (space.video.frames, space.video.latent_height, space.video.latent_width) == (16, 40, 64)
    sizes = {(s.path, s.level): (s.height, s.width) for s in space.slots}
    assert [sizes[("down", level)] for level in range(4)] == [(40, 64), (20, 32), (10, 16), (5, 8)]
    assert ("mid", 3) in sizes and all(("up", level) in sizes for level in range(4))
    ops = {c.op for s in space.slots for c in s.choices}
    assert ops == {"none", "conv1d", "conv3d", "attn1d", "attn3d"}


def test_reference_follows_the_paper():
    space = SearchSpace.load(DEFAULT)
    reference = space.architecture("reference")
    for slot in space.slots:
        op = reference.choice(slot.name).op
        if slot.level <= 1:
            assert op in ("conv1d", "attn1d", "none"), slot.name
        if op == "attn3d":
            assert slot.level == len(space.backbone["block_out_channels"]) - 1


def test_list_valued_params_and_counts_expand(tiny_dict):
    tiny_dict["choices"] = [{"op": "none"}, {"op": "attn1d", "heads": [2, 4]}]
    tiny_dict["counts"] = [1, 2, 3]
    tiny_dict.pop("architectures")
    space = SearchSpace.from_dict(tiny_dict)
    assert len(space.slots[0].choices) == 1 + 2 * 3
    assert space.num_architectures == 7 ** len(space.slots)


def test_sample_is_valid_and_seeded(tiny_space):
    a, b = tiny_space.sample(7), tiny_space.sample(7)
    assert a == b and a.id == b.id
    assert len({tiny_space.sample(s).id for s in range(20)}) > 1
    for name, choice in a.choices:
        assert choice in tiny_space.slot(name).choices


def test_architecture_yaml_round_trip(tiny_space, tmp_path):
    arch = tiny_space.sample(3)
    path = arch.save(tmp_path / "a.yaml")
    again = Architecture.load(path, tiny_space)
    assert again == arch and again.id == arch.id
    assert tiny_space.architecture(path) == arch


def test_ids_differ_between_architectures(tiny_space):
    ids = {arch.id for arch, _ in zip(tiny_space.enumerate(), range(200))}
    assert len(ids) == 200


def test_enumerate_matches_count(tiny_dict):
    tiny_dict["slots"] = tiny_dict["slots"][:3]
    tiny_dict.pop("architectures")
    space = SearchSpace.from_dict(tiny_dict)
    archs = list(space.enumerate())
    assert len(archs) == space.num_architectures == 125
    assert len({a.id for a in archs}) == 125


def test_count_defaults_when_the_slot_has_one(tiny_space):
    arch = Architecture.from_dict(tiny_space, {"slots": {s: {"op": "conv1d"} for s in tiny_space.slot_names}})
    assert all(c.count == 1 and c.param_dict == {"kernel": 3} for _, c in arch.choices)


@pytest.mark.parametrize(
    "slots, message",
    [
        ({"down0": {"op": "conv1d", "count": 2}}, "not a choice of this slot"),
        ({"down0": {"op": "attn1d", "heads": 3}}, "not a choice of this slot"),
        ({"down0": {"op": "warp"}}, "unknown temporal op 'warp'"),
        ({"down0": {"op": "conv1d", "dilation": 2}}, "unknown parameter(s) dilation"),
        ({"nowhere": {"op": "none"}}, "slot 'nowhere' is not in space"),
    ],
)
def test_architecture_that_does_not_fit(tiny_space, slots, message):
    data = {name: {"op": "none"} for name in tiny_space.slot_names}
    data.update(slots)
    with pytest.raises(NasError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Architecture.from_dict(tiny_space, {"slots": data})


def test_missing_slot_is_an_error(tiny_space):
    with pytest.raises(NasError, match="no choice for slot"):
        Architecture.from_dict(tiny_space, {"slots": {"down0": {"op": "none"}}})


def test_position_selects_a_layer_inside_the_block(tiny_dict):
    tiny_dict["slots"] = [{"name": "up0_first", "path": "up", "level": 0, "position": 0}]
    tiny_dict.pop("architectures")
    space = SearchSpace.from_dict(tiny_dict)
    assert space.slots[0].position == 0
    tiny_dict["slots"][0]["position"] = 2
    with pytest.raises(NasError, match="position 2 does not exist"):
        SearchSpace.from_dict(tiny_dict)


def test_spaces_count_params_without_allocating():
    space = SearchSpace.load(DEFAULT)
    assert 300e6 < space.params_spatial < 450e6
    assert math.prod(len(s.choices) for s in space.slots) == space.num_architectures


def test_a_backbone_is_built_once_per_config_and_a_bad_one_fails_every_time(tiny_dict, monkeypatch):
    """Loading a space builds its backbone on meta to count it (and to catch a bad config at once); a process
    that loads the same backbone again (every command of a search does) counts it once."""
    import diffusers

    built = []
    real = diffusers.UNet2DConditionModel

    def counting(**config):
        built.append(config["block_out_channels"])
        return real(**config)

    monkeypatch.setattr(diffusers, "UNet2DConditionModel", counting)
    tiny_dict["backbone"]["block_out_channels"] = [24, 48, 48, 48]  # a config no other test loads
    first = SearchSpace.from_dict(tiny_dict).params_spatial
    assert SearchSpace.from_dict(tiny_dict).params_spatial == first and built == [[24, 48, 48, 48]]
    tiny_dict["backbone"]["block_out_channels"] = [16, 48, 48, 48]
    assert SearchSpace.from_dict(tiny_dict).params_spatial < first and len(built) == 2
    tiny_dict["backbone"]["attention_head_dim"] = [4, 4]  # two for four blocks: diffusers refuses it
    for _ in range(2):
        with pytest.raises(NasError, match="backbone: "):
            SearchSpace.from_dict(tiny_dict)


def test_backbone_count_is_kept_on_disk_and_a_broken_file_is_counted_again(tmp_path, monkeypatch):
    """nas space show and nas cost read the backbone's parameter count from NAS_CACHE_DIR (no torch)."""
    import json

    from nas.space import library_cache, search_space

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    config = json.dumps(SearchSpace.load(DEFAULT).backbone, sort_keys=True)
    counted = search_space._backbone_params.__wrapped__(config)
    [path] = (tmp_path / "backbone_params").glob("*.json")
    kept = json.loads(path.read_text())
    assert kept["answer"] == counted and kept["config"] == config and kept["diffusers"]
    path.write_text(json.dumps({**kept, "answer": 7}))  # the file is what the next process reads
    assert search_space._backbone_params.__wrapped__(config) == 7
    path.write_text("{not json")
    assert search_space._backbone_params.__wrapped__(config) == counted
    path.write_text(json.dumps({**kept, "config": "{}", "answer": 7}))  # another question's file: not believed
    assert search_space._backbone_params.__wrapped__(config) == counted
    assert library_cache.kept("q", "no-such-package-here", "{}", lambda: [1, 2]) == [1, 2]
