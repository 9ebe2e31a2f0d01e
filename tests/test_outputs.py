"""No command writes over a file it did not create: every path a command derives (a sidecar, a summary, a
kit file, a run folder's files, a work folder) is refused in one line, before any work, where it is an input
of the command or a file nas did not write; the file stays byte for byte as it was.

One case per command that derives a path, each two ways: (a) the derived path is one of the command's inputs,
(b) a foreign file (a user's notes) lies there. A command whose claim were dropped or moved after its work
would fail its case: it writes the file (the digest changes), takes longer than the claim, or ends with
another message."""

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import pytest
import yaml

from nas.cost.plan import plan_frame, table_plan
from nas.cost.table import COLUMNS
from nas.outputs import backup_path, replaced
from tests.conftest import ROOT, TINY, copy_table, here_table

WORLD = ROOT / "search_spaces" / "world.yaml"
NOTES = b"my own notes, not nas's\n"


def digests(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def inputs(tiny_space, tiny_estimate, tmp_path_factory):
    """A space, an estimated and a measured table, a timed kit with an iPhone's hand-written results, a built
    model, a training config: made once, copied by each test."""
    root = tmp_path_factory.mktemp("inputs")
    shutil.copy(TINY, root / "space.yaml")
    copy_table(tiny_estimate, root)
    here_table(ROOT / "latency_tables" / "cpu_tiny.csv", root)
    kit = root / "kit"
    kit.mkdir()
    keys = table_plan(tiny_space)[1:4]
    manifest = plan_frame(keys).assign(package=[f"k{i}.mlpackage" for i in range(3)], inputs="", status="ok")
    manifest.to_csv(kit / "manifest.csv", index=False)
    (kit / "export.yaml").write_text(
        yaml.safe_dump({"kind": "ops", "space": "tiny", "precision": "fp16", "target": "iOS18", "tools": {}})
    )
    rows = plan_frame(keys).assign(
        latency_p50_ms=[1.0, 2.0, 3.0], latency_p90_ms=[1.5, 2.5, 3.5], working_set_mb="", samples=20, status="ok"
    )
    rows.reindex(columns=COLUMNS).fillna("").to_csv(kit / "results.csv", index=False)
    (kit / "results.yaml").write_text(  # figures an iPhone gave, written by hand: nas did not write this file
        yaml.safe_dump(
            {
                "device": "iPhone 16 Pro Max",
                "os": "iOS 18.2",
                "backend": "coreml",
                "compute_units": "CPU_AND_NE",
                "precision": "fp16",
                "tools": {"xcode": "16.2"},
                "date": "2026-12-01",
                "provenance": "measured",
            }
        )
    )
    from nas.model.build import build

    build(tiny_space, out=root / "model")
    (root / "distill.yaml").write_text(yaml.safe_dump({"space": str(TINY), "data": str(root / "data")}))
    return root


# name -> (args, the derived path, how the case is set up): "foreign" puts NOTES at the derived path (a folder
# with a notes file where the command writes a folder); "input" leaves it to the args, which name an input there.
CASES = {
    "profile: sidecar over the space": (
        ["profile", "{d}/shift.yaml", "-o", "{d}/shift.csv"],
        "{d}/shift.yaml",
        "input",
    ),
    "profile: sidecar over a foreign file": (["profile", "{d}/space.yaml", "-o", "{d}/t.csv"], "{d}/t.yaml", "foreign"),
    "profile coreml: kit's space copy over the space": (
        ["profile", "{d}/kit2/space.yaml", "--backend", "coreml", "--export-only", "{d}/kit2"],
        "{d}/kit2/space.yaml",
        "input",
    ),
    "profile coreml: kit file over a foreign file": (
        ["profile", "{d}/space.yaml", "--backend", "coreml", "--export-only", "{d}/kit3"],
        "{d}/kit3/space.yaml",
        "foreign",
    ),
    "table import: sidecar over the results": (
        ["table", "import", "{d}/kit", "-o", "{d}/kit/results.csv"],
        "{d}/kit/results.yaml",
        "input",
    ),
    "table import: sidecar over a foreign file": (
        ["table", "import", "{d}/kit", "-o", "{d}/imported.csv"],
        "{d}/imported.yaml",
        "foreign",
    ),
    "table estimate: sidecar over the space": (
        ["table", "estimate", "{d}/e.yaml", "-o", "{d}/e.csv"],
        "{d}/e.yaml",
        "input",
    ),
    "table estimate: sidecar over a foreign file": (
        ["table", "estimate", "{d}/space.yaml", "-o", "{d}/e.csv"],
        "{d}/e.yaml",
        "foreign",
    ),
    "table adapt: sidecar over the space": (
        ["table", "adapt", "{d}/cpu_tiny.csv", "--samples", "2", "--space", "{d}/n.yaml", "-o", "{d}/n.csv"],
        "{d}/n.yaml",
        "input",
    ),
    "table adapt: sidecar over a foreign file": (
        ["table", "adapt", "{d}/cpu_tiny.csv", "--samples", "2", "--space", "{d}/space.yaml", "-o", "{d}/n.csv"],
        "{d}/n.yaml",
        "foreign",
    ),
    "table adapt: measurements over a foreign file": (
        ["table", "adapt", "{d}/cpu_tiny.csv", "--samples", "2", "--space", "{d}/space.yaml", "-o", "{d}/n.csv"],
        "{d}/n.measured.csv",
        "foreign",
    ),
    "table adapt --results: sidecar over the results": (
        ["table", "adapt", "{d}/tiny_table.csv", "--results", "{d}/kit", "-o", "{d}/kit/results.csv"],
        "{d}/kit/results.yaml",
        "input",
    ),
    "table adapt --results: sidecar over a foreign file": (
        ["table", "adapt", "{d}/tiny_table.csv", "--results", "{d}/kit", "-o", "{d}/n.csv"],
        "{d}/n.yaml",
        "foreign",
    ),
    "table time: results over an iPhone's figures": (["table", "time", "{d}/kit"], "{d}/kit/results.yaml", "kept"),
    "export coreml: summary over the model's config": (
        ["export", "coreml", "--model", "{d}/model", "-o", "{d}/model/config.mlpackage"],
        "{d}/model/config.json",
        "input",
    ),
    "export coreml: summary over a foreign file": (
        ["export", "coreml", "--space", "{d}/space.yaml", "-o", "{d}/m/ref.mlpackage"],
        "{d}/m/ref.json",
        "foreign",
    ),
    "export coreml: a chunk over a foreign folder": (
        ["export", "coreml", "--space", "{d}/space.yaml", "-o", "{d}/m/ref.mlpackage", "--chunks", "2"],
        "{d}/m/ref_chunk1.mlpackage",
        "foreign",
    ),
    "export coreml: kit's space copy over the space": (
        ["export", "coreml", "--space", "{d}/m2/ref.space.yaml", "-o", "{d}/m2/ref.mlpackage"],
        "{d}/m2/ref.space.yaml",
        "input",
    ),
    "search: results over the table": (
        ["search", "{d}/space.yaml", "--table", "{d}/run/pareto.csv", "--trials", "2", "--out", "{d}/run"],
        "{d}/run/pareto.csv",
        "input",
    ),
    "search: summary over a foreign file": (
        ["search", "{d}/space.yaml", "--table", "{d}/tiny_table.csv", "--trials", "2", "--out", "{d}/run2"],
        "{d}/run2/summary.json",
        "foreign",
    ),
    "search: plot over a foreign file": (
        ["search", "{d}/space.yaml", "--table", "{d}/tiny_table.csv", "--trials", "2", "--out", "{d}/run3"],
        "{d}/run3/pareto.png",
        "foreign",
    ),
    "proxy check: report over the space": (
        ["proxy", "check", "{d}/pc/check.json", "--proxy", "params", "--reference", "replay", "--out", "{d}/pc"],
        "{d}/pc/check.json",
        "input",
    ),
    "proxy check: report over a foreign file": (
        ["proxy", "check", "{d}/space.yaml", "--proxy", "params", "--reference", "replay", "--out", "{d}/pc2"],
        "{d}/pc2/check.json",
        "foreign",
    ),
    "world make: work folder over the space": (
        ["world", "make", "{d}/w", "--space", "{d}/w.partial"],
        "{d}/w.partial",
        "input",
    ),
    "world make: work folder over a foreign folder": (
        ["world", "make", "{d}/w", "--space", "{d}/world.yaml"],
        "{d}/w.partial",
        "foreign",
    ),
    "build: architecture file over the architecture": (
        ["build", "{d}/space.yaml", "--arch", "{d}/b/architecture.yaml", "-o", "{d}/b"],
        "{d}/b/architecture.yaml",
        "input",
    ),
    "build: model config over a foreign file": (
        ["build", "{d}/space.yaml", "-o", "{d}/b2"],
        "{d}/b2/config.json",
        "foreign",
    ),
    "build: over the spatial weights": (
        ["build", "{d}/space.yaml", "--spatial-weights", "{d}/model", "-o", "{d}/model"],
        "{d}/model/config.json",
        "input",
    ),
    "train: config over the config": (
        ["train", "distill", "--config", "{d}/r/config.yaml", "--out", "{d}/r"],
        "{d}/r/config.yaml",
        "input",
    ),
    "train: summary over a foreign file": (
        ["train", "distill", "--config", "{d}/distill.yaml", "--out", "{d}/r2"],
        "{d}/r2/summary.json",
        "foreign",
    ),
    "data encode: manifest over the captions": (
        [
            *("data", "encode", "{d}/model", "--captions", "{d}/enc/manifest.json", "--vae", "{d}/model"),
            *("--text-encoder", "{d}/model", "--space", "{d}/space.yaml", "-o", "{d}/enc"),
        ],
        "{d}/enc/manifest.json",
        "input",
    ),
    "data encode: manifest over a foreign file": (
        [
            *("data", "encode", "{d}/model", "--vae", "{d}/model", "--text-encoder", "{d}/model"),
            *("--space", "{d}/space.yaml", "-o", "{d}/enc2"),
        ],
        "{d}/enc2/manifest.json",
        "foreign",
    ),
    "data synth: captions over a foreign file": (
        ["data", "synth", "-o", "{d}/syn", "--clips", "1", "--images", "1"],
        "{d}/syn/captions.csv",
        "foreign",
    ),
    "data tiny-models: VAE over the calibration videos": (
        ["data", "tiny-models", "--space", "{d}/space.yaml", "--calibrate", "{d}/tm/vae", "-o", "{d}/tm"],
        "{d}/tm/vae",
        "input",
    ),
    "data tiny-models: VAE over a foreign folder": (
        ["data", "tiny-models", "--space", "{d}/space.yaml", "-o", "{d}/tm2"],
        "{d}/tm2/vae",
        "foreign",
    ),
    "generate: output over the model": (
        [
            *("generate", "--model", "{d}/model", "--text-encoder", "{d}/model", "--prompt", "x"),
            *("--latents-only", "-o", "{d}/model/diffusion_pytorch_model.safetensors"),
        ],
        "{d}/model/diffusion_pytorch_model.safetensors",
        "input",
    ),
    "space sample: output over the space": (
        ["space", "sample", "{d}/space.yaml", "-o", "{d}/space.yaml"],
        "{d}/space.yaml",
        "input",
    ),
    "table plan: output over the space": (
        ["table", "plan", "{d}/space.yaml", "-o", "{d}/space.yaml"],
        "{d}/space.yaml",
        "input",
    ),
}


def _prepare(case: str, folder, derived):
    """Put in place what the case's input names: a copy of a fitting file at the derived path."""
    space = (folder / "space.yaml").read_bytes()
    copies = {
        "profile: sidecar over the space": space,
        "profile coreml: kit's space copy over the space": space,
        "table estimate: sidecar over the space": space,
        "table adapt: sidecar over the space": space,
        "export coreml: kit's space copy over the space": space,
        "proxy check: report over the space": space,
        "world make: work folder over the space": WORLD.read_bytes(),
        "data encode: manifest over the captions": b"file,caption\n",
    }
    derived.parent.mkdir(parents=True, exist_ok=True)
    if case in copies:
        derived.write_bytes(copies[case])
    elif case == "search: results over the table":
        shutil.copy(folder / "tiny_table.csv", derived)
        shutil.copy(folder / "tiny_table.yaml", derived.with_suffix(".yaml"))
    elif case == "build: architecture file over the architecture":
        derived.write_text(yaml.safe_dump({"space": "tiny", "slots": {}}))
    elif case == "train: config over the config":
        shutil.copy(folder / "distill.yaml", derived)
    elif case == "data tiny-models: VAE over the calibration videos":
        derived.mkdir()
        (derived / "clip.mp4").write_bytes(b"\x00" * 64)
    shutil.copy(WORLD, folder / "world.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_derived_path_on_an_input_or_a_foreign_file_is_refused_and_left_as_it_was(case, cli, inputs, tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(inputs, folder)
    args, derived, how = CASES[case]
    derived = Path(derived.format(d=folder))
    _prepare(case, folder, derived)
    if how == "foreign":
        if derived.suffix in ("", ".mlpackage", ".partial"):  # where a folder is written: a user's folder
            derived.mkdir(parents=True)
            derived = derived / "notes.txt"
        derived.write_bytes(NOTES)
    before = digests(folder)
    code, _, err = cli(*[a.format(d=folder) for a in args])
    lines = [line for line in err.strip().splitlines() if "third-party warning(s) hidden" not in line]  # imports'
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nas: error: "), err
    expected = {"input": "input of the command", "foreign": "nas did not write", "kept": "nas did not write"}[how]
    assert expected in lines[0], lines[0]
    assert digests(folder) == before  # nothing written, rewritten or removed
    assert not [p for p in folder.rglob("*.tmp")]


def test_a_sidecar_nas_wrote_is_rewritten_as_before(cli, tmp_path):
    """The claim refuses only what is not nas's: re-estimating over an estimate goes on."""
    args = ["table", "estimate", TINY, "-o", tmp_path / "e.csv"]
    assert cli(*args)[0] == 0
    code, out, err = cli(*args)
    assert code == 0 and "wrote" in out, err


def test_temporary_files_and_backups_never_land_on_a_file():
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "t.csv")
        fixed = target + ".tmp"  # the name a fixed temporary would take: a user's file
        with open(fixed, "wb") as handle:
            handle.write(NOTES)
        with replaced(target) as tmp:
            assert str(tmp) != fixed and tmp.parent == type(tmp)(folder)
            tmp.write_text("a,b\n")
        assert open(fixed, "rb").read() == NOTES and open(target).read() == "a,b\n"
        assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's private one
        with open(target + ".orig", "wb") as handle:
            handle.write(NOTES)
        assert backup_path(target).name == "t.csv.orig1"


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text(json.dumps({"kept": True}))
    with pytest.raises(RuntimeError), replaced(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"kept": True} and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_cases_cover_every_command_that_derives_a_path():
    """A new command that writes where it was not told must come with its case here."""
    commands = {
        " ".join(itertools.takewhile(lambda a: not a.startswith(("{", "-")), args)) for args, _, _ in CASES.values()
    }
    assert commands >= {
        "profile",
        "table import",
        "table estimate",
        "table adapt",
        "table time",
        "export coreml",
        "search",
        "proxy check",
        "world make",
        "build",
        "train distill",
        "data encode",
        "data synth",
        "data tiny-models",
        "generate",
        "space sample",
        "table plan",
    }
    assert {how for _, _, how in CASES.values()} == {"input", "foreign", "kept"}
