"""WaveNet: receptive field, causality by gradient, normalisation, cached == naive,
completion, save/load; the WAV reader and writer."""

import itertools
import wave

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab.data import audio
from genlab.data.errors import DataError
from genlab.models.wavenet import WaveNet, WaveNetConfig


def tiny(length=40, dilations=(1, 2, 4), stacks=2, block_kernel=2, **kw):
    return WaveNet(
        WaveNetConfig(
            image_shape=(1, 1, length),
            residual_channels=8,
            skip_channels=8,
            dilations=dilations,
            stacks=stacks,
            block_kernel=block_kernel,
            **kw,
        )
    )


@pytest.mark.parametrize("dilations,stacks,k", [((1, 2, 4), 2, 2), ((1, 3), 1, 3), ((2, 1, 8), 1, 2)])
def test_receptive_field_and_causality_by_gradient(dilations, stacks, k):
    torch.manual_seed(0)
    model = tiny(48, dilations, stacks, k, amplitude_levels=16)
    rf = 1 + stacks * sum((k - 1) * d for d in dilations)
    assert model.receptive_field == rf
    length = 48
    onehot = F.one_hot(torch.randint(0, 16, (length,)), 16).T.float()
    xs = onehot.expand(length, 16, length).clone().requires_grad_(True)
    out = model.logits_from_onehot(xs)
    (g,) = torch.autograd.grad(out[torch.arange(length), :, torch.arange(length)].sum(), xs)
    for t in range(length):
        seen = set(torch.nonzero(g[t].abs().sum(0)).flatten().tolist())
        assert seen <= set(range(max(0, t - rf), t)), f"output {t} sees {sorted(seen)}"  # causal, within the field
        if t >= rf:
            assert {t - rf, t - 1} <= seen  # the field reaches exactly rf samples back
        if dilations == (1, 2, 4):
            assert seen == set(range(max(0, t - rf), t))  # doubling dilations leave no holes


def test_normalizes_exactly():
    torch.manual_seed(0)
    model = tiny(3, (1, 2), 1, amplitude_levels=4).double()
    codes = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    x = (codes / 3).view(-1, 1, 1, 3)
    assert abs(model.log_prob(x).exp().sum().item() - 1) < 1e-9


def test_cached_sampling_equals_naive_and_completion():
    torch.manual_seed(0)
    model = tiny(40)
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = model.sample(3, generator=torch.Generator().manual_seed(5), method="naive")
    assert torch.equal(a, b) and a.shape == (3, 1, 1, 40)
    mask = torch.zeros(40)
    mask[:16] = 1
    c = model.complete(a, mask, generator=torch.Generator().manual_seed(9))
    d = model.complete(a, mask, generator=torch.Generator().manual_seed(9), method="naive")
    assert torch.equal(c, d) and torch.equal(c[..., :16], a[..., :16])


def test_train_step_labels_and_save_load(tmp_path):
    torch.manual_seed(0)
    model = tiny(32, num_classes=2)
    x = audio.sines(4, 32).images.float() / 255
    y = torch.tensor([0, 1, 0, 1])
    out = model.train_steps()[0].loss({"x": x, "y": y})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and set(out) >= {"nll", "bpd"}
    with pytest.raises(ValueError, match="0..1"):
        model.sample(1, labels=torch.tensor([2]))
    with pytest.raises(ValueError, match="unconditional"):
        tiny(32).sample(1, labels=torch.tensor([0]))
    with pytest.raises(ValueError, match="expected images"):
        model.log_prob(torch.zeros(2, 1, 1, 31), labels=y[:2])
    model.save(tmp_path)
    loaded = genlab.load(tmp_path)
    assert torch.allclose(loaded.log_prob(x, labels=y), model.log_prob(x, labels=y))


def write_wav(path, data, rate, width=2, channels=1):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        if width == 2:
            f.writeframes((np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())
        else:
            f.writeframes(((np.clip(data, -1, 1) * 127) + 128).astype(np.uint8).tobytes())


def test_wav_folder_reader_and_writer(tmp_path):
    t = np.arange(16000) / 16000
    write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 16000)
    write_wav(tmp_path / "b.WAV", np.repeat(0.25 * np.sin(2 * np.pi * 220 * t[:8000]), 2), 8000, width=1, channels=2)
    (tmp_path / "broken.wav").write_bytes(b"not a wav")
    ds = audio.load_wav_folder(tmp_path, clip_length=1000, sample_rate=8000)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (8 + 8, 1, 1, 1000)
    out = audio.save_wav(ds.images[:2].float() / 255, tmp_path / "out" / "s.wav", rate=8000)
    back, rate = audio.read_wav(out)
    assert rate == 8000 and len(back) == 2000 + 800
    ref = audio.mu_law_decode(ds.images[0, 0, 0].numpy())
    assert np.abs(back[:1000] - ref).max() < 1e-3
    codes = np.arange(256)
    assert np.array_equal(audio.mu_law_encode(audio.mu_law_decode(codes)), codes)


def test_wav_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        audio.load_wav_folder(tmp_path / "missing", 100, 8000)
    (tmp_path / "x.wav").write_bytes(b"junk")
    with pytest.raises(DataError, match=f"{tmp_path.name}.*no readable .wav"):
        audio.load_wav_folder(tmp_path, 100, 8000)


def test_wav_and_sines_reachable_through_data_load(tmp_path):
    from genlab import data

    t = np.arange(8000 * 2)
    pcm = (0.5 * np.sin(2 * np.pi * 440 * t / 8000) * 32767).astype("<i2")
    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    everything = data.load(f"wav:{tmp_path}", split="all")
    train, test = data.load(f"wav:{tmp_path}"), data.load(f"wav:{tmp_path}", split="test")
    assert everything.images.shape == (3, 1, 1, 4096)
    assert len(train) + len(test) == 3 and len(test) == 1
    s = data.load("sines")
    assert s.images.shape == (512, 1, 1, 256) and s.images.dtype == torch.uint8
