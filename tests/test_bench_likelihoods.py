"""benchmarks/likelihoods.py: the table assembly and the model list, without training."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the script imports harness

import torch

from genlab.metrics.likelihood import per_example_nll
from genlab.registry import build_run_config
from genlab.train.runs import build_model

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "likelihoods.py"
_spec = importlib.util.spec_from_file_location("bench_likelihoods", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _result(kind, bpd=1.2345, se=0.0123, **extra):
    r = {
        "kind": kind,
        "params": 1234567,
        "samples_per_s": 12.34,
        "steps": 42,
        "fid": 12.345,
        "kid": 0.5678,
        "kid_std": 0.01,
        "digits": 9,
        "confidence": 0.876,
        "n_samples": 200,
    }
    if kind != "none":
        r.update(bpd=bpd, bpd_se=se, n_test=200)
    return {**r, **extra}


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_likelihood_table_rows_order_kind_and_published():
    results = {"glow": _result("exact", 1.5, 0.01), "dcgan": _result("none"), "vae": _result("bound", 2.25, 0.125)}
    notes = {"glow": "dequantized", "vae": "discretized logistic"}
    rows = _rows(bench.likelihood_table(results, notes))
    assert [r[0] for r in rows] == ["glow", "vae"]  # the GAN has no likelihood row; order kept
    glow, vae = rows
    assert glow[1] == "dequantized" and glow[2] == "1.500 +- 0.010 (n=200)" and glow[3] == "exact"
    assert vae[2] == "2.250 +- 0.125 (n=200)" and vae[3] == "bound / estimate"
    assert glow[4] == "12.3" and glow[5] == "1,234,567" and glow[6] == "42"
    assert glow[7].startswith("1.05 (") and "FFJORD" in glow[7]
    assert vae[7].startswith("n/a (")


def test_likelihood_table_published_from_the_given_dict():
    rows = _rows(bench.likelihood_table({"m": _result("exact")}, {}, published={"m": (0.5, "Some et al., table 9")}))
    assert rows[0][7] == "0.50 (Some et al., table 9)"
    rows = _rows(bench.likelihood_table({"m": _result("exact")}, {}, published={}))
    assert rows[0][7] == "n/a (no published number stored)"


def test_quality_table_has_every_model_with_its_metrics():
    results = {"vae": _result("bound"), "dcgan": _result("none", fid=3.21, digits=10, kid_std=None)}
    rows = _rows(bench.quality_table(results))
    assert [r[0] for r in rows] == ["vae", "dcgan"]
    assert rows[0][1:] == ["12.3", "0.568 +- 0.01", "9/10", "0.88", "200", "12.3"]
    assert rows[1][1] == "3.2" and rows[1][2] == "0.568" and rows[1][3] == "10/10"


def test_every_likelihood_model_has_a_published_entry_and_no_invented_numbers():
    names = [s[0] for s in bench.LIKELIHOOD_MODELS]
    assert set(bench.PUBLISHED) == set(names)
    assert all(source for _, source in bench.PUBLISHED.values())
    stated = {n: v for n, (v, _) in bench.PUBLISHED.items() if v is not None}
    assert stated == {"glow": 1.05}


@pytest.mark.parametrize("name,model_name,overrides,note", bench.LIKELIHOOD_MODELS + bench.GAN_MODELS)
def test_each_benchmark_config_builds_with_the_stated_likelihood(name, model_name, overrides, note):
    rc = build_run_config(model_name, data="mnist", overrides=overrides + ["model.image_shape=[1,28,28]"])
    model = build_model(rc)
    if (name, model_name, overrides, note) in bench.GAN_MODELS:
        assert model.likelihood_kind == "none"
        return
    assert model.likelihood_kind in ("exact", "bound")
    # every likelihood is over 8-bit data: 256 discrete levels or a dequantized density with -D log 256
    if "dequantized" in note:
        assert model.input_mode == "dequantize"
    elif model_name == "ddpm":
        assert model.input_mode == "signed"
    else:
        assert model.input_mode == "unit", name
    if model_name in ("pixelcnn", "gated-pixelcnn", "pixelvae"):
        assert model.config.grey_levels == 256 and model.config.likelihood != "bernoulli"
    # the benchmark passes importance samples only where log_prob takes them (ddpm's bound refused k = 100)
    k = bench.iw_samples_for(model, 7)
    assert k == (7 if model_name in ("vae", "pixelvae") else None), name
    model.eval()
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    if model_name not in ("pixelcnn", "gated-pixelcnn", "flow-matching", "ddpm", "pixelvae"):  # the cheap ones run here
        assert per_example_nll(model, x, iw_samples=k, batch_size=2, progress=False).shape == (2,)
