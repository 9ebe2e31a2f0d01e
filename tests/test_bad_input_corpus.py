"""A corpus of bad input against the CLI: each case is one line ``nas: error: ...`` naming the file or
option and the problem, exit 2, no traceback, and every input file byte for byte as it was."""

import hashlib
import json
import shutil

import pytest
import yaml

from nas.data.tiny_models import write_vae
from nas.model import VideoUNet
from tests.conftest import TINY


def digests(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tiny_space, tiny_estimate, tmp_path_factory):
    """Good and bad files, made once; the tests copy them so that each can check its own."""
    root = tmp_path_factory.mktemp("corpus")
    shutil.copy(TINY, root / "space.yaml")
    shutil.copy(tiny_estimate, root / "table.csv")
    shutil.copy(tiny_estimate.with_suffix(".yaml"), root / "table.yaml")
    (root / "broken.yaml").write_text("name: tiny\nslots: [down0\n")
    (root / "list.yaml").write_text("- just\n- a list\n")
    data = yaml.safe_load(TINY.read_text())
    data["choices"][1] = {"op": "conv9d", "kernel": 3}
    (root / "unknown_op.yaml").write_text(yaml.safe_dump(data))
    (root / "arch.yaml").write_text(yaml.safe_dump({"space": "tiny", "slots": {"down0": {"op": "attn3d", "heads": 7}}}))
    (root / "other_arch.yaml").write_text(yaml.safe_dump({"space": "elsewhere", "slots": {}}))
    (root / "not_a_table.csv").write_text("op,channels\nconv1d,32\n")
    shutil.copy(root / "table.csv", root / "no_sidecar.csv")
    (root / "both_names").mkdir()  # the working-set column under its old and its new name
    lines = (root / "table.csv").read_text().splitlines()
    (root / "both_names" / "table.csv").write_text("\n".join([lines[0] + ",memory_mb", *(r + ",1" for r in lines[1:])]))
    shutil.copy(root / "table.yaml", root / "both_names" / "table.yaml")
    (root / "garbage.db").write_bytes(b"this is not a database" * 100)
    other = {
        "frames": 8,
        "latent_channels": 4,
        "latent_height": 16,
        "latent_width": 16,
        "text_dim": 32,
        "text_tokens": 77,
        "samples": [],
        "shards": [],
    }
    (root / "other_data").mkdir()
    (root / "other_data" / "manifest.json").write_text(json.dumps(other))
    # checkpoints: a finished run's layout (model/, scheduler/) with the model made bad three ways
    model = VideoUNet.from_space(tiny_space, tiny_space.architecture("reference"))
    for case in ("pickle_only", "truncated", "other_class"):
        run = root / case
        (run / "scheduler").mkdir(parents=True)
        (run / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler"}))
        model.save_pretrained(run / "model", safe_serialization=case != "pickle_only")
    weights = root / "truncated" / "model" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    config = root / "other_class" / "model" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "_class_name": "AutoencoderKL"}))
    # VAEs for `nas prune --decoder`: a tiny one, and its config beside pickled weights only
    write_vae(root / "vae")
    (root / "pickle_vae").mkdir()
    shutil.copy(root / "vae" / "config.json", root / "pickle_vae" / "config.json")
    (root / "pickle_vae" / "diffusion_pytorch_model.bin").write_bytes(b"never unpickled")
    # fixed parts a space names: a decoder of another latent width, a VAE saved only as a pickle, no folder at all
    from diffusers import AutoencoderKL

    from nas.space.generation import tiny_vae_config

    AutoencoderKL(**tiny_vae_config(latent_channels=8)).save_pretrained(root / "wide_vae")
    AutoencoderKL(**tiny_vae_config()).save_pretrained(root / "pickled_vae", safe_serialization=False)
    for name, decoder in (("wide", "wide_vae"), ("pickled", "pickled_vae"), ("nowhere", "no_such_vae")):
        data = yaml.safe_load(TINY.read_text())
        data["generation"] = {"decoder": str(root / decoder), "text_encoder": "tiny"}
        (root / f"decoder_{name}.yaml").write_text(yaml.safe_dump(data))
    return root


SEARCH = ["search", "{space}", "--table", "{table}", "--trials", "2", "--out", "{out}"]


def generate(model: str) -> list[str]:
    """`nas generate` of ``model`` (a corpus checkpoint), cheap: no text encoder, latents only."""
    return [
        "generate",
        "--model",
        model,
        "--text-encoder",
        "{missing}",
        "--prompt",
        "x",
        "--latents-only",
        "-o",
        "{out}/x.safetensors",
    ]


CASES = {
    # spaces
    "space: YAML syntax": (["space", "show", "{broken}"], "{broken}"),
    "space: not a mapping": (["search", "{list}", "--table", "{table}", "--out", "{out}"], "{list}"),
    "space: unknown op": (["cost", "{unknown_op}", "--table", "{table}"], "unknown temporal op 'conv9d'"),
    "space: missing": (["search", "{missing}", "--table", "{table}", "--out", "{out}"], "{missing}"),
    # the fixed parts a space is priced with
    "generation: decoder of another latent width": (
        ["cost", "{decoder_wide}", "--table", "{table}"],
        "latent_channels 8 does not match the space's video.latent_channels 4 (a decoder of another latent width)",
    ),
    "generation: pickle-only VAE": (["table", "plan", "{decoder_pickled}"], "weights only as pickles"),
    "generation: no such folder": (
        ["search", "{decoder_nowhere}", "--table", "{table}", "--out", "{out}"],
        "no_such_vae: no such folder",
    ),
    # architectures
    "arch: bad heads": (["cost", "{space}", "--table", "{table}", "--arch", "{arch}"], "{arch}"),
    "arch: other space": (["build", "{space}", "--arch", "{other_arch}", "--device", "meta"], "{other_arch}"),
    # tables
    "table: not a table": ([*SEARCH[:3], "{not_a_table}", *SEARCH[4:]], "{not_a_table}"),
    "table: no sidecar": ([*SEARCH[:3], "{no_sidecar}", *SEARCH[4:]], "sidecar no_sidecar.yaml is missing"),
    "table: both names of a column": (
        [*SEARCH[:3], "{both_names}/table.csv", *SEARCH[4:]],
        "{both_names}/table.csv: column memory_mb and working_set_mb are the same column; give only working_set_mb",
    ),
    "table: both names of a column, profile resumed": (
        ["profile", "{space}", "-o", "{both_names}/table.csv"],
        "column memory_mb and working_set_mb are the same column",
    ),
    # budgets
    "budget: negative latency": ([*SEARCH, "--latency-budget", "-5"], "budgets must be positive"),
    "budget: zero memory": ([*SEARCH, "--memory-budget", "0"], "budgets must be positive"),
    "budget: zero steps": ([*SEARCH, "--passes", "0"], "budgets must be positive"),
    "budget: zero trials": (
        ["search", "{space}", "--table", "{table}", "--trials", "0", "--out", "{out}"],
        "--trials, --workers and --screen must be at least 1",
    ),
    # storage URLs
    "storage: unknown scheme": ([*SEARCH, "--storage", "nosuchdb://x/y"], "--storage nosuchdb://x/y: cannot open"),
    "storage: not a database": ([*SEARCH, "--storage", "sqlite:///{garbage}"], "{garbage}"),
    "storage: workers in memory": ([*SEARCH, "--workers", "2", "--storage", "memory"], "--workers > 1 needs a shared"),
    # proxy options
    "proxy: lr=fast": ([*SEARCH, "--proxy", "distill", "--proxy-option", "lr=fast"], "--proxy-option lr=fast"),
    "proxy: train_steps=-1": (
        [*SEARCH, "--proxy", "distill", "--proxy-option", "train_steps=-1"],
        "train_steps and report_every must be",
    ),
    "proxy: clips=1": ([*SEARCH, "--proxy", "distill", "--proxy-option", "clips=1"], "clips >= 2"),
    "proxy: lr=0": ([*SEARCH, "--proxy", "distill", "--proxy-option", "lr=0"], "lr > 0"),
    "proxy: unknown key": ([*SEARCH, "--proxy", "distill", "--proxy-option", "speed=3"], "--proxy-option speed"),
    "proxy: data of another space": (
        [*SEARCH, "--proxy", "distill", "--proxy-option", "data={other_data}"],
        "data does not fit space tiny (frames 8 vs 4)",
    ),
    "proxy: unknown proxy": ([*SEARCH, "--proxy", "oracle"], "--proxy: unknown proxy 'oracle'"),
    # checkpoints
    "checkpoint: .bin only": (
        generate("{pickle_only}"),
        "weights only as pickles (diffusion_pytorch_model.bin)",
    ),
    "checkpoint: truncated safetensors": (
        generate("{truncated}"),
        "{truncated}/model: cannot load",
    ),
    "checkpoint: another class": (
        generate("{other_class}"),
        "names class AutoencoderKL, not VideoUNet",
    ),
    # a VAE's decoder to prune
    "decoder: pickle-only VAE": (
        ["prune", "{pickle_vae}", "--decoder", "--widths", "4,4,8,8", "-o", "{out}"],
        "{pickle_vae}/diffusion_pytorch_model.bin: a pickled checkpoint is never loaded",
    ),
    "decoder: target wider than the source": (
        ["prune", "{vae}", "--decoder", "--widths", "16,16,32,32", "-o", "{out}"],
        "the target is wider than the source",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_no_file(case, cli, inputs, tmp_path):
    folder = tmp_path / "inputs"
    shutil.copytree(inputs, folder)
    before = digests(folder)
    paths = {
        "space": folder / "space.yaml",
        "table": folder / "table.csv",
        "out": tmp_path / "out",
        "missing": folder / "missing",
        **{p.stem: p for p in folder.iterdir()},
    }
    args, expected = CASES[case]
    code, _, err = cli(*[a.format(**paths) for a in args])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nas: error: "), err
    assert expected.format(**paths) in lines[0], lines[0]
    assert "Traceback" not in err
    assert digests(folder) == before  # nothing written into, rewritten or removed from the user's files


def test_rerun_with_another_setup_is_one_line_and_keeps_the_study(cli, inputs, tmp_path):
    out = tmp_path / "run"
    first = ["search", inputs / "space.yaml", "--table", inputs / "table.csv", "--trials", "3", "--out", out, "--json"]
    assert cli(*first)[0] == 0
    before, trials = outputs_of(out), study_trials(out)
    code, _, err = cli(*first, "--proxy", "flops")
    assert code == 2 and err.strip().splitlines() == [
        f"nas: error: sqlite:///{(out / 'study.db').resolve()}: study 'tiny-table' was run with another setup "
        "(proxy params -> flops); use another --out (or --study NAME) to start a new study"
    ]
    assert outputs_of(out) == before and study_trials(out) == trials


def outputs_of(folder):
    """The digests of a run's files but its SQLite study, whose bytes SQLite itself may rewrite (a WAL checkpoint
    when the first run's last connection closes) without changing what it holds: see study_trials."""
    return {p: d for p, d in digests(folder).items() if not p.name.startswith("study.db")}


def study_trials(folder):
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{folder / 'study.db'}")
    return [(t.number, t.state, t.values, t.params) for t in study.trials]
