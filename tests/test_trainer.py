"""The Trainer: the multi-step contract, freezing, bit-identical resume, EMA, schedules,
logging and samples. Tiny toy models and an in-memory toy data set keep it fast."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import pytest
import torch
from torch import nn

from genlab.errors import ConfigError, TrainingError
from genlab.models.base import GenerativeModel, TrainStep
from toys import (
    LinearModel,
    NoisyAE,
    ToyConfig,
    ToyData,
    ToyGAN,
    assert_bit_identical,
    params_of,
    run_cfg,
    tcfg,
    train_direct,
)

# --------------------------------------------------------------------------- contract


def test_gan_steps_freeze_the_other_module():
    torch.manual_seed(0)
    model = ToyGAN(ToyConfig(image_shape=(1, 6, 6)))
    model.snapshots = []
    import tempfile

    from genlab.train import Trainer

    with tempfile.TemporaryDirectory() as d:
        Trainer(model, ToyData(), tcfg(steps=3, weight_decay=0.1), d).fit()
    snaps = model.snapshots + [("end", params_of_named(model), None, None)]
    names = [s[0] for s in snaps]
    assert names == ["d", "g", "d", "g", "d", "g", "end"]
    for (name, before, grads, req), (_, after, _, _) in zip(snaps, snaps[1:]):
        updated, frozen = ("D.", "G.") if name == "d" else ("G.", "D.")
        for k in before:
            if k.startswith(frozen):
                assert torch.equal(before[k], after[k]), f"{name} step changed {k}"
                assert req[k] is False, f"{k} should be frozen during step {name}"
            else:
                assert not torch.equal(before[k], after[k]), f"{name} step did not update {k}"
                assert req[k] is True
    # frozen flags are restored after training
    assert all(p.requires_grad for p in model.parameters())


def params_of_named(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_per_step_optimisers_and_overrides(tmp_path):
    from genlab.train import Trainer

    model = ToyGAN(ToyConfig(image_shape=(1, 6, 6)))
    t = Trainer(
        model,
        ToyData(),
        tcfg(steps=1, lr=1e-3, betas=(0.9, 0.999), step_lr={"d": 2e-3}, step_betas={"g": (0.5, 0.99)}),
        tmp_path,
    )
    assert set(t.optimizers) == {"d", "g"}
    assert t.optimizers["d"].param_groups[0]["lr"] == 2e-3
    assert t.optimizers["g"].param_groups[0]["lr"] == 1e-3
    assert tuple(t.optimizers["g"].param_groups[0]["betas"]) == (0.5, 0.99)
    assert tuple(t.optimizers["d"].param_groups[0]["betas"]) == (0.9, 0.999)
    with pytest.raises(
        ConfigError, match=r"train\.step_lr names \['discriminator'\], but ToyGAN's train steps are \['d', 'g'\]"
    ):
        Trainer(model, ToyData(), tcfg(step_lr={"discriminator": 1e-3}), tmp_path)


def test_repeated_steps_share_one_optimiser_and_the_schedule_counts_iterations(tmp_path):
    from genlab.train import Trainer

    class TwoDSteps(ToyGAN):
        def train_steps(self):
            d, g = super().train_steps()
            return [d, dataclasses.replace(d, new_batch=True), g]

        def d_loss(self, batch):
            return {**super().d_loss(batch), "one": 1.0}

    model = TwoDSteps(ToyConfig(image_shape=(1, 6, 6)))
    c = tcfg(steps=3, lr=0.1, lr_schedule="cosine", schedule_steps=6, log_every=1)
    t = Trainer(model, ToyData(), c, tmp_path)
    assert set(t.optimizers) == {"d", "g"}
    t.fit()
    d_state = next(iter(t.optimizers["d"].state.values()))
    assert int(d_state["step"]) == 6  # two D updates per iteration, one set of Adam moments
    assert t.schedulers["d"].last_epoch == t.schedulers["g"].last_epoch == 3
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["d/one"] == 1.0  # logged values of repeated steps are averaged, not summed

    class Mismatch(ToyGAN):
        def train_steps(self):
            d, g = super().train_steps()
            return [d, dataclasses.replace(g, name="d")]

    with pytest.raises(ConfigError, match="same parameters"):
        Trainer(Mismatch(ToyConfig(image_shape=(1, 6, 6))), ToyData(), c, tmp_path / "x")


def test_batches_are_prepared_uint8_over_255_and_labels(tmp_path):
    from genlab.train import Trainer

    seen = []

    class Spy(LinearModel):
        def train_steps(self):
            inner = super().train_steps()[0]

            def loss(b):
                seen.append(b)
                return inner.loss(b)

            return [TrainStep("mse", [self.net], loss)]

    data = ToyData(n=40)
    Trainer(Spy(ToyConfig(image_shape=(1, 6, 6))), data, tcfg(steps=5, batch_size=8), tmp_path).fit()
    assert all(b["x"].shape == (8, 1, 6, 6) and b["y"].shape == (8,) for b in seen)
    # the 5 batches of one epoch are a permutation-slice of the data: images/255 with matching labels
    xs = torch.cat([b["x"] for b in seen])
    ys = torch.cat([b["y"] for b in seen])
    flat = data.images.float().div(255).flatten(1)
    for x, y in zip(xs, ys):
        i = int(torch.nonzero((flat == x.flatten()).all(1))[0])
        assert data.labels[i] == y
    assert len({tuple(x.flatten().tolist()) for x in xs}) == 40  # no repeats within an epoch


def test_nonfinite_loss_raises_and_keeps_last_checkpoint(tmp_path):
    from genlab.train import Trainer
    from genlab.train.checkpoint import list_checkpoints

    class Explodes(LinearModel):
        calls = 0

        def train_steps(self):
            def loss(b):
                Explodes.calls += 1
                v = ((self.net(b["x"]) - b["x"].flatten(1)) ** 2).mean()
                return {"loss": v * float("nan") if Explodes.calls == 7 else v}

            return [TrainStep("recon", [self.net], loss)]

    t = Trainer(Explodes(ToyConfig(image_shape=(1, 6, 6))), ToyData(), tcfg(steps=10, checkpoint_every=5), tmp_path)
    with pytest.raises(TrainingError, match=r"iteration 7.*'recon'"):
        t.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [5]


def test_lr_schedule_warmup_and_cosine():
    from genlab.train.trainer import lr_factor

    c = tcfg(lr_schedule="cosine", schedule_steps=20, warmup_steps=4)
    f = [lr_factor(s, c) for s in range(25)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0 and abs(f[12] - 0.5) < 1e-12 and f[20] == 0.0 and f[24] == 0.0
    assert all(a >= b for a, b in zip(f[4:], f[5:]))
    assert [lr_factor(s, tcfg(warmup_steps=2)) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_config_errors(tmp_path):
    from genlab.train import Trainer

    m = LinearModel(ToyConfig(image_shape=(1, 6, 6)))
    with pytest.raises(ConfigError, match="schedule_steps"):
        Trainer(m, ToyData(), tcfg(lr_schedule="cosine"), tmp_path)
    with pytest.raises(ConfigError, match="lr_schedule"):
        Trainer(m, ToyData(), tcfg(lr_schedule="linear"), tmp_path)
    with pytest.raises(ConfigError, match="fewer than"):
        Trainer(m, ToyData(n=8), tcfg(batch_size=16), tmp_path)


def test_lr_follows_schedule_during_training(tmp_path):
    from genlab.train import Trainer

    c = tcfg(steps=6, lr=0.1, lr_schedule="cosine", schedule_steps=6, warmup_steps=2, log_every=1)
    Trainer(LinearModel(ToyConfig(image_shape=(1, 6, 6))), ToyData(), c, tmp_path).fit()
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    from genlab.train.trainer import lr_factor

    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6]
    for r in recs:  # lr after step s is the rate for iteration s (0-based)
        assert math.isclose(r["lr"], 0.1 * lr_factor(r["step"], c), abs_tol=1e-12)
    assert {"mse/loss", "images_per_s", "time"} <= set(recs[0])


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize(
    "model_cls,extra",
    [
        (NoisyAE, {}),
        (ToyGAN, {}),
        (
            NoisyAE,
            {"ema_decay": 0.9, "grad_clip": 0.5, "lr_schedule": "cosine", "schedule_steps": 20, "warmup_steps": 3},
        ),
    ],
    ids=["noise+dropout", "two-step", "ema+clip+cosine"],
)
def test_bit_identical_resume(tmp_path, model_cls, extra):
    # n=40, batch 16: 2 batches per epoch, so the stop (step 7) falls mid-epoch
    data = ToyData(n=40)
    cfg = tcfg(steps=15, sample_every=4, log_every=3, **extra)
    full = train_direct(model_cls, cfg, tmp_path / "full", data, 15)
    train_direct(model_cls, cfg, tmp_path / "part", data, 7)
    # a fresh process-like Trainer: different init weights, RNG consumed elsewhere
    torch.manual_seed(999)
    torch.rand(17)
    resumed = train_direct(model_cls, cfg, tmp_path / "part", data, 15, resume_from_dir=True)
    assert resumed.step == 15
    assert_bit_identical(params_of(full.model), params_of(resumed.model))
    for k in full.optimizers:
        a, b = full.optimizers[k].state_dict()["state"], resumed.optimizers[k].state_dict()["state"]
        for i in a:
            for key in a[i]:
                assert torch.equal(a[i][key], b[i][key])
    if full.ema is not None:
        assert_bit_identical(full.ema.shadow, resumed.ema.shadow)


def test_ema_tracks_weights_and_goes_into_model_file(tmp_path):
    from genlab.io import load_tensors

    data = ToyData(n=40)
    t = train_direct(NoisyAE, tcfg(steps=5, ema_decay=0.5), tmp_path, data, 5)
    raw = params_of(t.model)
    saved = load_tensors(tmp_path / "model.safetensors")
    assert_bit_identical(saved, {k: v.to(raw[k].dtype) for k, v in t.ema.shadow.items()})
    assert any(not torch.equal(saved[k], raw[k]) for k in raw)


def test_sampling_and_logging_do_not_disturb_training(tmp_path):
    data = ToyData(n=40)
    a = train_direct(NoisyAE, tcfg(steps=8), tmp_path / "a", data, 8)
    b = train_direct(
        NoisyAE, tcfg(steps=8, sample_every=2, log_every=1, checkpoint_every=3, ema_decay=0.9), tmp_path / "b", data, 8
    )
    assert_bit_identical(params_of(a.model), params_of(b.model))
    pngs = sorted(p.name for p in (tmp_path / "b" / "samples").iterdir())
    assert pngs == ["step-0000002.png", "step-0000004.png", "step-0000006.png", "step-0000008.png"]
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 8


def test_conditional_sampling_gets_labels(tmp_path):
    from genlab.train import Trainer

    got = {}

    class Cond(NoisyAE):
        def sample(self, n, *, generator=None, labels=None):
            got["labels"] = labels
            got["training"] = self.training
            return super().sample(n, generator=generator)

    m = Cond(ToyConfig(image_shape=(1, 6, 6), num_classes=3))
    Trainer(m, ToyData(), tcfg(steps=2, sample_every=2), tmp_path).fit()
    assert got["labels"].tolist() == [i % 3 for i in range(64)]
    assert got["training"] is False and m.training is True


# --------------------------------------------------------------------------- train() / resume() / genlab.load


def test_train_and_resume_end_to_end(tmp_path, toys, monkeypatch):
    import genlab
    from genlab.io import read_json
    from genlab.train import resume, train
    from genlab.train.checkpoint import list_checkpoints

    monkeypatch.chdir(tmp_path)
    data = ToyData(n=40)
    cfg = run_cfg(steps=6, checkpoint_every=2, keep_checkpoints=2, ema_decay=0.5)
    d1 = train(cfg, dataset=data)
    d2 = train(cfg, dataset=data)
    assert d1 == tmp_path / "runs" / "toy-ae-toy" or d1.resolve() == (tmp_path / "runs" / "toy-ae-toy").resolve()
    assert d2.name == "toy-ae-toy-2"
    doc = read_json(d1 / "config.json")
    assert doc["model_name"] == "toy-ae" and doc["model"]["image_shape"] == [1, 6, 6] and doc["train"]["steps"] == 6
    assert doc["data"]["name"] == "toy"
    assert [s for s, _ in list_checkpoints(d1 / "checkpoints")] == [4, 6]
    model = genlab.load(d1)
    assert isinstance(model, NoisyAE) and not model.training

    # resume reloads the data through genlab.data.load
    import genlab.data as gdata

    calls = []

    def fake_load(name, split="train", data_dir=None, **kw):
        calls.append((name, split, data_dir))
        return data

    monkeypatch.setattr(gdata, "load", fake_load, raising=False)
    resume(d1, steps=9)
    assert calls == [("toy", "train", None)]
    assert read_json(d1 / "config.json")["train"]["steps"] == 9
    assert [s for s, _ in list_checkpoints(d1 / "checkpoints")] == [8, 9]
    # equals a straight 9-step run
    d3 = train(
        run_cfg(steps=9, checkpoint_every=2, keep_checkpoints=2, ema_decay=0.5),
        out_dir=str(tmp_path / "straight"),
        dataset=data,
    )
    assert_bit_identical(genlab.load(d1).state_dict(), genlab.load(d3).state_dict())


def test_train_validates_labels(tmp_path, toys):
    from genlab.train import train

    cfg = run_cfg()
    cfg = dataclasses.replace(cfg, model=ToyConfig(num_classes=3))
    with pytest.raises(ConfigError, match="no labels"):
        train(cfg, out_dir=str(tmp_path / "a"), dataset=ToyData(labelled=False))
    cfg = dataclasses.replace(cfg, model=ToyConfig(num_classes=5))
    with pytest.raises(ConfigError, match="num_classes=3"):
        train(cfg, out_dir=str(tmp_path / "b"), dataset=ToyData())


def test_compile_is_ignored_on_cpu_with_a_warning(tmp_path):
    from genlab.train import Trainer

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        Trainer(LinearModel(ToyConfig(image_shape=(1, 6, 6))), ToyData(), tcfg(compile=True), tmp_path)
    text = " ".join(str(x.message) for x in w)
    assert "compile is ignored" in text


def test_float_data_is_used_as_is(tmp_path):
    from genlab.train import Trainer

    seen = []

    class Points(GenerativeModel):
        input_mode = "signed"  # must NOT be applied to float data

        def __init__(self):
            super().__init__(ToyConfig())
            self.lin = nn.Linear(2, 2)

        def train_steps(self):
            def loss(b):
                seen.append(b["x"])
                return {"loss": ((self.lin(b["x"]) - b["x"]) ** 2).mean()}

            return [TrainStep("fit", [self.lin], loss)]

    class PointData:
        images = torch.randn(32, 2) * 5
        labels = None
        num_classes = 0
        shape = (2,)

    Trainer(Points(), PointData(), tcfg(steps=2, batch_size=8), tmp_path).fit()
    assert all(any(torch.equal(r, p) for p in PointData.images) for r in seen[0])


def test_amp_on_cpu_autocasts_the_loss_to_bfloat16_and_keeps_float32_weights(tmp_path):
    data = ToyData()
    dtypes = []

    class Recording(NoisyAE):
        def loss(self, batch):
            dtypes.append(self.dec(self.enc(batch["x"])).dtype)
            return super().loss(batch)

    t = train_direct(Recording, tcfg(steps=3, amp=True), tmp_path / "amp", data, 3)
    assert dtypes == [torch.bfloat16] * 3
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    dtypes.clear()
    train_direct(Recording, tcfg(steps=2), tmp_path / "fp32", data, 2)
    assert dtypes == [torch.float32] * 2


# --------------------------------------------------------------------------- the optimiser


@pytest.mark.parametrize("fused", [True, False])
def test_trainer_runs_fused_adam_on_cpu_unless_switched_off(tmp_path, fused):
    from genlab.train import Trainer

    t = Trainer(NoisyAE(ToyConfig(image_shape=(1, 4, 4))), ToyData(n=40), tcfg(steps=1, fused_adam=fused), tmp_path)
    assert all(bool(o.param_groups[0]["fused"]) == fused for o in t.optimizers.values())


def test_fused_adam_follows_the_loop_adam_on_channels_last_weights_read_back_from_a_checkpoint():
    """A masked channels-last weight (as a PixelCNN's): three steps of torch's loop Adam, its
    state saved the way a checkpoint stores it (standard layout), loaded into the fused Adam
    by load_optimizer, three more steps. Same weights as the loop Adam continuing, and the
    masked entries never move (torch's fused kernel, given moments in another memory layout
    than the weight, moved them: the reason for the layout fix)."""
    from genlab.train.state import adam, load_optimizer

    torch.manual_seed(0)
    mask = torch.zeros(8, 4, 3, 3)
    mask[:, :, 0] = 1
    mask[:, :, 1, 0] = 1
    w0 = torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    grads = [(torch.randn(8, 4, 3, 3) * mask).contiguous(memory_format=torch.channels_last) for _ in range(6)]

    def run(opt, p, gs):
        for g in gs:
            p.grad = g.clone()
            opt.step()

    p = nn.Parameter(w0.clone())
    loop = torch.optim.Adam([p], lr=1e-2, foreach=False)
    run(loop, p, grads[:3])
    saved = loop.state_dict()
    saved["state"] = {
        i: {k: v.clone(memory_format=torch.contiguous_format) for k, v in s.items()} for i, s in saved["state"].items()
    }
    q = nn.Parameter(p.detach().clone())
    fused = adam([q], lr=1e-2)
    assert fused.param_groups[0]["fused"]
    load_optimizer(fused, saved)
    fused.param_groups[0]["fused"] = True  # the loop-Adam checkpoint would resume with the loop: force the kernel
    run(fused, q, grads[3:])
    run(loop, p, grads[3:])
    torch.testing.assert_close(q.detach(), p.detach(), rtol=0, atol=1e-6)
    assert torch.equal(q.detach()[mask == 0], w0[mask == 0])


# --------------------------------------------------------------------------- progress off a terminal


def test_progress_into_a_log_file_is_a_plain_line_every_tenth_of_the_run(tmp_path, capsys):
    """stderr captured (not a terminal, as ``genlab train ... > log 2>&1``): 100 steps print
    10 plain lines (steps 10, 20, ..., 100), not 100 redrawn bar frames, and no carriage return."""
    train_direct(NoisyAE, tcfg(steps=100, progress=True, log_every=25), tmp_path, ToyData(n=40), 100)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{tmp_path.name}: step ")]
    assert [ln.split()[2] for ln in lines] == [f"{s}/100" for s in range(10, 101, 10)], err
    assert "ae/loss=" in lines[-1]  # the latest logged losses ride along, as on the bar


def test_plain_progress_also_prints_every_30_seconds_and_once_at_an_early_stop():
    import io

    from genlab.train.logs import PlainProgress, progress_bar

    now = [0.0]
    out = io.StringIO()
    bar = PlainProgress(1000, initial=200, desc="run", stream=out, clock=lambda: now[0])  # a line every 80 steps
    for step in range(201, 221):  # 20 steps of 10 s each: lines at 30, 60, 90, ... s
        now[0] += 10.0
        bar.update(1)
    bar.set_postfix({"ae/loss": "0.5"}, refresh=False)
    bar.close()  # stopped at step 220 (a budget): the last state is printed once
    lines = out.getvalue().splitlines()
    assert [ln.split()[2] for ln in lines] == [
        "203/1000",
        "206/1000",
        "209/1000",
        "212/1000",
        "215/1000",
        "218/1000",
        "220/1000",
    ]
    assert lines[-1] == "run: step 220/1000 (22%), 200 s, 0.1 steps/s, ae/loss=0.5"
    assert isinstance(progress_bar(10, 0, "run", stream=io.StringIO()), PlainProgress)
