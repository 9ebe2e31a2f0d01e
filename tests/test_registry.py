"""The three plug-in points (temporal ops, proxies, profilers) follow one registry's rules."""

import json
import sys
from importlib.metadata import EntryPoint

import pytest

import nas.registry
from nas import NasError
from nas.ops.registry import BUILTIN_DEFAULTS, OP_REGISTRY, get_op, list_ops, op_defaults, register_op
from nas.profile.base import PROFILER_REGISTRY, get_profiler, list_profilers, register_profiler
from nas.quality.proxies import PROXY_REGISTRY, get_proxy, list_proxies, register_proxy

# noun: kind (in messages), registry, the module and public functions users' plugins call, a built-in name
POINTS = {
    "op": ("temporal op", OP_REGISTRY, "nas.ops", "register_op", register_op, get_op, list_ops, "conv1d"),
    "proxy": (
        "proxy",
        PROXY_REGISTRY,
        "nas.quality.proxies",
        "register_proxy",
        register_proxy,
        get_proxy,
        list_proxies,
        "params",
    ),
    "profiler": (
        "profiler",
        PROFILER_REGISTRY,
        "nas.profile.base",
        "register_profiler",
        register_profiler,
        get_profiler,
        list_profilers,
        "torch",
    ),
}


@pytest.fixture(params=sorted(POINTS))
def point(request, monkeypatch):
    """(noun, *POINTS[noun]) for each plug-in point; what a test registers in it is forgotten afterwards."""
    registry = POINTS[request.param][1]
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_origins", dict(registry._origins))
    monkeypatch.setattr(registry, "_scanned", False)  # a test may fake the installed entry points
    return (request.param, *POINTS[request.param])


def test_a_taken_name_is_refused_in_one_line_and_the_same_object_may_register_again(point):
    _, kind, registry, _, _, register, get, _, builtin = point
    clash = type("Clash", (), {"name": builtin, "__module__": "user_code"})
    with pytest.raises(NasError) as refused:
        register(clash)  # refused whether or not the built-in was imported yet
    assert str(refused.value) == (
        f"{kind} {builtin!r} is already registered by built-in "
        f"{registry.builtins[builtin]}; register user_code:Clash under another name"
    )
    assert isinstance(refused.value, ValueError)  # what register_op raised before
    assert register(get(builtin)) is get(builtin)

    mine = type("Mine", (), {"name": "registry_test_mine", "__module__": "user_code"})
    assert register(mine) is mine and register(mine) is mine and get("registry_test_mine") is mine
    with pytest.raises(NasError, match=f"^{kind} 'registry_test_mine' is already registered by user_code:Mine; "):
        register(type("Other", (), {"name": "registry_test_mine"}))
    assert get("registry_test_mine") is mine


def test_an_unknown_name_lists_the_known_ones_in_one_line(point):
    _, kind, registry, _, _, _, get, names, builtin = point
    with pytest.raises(NasError) as unknown:
        get("no_such_thing")
    assert str(unknown.value) == f"unknown {kind} 'no_such_thing' (known: {', '.join(names())})"
    assert set(registry.builtins) <= set(names())
    assert isinstance(unknown.value, KeyError)  # what the registries raised before


def write_plugin(folder, module: str, point, name: str) -> None:
    """A user's module that registers a class through the public decorator when imported."""
    _, kind, _, api, register_name, *_ = point
    (folder / f"{module}.py").write_text(
        f'"""A user\'s {kind}."""\nfrom {api} import {register_name}\n\n\n'
        f'@{register_name}\nclass Plugged:\n    name = "{name}"\n'
    )


def test_an_installed_packages_entry_points_are_discovered(point, tmp_path, monkeypatch):
    noun, kind, registry, _, _, _, get, names, _ = point
    module, name = f"registry_test_ep_{noun}", f"ep_{noun}"
    (tmp_path / f"{module}.py").write_text(
        f'class Plugged:\n    """A {kind} of an installed package."""\n\n    name = "{name}"\n'
    )
    write_plugin(tmp_path, f"{module}_registers", point, f"{name}_registered")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = [
        EntryPoint(name, f"{module}:Plugged", registry.group),  # a class
        EntryPoint("mine", f"{module}_registers", registry.group),
    ]  # a module that registers its class
    monkeypatch.setattr(nas.registry, "entry_points", lambda group: found if group == registry.group else [])
    assert {name, f"{name}_registered"} <= set(names())
    assert get(name).__module__ == module and get(f"{name}_registered").__module__ == f"{module}_registers"
    assert registry.source(name) == f"entry point {name} = {module}:Plugged"
    assert registry.source(f"{name}_registered") == f"entry point mine = {module}_registers"


def test_a_plugin_named_in_the_environment_is_imported_by_get(point, tmp_path, monkeypatch):
    noun, _, registry, _, _, _, get, _, _ = point
    module, name = f"registry_test_plugin_{noun}", f"plugin_{noun}"
    write_plugin(tmp_path, module, point, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NAS_PLUGINS", module)  # as a child worker inherits it from `nas --plugin`
    assert module not in sys.modules and name not in registry._entries
    assert get(name).__module__ == module
    assert registry.source(name) == f"plugin {module}"


def test_a_plugin_taking_a_builtin_name_ends_the_command_in_one_line(point, tmp_path, monkeypatch, cli):
    noun, kind, registry, *_, builtin = point
    module = f"registry_test_clash_{noun}"
    write_plugin(tmp_path, module, point, builtin)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NAS_PLUGINS", "")
    code, _, err = cli("--plugin", module, "ops")
    assert code == 2 and err.splitlines() == [
        f"nas: error: {kind} {builtin!r} is already registered by built-in "
        f"{registry.builtins[builtin]}; register {module}:Plugged under "
        "another name"
    ]


def test_builtin_op_defaults_are_read_only():
    with pytest.raises(TypeError):
        BUILTIN_DEFAULTS["conv1d"]["kernel"] = 5
    with pytest.raises(TypeError):
        BUILTIN_DEFAULTS["conv9d"] = {}
    mine = op_defaults("conv1d")
    mine["kernel"] = 5
    assert op_defaults("conv1d") == {"kernel": 3}
    for name in ("conv1d", "attn3d", "none"):
        with pytest.raises(TypeError):
            get_op(name).defaults["kernel"] = 5
    assert dict(get_op("conv1d").defaults) == {"kernel": 3} and dict(get_op("none").defaults) == {}


@pytest.mark.parametrize(
    "command, noun, header",
    [
        ("ops", "op", ["op", "defaults", "source", "doc"]),
        ("proxies", "proxy", ["proxy", "source", "doc"]),
        ("profilers", "profiler", ["profiler", "source", "doc"]),
    ],
)
def test_nas_lists_each_plug_in_point_with_source_and_description(cli, command, noun, header):
    code, out, err = cli(command, "--json")
    assert code == 0, err
    listed, builtins = json.loads(out), POINTS[noun][1].builtins
    assert set(builtins) <= set(listed)
    assert all(listed[name]["source"] == "built-in" and listed[name]["doc"] for name in builtins)
    code, out, err = cli(command)
    assert code == 0 and out.splitlines()[0].split() == header, err
