"""Runs and ``model.save`` folders written by genlab 0.1.0 still load, sample and resume.

The fixtures in tests/fixtures/v0_1_0 were written by genlab 0.1.0 (commit 7a2c447) with
tests/fixtures/v0_1_0/make_fixtures.py: tiny runs of 4 steps and saved models that use
every config field later versions renamed or moved. ``expected.json`` holds what 0.1.0
computed from them: exact log-likelihoods of fixed inputs and the weights of each run
resumed to 7 steps (per-tensor sums and norms, and the norm of the change).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

import genlab
from genlab import compat, registry
from genlab.io import load_tensors
from genlab.train import resume

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_1_0"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
_spec = importlib.util.spec_from_file_location("make_v0_1_0_fixtures", FIXTURES / "make_fixtures.py")
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)

FOLDERS = sorted(p.relative_to(FIXTURES).as_posix() for sub in ("runs", "saved") for p in (FIXTURES / sub).iterdir())
RUNS = sorted(p.name for p in (FIXTURES / "runs").iterdir())


def adam_step_bound(t: int, betas: tuple[float, float]) -> float:
    """The largest |update| / lr that Adam (bias-corrected, eps -> 0) can take at step ``t``,
    whatever the gradients: v_t >= (1 - b2) b2^(t-i) g_i^2 for every i <= t, so
    |m_t| / sqrt(v_t) <= (1 - b1) / sqrt(1 - b2) * sum_{j<t} (b1 / sqrt(b2))^j, times the
    bias corrections sqrt(1 - b2^t) / (1 - b1^t). At t = 1 it is exactly 1."""
    b1, b2 = betas
    geometric = sum((b1 / b2**0.5) ** j for j in range(t))
    return (1 - b2**t) ** 0.5 / (1 - b1**t) * (1 - b1) / (1 - b2) ** 0.5 * geometric


def rounding_driven(model) -> set[str]:
    """Names of the biases whose gradient is zero in exact arithmetic: those of a layer whose
    output goes straight into an InstanceNorm (which subtracts each channel's mean, so a
    per-channel constant cannot change the loss). Their gradient is rounding noise, which
    differs between CPU kernels; Adam normalises it to steps of about lr either way."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, following) in zip(children, children[1:]):
                if (
                    isinstance(following, torch.nn.modules.instancenorm._InstanceNorm)
                    and getattr(layer, "bias", None) is not None
                ):
                    names.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return names


def noise_tolerance(folder: Path, first_step: int, last_step: int) -> float:
    """How far two CPUs may disagree on one element of a rounding-driven bias after Adam's
    steps ``first_step..last_step`` of the run in ``folder``: each run moves it at most
    lr * adam_step_bound(t) per step, in any direction."""
    train = json.loads((folder / "config.json").read_text())["train"]
    return 2 * train["lr"] * sum(adam_step_bound(t, tuple(train["betas"])) for t in range(first_step, last_step + 1))


def test_the_adam_bound_holds_for_gradients_that_are_pure_noise():
    """adam_step_bound against torch's Adam on random-sign gradients of random sizes."""
    g = torch.Generator().manual_seed(0)
    w = torch.zeros(1000, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1.0, betas=(0.9, 0.999))  # eps only shrinks a step
    for t in range(1, 8):
        before = w.detach().clone()
        w.grad = torch.randn(1000, generator=g) * torch.rand(1000, generator=g) ** 4
        opt.step()
        moved = (w.detach() - before).abs().max().item()
        assert moved <= adam_step_bound(t, (0.9, 0.999)) * (1 + 1e-6)
    assert adam_step_bound(1, (0.5, 0.999)) == pytest.approx(1.0)


def _load(folder: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # renamed fields: tested on their own below
        return genlab.load(FIXTURES / folder)


def test_the_fixtures_cover_every_case_of_the_generator():
    kept = {f"{sub}/{case}" for case, subs in make_fixtures.KEEP.items() for sub in subs}
    assert set(FOLDERS) == kept
    assert set(EXPECTED["cases"]) == set(make_fixtures.CASES)
    assert EXPECTED["genlab_version"] == "0.1.0"


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_0_1_0_folder_loads_and_samples(folder):
    model = _load(folder)
    doc = json.loads((FIXTURES / folder / "config.json").read_text())
    assert doc["genlab_version"] == "0.1.0"
    x = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert x.shape[0] == 2 and torch.isfinite(x).all()
    if len(model.config.image_shape) == 3 and folder != "runs/cyclegan":
        assert x.shape[1:] == tuple(model.config.image_shape)
        assert x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("case", make_fixtures.EXACT)
def test_exact_log_likelihoods_are_unchanged(case):
    folder = f"runs/{case}" if "runs" in make_fixtures.KEEP[case] else f"saved/{case}"
    model = _load(folder)
    x = load_tensors(FIXTURES / "inputs.safetensors")[case]
    with torch.no_grad():
        got = model.log_prob(x).double()
    want = torch.tensor(EXPECTED["cases"][case]["log_prob"], dtype=torch.float64)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("case", RUNS)
def test_a_0_1_0_run_resumes_to_the_weights_0_1_0_reached(case, tmp_path):
    run = tmp_path / case
    shutil.copytree(FIXTURES / "runs" / case, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resume(run, steps=EXPECTED["resumed_steps"])
    got = make_fixtures.weight_stats(run / "model.safetensors", FIXTURES / "runs" / case / "model.safetensors")
    want = EXPECTED["cases"][case]["resumed_weights"]
    assert sorted(got) == sorted(want)
    noisy = rounding_driven(_load(f"runs/{case}"))
    tol = noise_tolerance(FIXTURES / "runs" / case, make_fixtures.STEPS + 1, EXPECTED["resumed_steps"])
    weights = load_tensors(run / "model.safetensors")
    for name, (s, norm, change) in want.items():
        if name in noisy:  # sum, norm and change of the change may each move by n * tol, sqrt(n) * tol, sqrt(n) * tol
            n = weights[name].numel()
            assert abs(got[name][0] - s) <= n * tol and abs(got[name][1] - norm) <= n**0.5 * tol, name
            assert abs(got[name][2] - change) <= n**0.5 * tol, name
            continue
        assert got[name][0] == pytest.approx(s, rel=1e-5, abs=1e-5), name
        assert got[name][1] == pytest.approx(norm, rel=1e-5, abs=1e-5), name
        assert got[name][2] == pytest.approx(change, rel=1e-3, abs=1e-6), name  # the steps taken
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4, 6]  # logged every 2 steps, none twice


@pytest.mark.parametrize("case", RUNS)
def test_the_0_1_0_command_still_trains_the_same_weights(case, tmp_path):
    """The same ``genlab train`` command as 0.1.0 (old field names in --set included) gives
    the weights 0.1.0 wrote: presets, learning rates and betas kept their effect. 0.1.0 ran
    torch's default (Python-loop) Adam; genlab now runs the fused kernel by default, the
    same update up to rounding, which Adam magnifies where a gradient is pure rounding
    noise (cyclegan's biases before instance norms), so the comparison names 0.1.0's."""
    from genlab.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert main(make_fixtures.train_argv(case, tmp_path / case) + ["--set", "train.fused_adam=false"]) == 0
    got = load_tensors(tmp_path / case / "model.safetensors")
    retired = compat.retired_state_keys(registry.entry(make_fixtures.CASES[case][0]).model_class)
    want = {k: v for k, v in load_tensors(FIXTURES / "runs" / case / "model.safetensors").items() if k not in retired}
    assert sorted(got) == sorted(want)
    noisy = rounding_driven(_load(f"runs/{case}"))
    tol = noise_tolerance(FIXTURES / "runs" / case, 1, make_fixtures.STEPS)
    for k in want:
        atol = tol if k in noisy else 1e-6
        torch.testing.assert_close(got[k], want[k], rtol=0 if k in noisy else 1e-5, atol=atol, msg=k)


#: a 0.1.0 folder -> a field its config.json names the old way, as it is called now
RENAMED = {
    "saved/vae": "model.iaf_hidden_dim",
    "saved/pixelcnn-categorical": "model.grey_levels",
    "saved/gated-pixelcnn": "model.num_blocks",
    "saved/wavenet": "model.amplitude_levels",
    "saved/pixelvae": "model.pixel_blocks",
    "saved/gan-ring8": "model.hidden_layers",
    "saved/ali-levels2": "model.latent_levels",
    "runs/dcgan": "train.step_lr.discriminator",
    "runs/cyclegan": "train.betas",
    "runs/progan": "train.lr",
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the other old names of the same folder
@pytest.mark.parametrize("folder", sorted(RENAMED))
def test_old_field_names_load_with_a_deprecation_warning_and_are_saved_anew(folder, tmp_path):
    with pytest.warns(DeprecationWarning, match=RENAMED[folder].replace(".", r"\.")):
        model = genlab.load(FIXTURES / folder)
    model.save(tmp_path / "again")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # today's names: no warning
        again = genlab.load(tmp_path / "again")
    assert again.config == model.config


def test_a_0_1_0_run_config_moves_the_optimiser_settings_to_train():
    from genlab.train import load_run_config

    with pytest.warns(DeprecationWarning):
        dcgan = load_run_config(FIXTURES / "runs" / "dcgan")
    assert dcgan.train.step_lr == {"generator": 2e-4, "discriminator": 4e-4}
    assert dcgan.train.step_betas == {"generator": (0.5, 0.99), "discriminator": (0.5, 0.999)}
    with pytest.warns(DeprecationWarning):
        progan = load_run_config(FIXTURES / "runs" / "progan")
    assert (progan.train.lr, progan.train.betas, progan.train.step_lr) == (1e-3, (0.0, 0.99), {})
    with pytest.warns(DeprecationWarning):
        ali = load_run_config(FIXTURES / "runs" / "ali")
    assert set(ali.train.step_lr) == {"generator-encoder", "discriminator"}
