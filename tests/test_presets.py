"""The papers' presets: each builds a valid run config and model, names its source, and
has the parameter count of the paper's layers (counted here from the paper's layer
tables) or a documented difference."""

import re

import pytest
import torch

from genlab import registry
from genlab.cli import main
from genlab.config import to_dict


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def nparams(module):
    return sum(p.numel() for p in module.parameters())


def build(model, preset):
    cfg = registry.build_run_config(model, preset=preset)
    return cfg, registry.entry(model).model_class(cfg.model)


def presets_named(keep) -> dict[str, dict]:
    """The registered presets whose name ``keep`` accepts, by model, then preset name (models without one left out)."""
    found = {m: {n: p for n, p in registry.entry(m).presets.items() if keep(n)} for m in registry.MODELS}
    return {m: ps for m, ps in found.items() if ps}


#: The papers' settings (``paper``, ``paper-<variant>``) and those sized for 10 CPU-minutes (``mnist-10min...``),
#: each model's from its module's PRESETS (genlab.presets' naming convention).
PAPER = presets_named(lambda name: name == "paper" or name.startswith("paper-"))
BUDGET = presets_named(lambda name: name.startswith("mnist-10min"))
PRESETS = [(m, p) for m, ps in PAPER.items() for p in ps]


@pytest.mark.parametrize("model,preset", PRESETS)
def test_paper_preset_builds_and_sets_every_value(model, preset):
    p = registry.entry(model).presets[preset]
    cfg = registry.build_run_config(model, preset=preset)
    sections = {"model": to_dict(cfg.model), "train": to_dict(cfg.train), "data": to_dict(cfg.data)}
    for key, value in p.values.items():
        section, name = key.split(".", 1)
        got = sections[section][name]
        assert got == (list(value) if isinstance(value, tuple) else value), key
    # The source names the paper (authors and year) and where in it (table, section, figure or appendix).
    assert re.search(r"[A-Z][a-z]+.* (19|20)\d\d", p.source)
    assert re.search(r"\b(Table|section|figure|appendix)\b", p.source)
    assert "Not in genlab" in p.source or "Not expressible" in p.source  # what the paper has and genlab lacks
    for r in p.published:
        assert r.value > 0 and re.search(r"(19|20)\d\d", r.source)
    m = registry.entry(model).model_class(cfg.model)  # the paper-size network (up to 116 M parameters: gated-pixelcnn)
    assert nparams(m) > 0 and tuple(m.config.image_shape) == tuple(p.values["model.image_shape"])


def test_the_users_data_wins_over_the_papers():
    assert registry.build_run_config("pixelcnn", preset="paper").data.name == "mnist"
    assert registry.build_run_config("pixelcnn", data="mnist-5k", preset="paper").data.name == "mnist-5k"
    assert (
        registry.build_run_config("pixelcnn", preset="paper", overrides=["data.name=fashion-mnist"]).data.name
        == "fashion-mnist"
    )


def test_cyclegan_paper_networks_have_the_appendix_layers():
    """Zhu et al. 2017, appendix 7.2: c7s1-64, d128, d256, 9 x R256, u128, u64, c7s1-3 (instance norm
    without affine parameters) and the 70x70 PatchGAN C64-C128-C256-C512 with a 1-channel output."""
    _, m = build("cyclegan", "paper")
    g = (
        conv(3, 64, 7)
        + conv(64, 128, 3)
        + conv(128, 256, 3)
        + 9 * 2 * conv(256, 256, 3)
        + conv(256, 128, 3)
        + conv(128, 64, 3)
        + conv(64, 3, 7)
    )
    d = conv(3, 64, 4) + conv(64, 128, 4) + conv(128, 256, 4) + conv(256, 512, 4) + conv(512, 1, 4)
    assert (
        (nparams(m.G), nparams(m.F), nparams(m.D_A), nparams(m.D_B))
        == (g, g, d, d)
        == (11_378_179, 11_378_179, 2_764_737, 2_764_737)
    )


def test_dcgan_paper_generator_is_the_authors_code_but_for_its_5x5_kernels():
    """Newmu/dcgan_code, faces/train_uncond_dcgan.py: z (100) -> 4x4x1024 without a bias, batch norm per unit
    (gains and biases of ngf*8*4*4 entries), transposed convolutions without biases 1024-512-256-128-3, batch norm
    per channel between them, kernels 5x5. genlab has no kernel-size setting (4x4) and gives G's last layer biases."""
    _, m = build("dcgan", "paper")
    bn = lambda c: 2 * c  # noqa: E731  (scale and shift per channel or unit)

    def code_g(k):
        return (
            100 * 4 * 4 * 1024
            + bn(4 * 4 * 1024)
            + conv(1024, 512, k, False)
            + bn(512)
            + conv(512, 256, k, False)
            + bn(256)
            + conv(256, 128, k, False)
            + bn(128)
            + conv(128, 3, k, False)
        )

    assert code_g(5) == 18_885_760 and "18,885,760" in PAPER["dcgan"]["paper"].source
    assert nparams(m.G) == code_g(4) + 3 == 12_689_155  # 4x4 kernels and the 3 output biases: the documented difference
    d = next(c for c in m.D.modules() if isinstance(c, torch.nn.Conv2d))
    assert (
        d.kernel_size == (4, 4) and d.out_channels == 128
    )  # ndf = 128; 4x4 where the code has 5x5 (stated in the source)
    cfg = registry.build_run_config("dcgan", preset="paper")
    assert cfg.train.weight_decay == 1e-5 and (cfg.train.lr, tuple(cfg.train.betas)) == (2e-4, (0.5, 0.999))


def test_progan_paper_is_the_official_cifar10_config_up_to_32x32_plus_the_lower_resolutions_rgb_layers():
    """tkarras/progressive_growing_of_gans (original-theano-version), config.py, 'Section 6.5': latent 128, 128 maps
    (fmap_max), 400k images per phase at batch 16, total_kimg 20000; the layers of appendix A.1 at that width."""
    cfg, m = build("progan", "paper")
    w = 128
    c3 = conv(w, w, 3)
    g_table = conv(w, w, 4) + 7 * c3 + conv(w, 3, 1)  # latent -> 4x4 conv, 3x3 convs, toRGB at 32x32
    d_table = (
        conv(3, w, 1) + 6 * c3 + conv(w + 1, w, 3) + conv(w, w, 4) + (w + 1)
    )  # fromRGB, convs, mbstd conv, 4x4 conv, dense
    assert (g_table, d_table) == (1_295_747, 1_297_153)
    extra_g = (16 * w - w) + 3 * conv(w, 3, 1)  # a bias per unit of the dense first layer; toRGB at 4, 8, 16
    assert nparams(m.G) == g_table + extra_g == 1_298_828
    assert nparams(m.D) == d_table + 3 * conv(3, w, 1) == 1_298_689  # fromRGB at 4, 8, 16
    c, t = cfg.model, cfg.train
    assert (c.latent_dim, c.channels, c.min_channels, c.mbstd_group) == (128, 128, 128, 16)
    kimg = lambda steps: steps * t.batch_size // 1000  # noqa: E731  (thousands of images)
    assert (kimg(c.stable_steps), kimg(c.fade_steps), kimg(t.steps)) == (400, 400, 20_000)
    source = PAPER["progan"]["paper"].source
    assert "section 6.5" in source and "6.4" not in source and "750" in source  # the penalty target genlab lacks


def test_pixelcnn_cifar10_preset_is_the_papers_layout():
    """7x7 mask A (3 -> 2h), 15 residual blocks (1x1 2h->h, 3x3 h->h, 1x1 h->2h), 1x1 2h->1024,
    1x1 1024->3*256; h = 128."""
    _, m = build("pixelcnn", "paper-cifar10")
    h = 128
    layout = (
        conv(3, 2 * h, 7)
        + 15 * (conv(2 * h, h, 1) + conv(h, h, 3) + conv(h, 2 * h, 1))
        + conv(2 * h, 1024, 1)
        + conv(1024, 3 * 256, 1)
    )
    assert nparams(m) == layout == 4_290_816


def test_vae_paper_preset_is_the_iwae_mlp():
    """IWAE's 784-200-200-50 tanh MLP (mean and log-variance heads, mirrored decoder), layer by layer."""
    mlp = (784 * 200 + 200 + 200 * 200 + 200 + 2 * (200 * 50 + 50)) + (
        50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
    )
    _, m = build("vae", "paper")
    assert mlp == 425_284 and nparams(m) == 425_284 and "425,284" in PAPER["vae"]["paper"].source
    linears = [(layer.in_features, layer.out_features) for layer in m.modules() if isinstance(layer, torch.nn.Linear)]
    assert linears == [(784, 200), (200, 200), (200, 100), (50, 200), (200, 200), (200, 784)]


def test_vae_paper_follows_the_iwae_code():
    """yburda/iwae: optimizers.Adam's beta_1 = 0.99 (kept by experiments.py), batch 20, lr 1e-3 at the start."""
    cfg = registry.build_run_config("vae", preset="paper")
    assert tuple(cfg.train.betas) == (0.99, 0.999) and (cfg.train.batch_size, cfg.train.lr) == (20, 1e-3)
    assert "yburda/iwae" in PAPER["vae"]["paper"].source
    iaf = PAPER["vae"]["paper-iaf"].source
    assert "section 6.1" in iaf and "section 5.1" not in iaf  # Kingma et al. 2016: MNIST is section 6.1


def test_ali_paper_follows_the_cifar10_experiment_script():
    """IshmaelBelghazi/ALI, experiments/ali_cifar10.py: Blocks' Adam(1e-4, beta1=0.5) with its default beta2 (0.001
    in Blocks' 1 - beta convention of 2016 = PyTorch's 0.999); dropout 0.2 on D(x)'s and D(z)'s inputs, 0.5 later."""
    cfg, m = build("ali", "paper")
    assert tuple(cfg.train.betas) == (0.5, 0.999) and (cfg.train.lr, cfg.train.batch_size) == (1e-4, 100)
    assert (cfg.model.input_dropout, cfg.model.dropout) == (0.2, 0.5)
    assert cfg.train.steps == 6475 * 45_000 // 100  # NUM_EPOCHS of the 45,000 training images in batches of 100
    rates = [d.p for d in m.D.modules() if isinstance(d, torch.nn.Dropout)]
    assert m.D.in_drop.p == 0.2 and rates.count(0.2) == 1 and set(rates) == {0.2, 0.5}
    assert "IshmaelBelghazi/ALI, experiments/ali_cifar10.py" in PAPER["ali"]["paper"].source
    assert registry.build_run_config("ali").model.input_dropout == 0.0  # the default D is unchanged


def test_ali_input_dropout_drops_entries_of_x_and_z_in_training_only():
    cfg = registry.build_run_config(
        "ali", overrides={"model.input_dropout": 0.5, "model.dropout": 0.0, "model.channels": 8, "model.hidden_dim": 16}
    )
    m = registry.entry("ali").model_class(cfg.model)
    seen = []
    m.D.x_body.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x, z = torch.ones(4, 1, 28, 28), torch.ones(4, cfg.model.latent_dim)
    m.D.train()
    m.D(x, [z])
    assert set(seen[-1].unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - p)
    m.D.eval()
    m.D(x, [z])
    assert torch.equal(seen[-1], x)


def test_lsgan_and_vqvae_paper_presets_follow_the_authors():
    cfg = registry.build_run_config("lsgan", preset="paper")
    assert (
        cfg.train.lr == 1e-3 and "xudonmao/LSGAN, train_lsun.py" in PAPER["lsgan"]["paper"].source
    )  # learning_rate 0.001
    vq = PAPER["vqvae"]["paper"].source
    # the paper gives K = 512 for ImageNet and DeepMind Lab, none for CIFAR-10; its experiments did not
    # use the EMA codebook
    assert "no K for CIFAR-10" in vq and "section 4.2" in vq and "not used" in vq and "only the EMA codebook" in vq


_REPO_PATH = re.compile(r"\b[\w.-]+/[\w.-]+, (branch [\w.-]+, )?[\w/.-]+\.(py|md|sh)\b")
_PAPER_PLACE = re.compile(r"\b(section \d+(\.\d+)*|Table \d+|appendix [A-Z](\.\d+)*|figure \d+)")


@pytest.mark.parametrize("model,preset", PRESETS)
def test_every_paper_preset_names_the_authors_file_or_the_papers_section(model, preset):
    source = PAPER[model][preset].source
    assert _REPO_PATH.search(source) or _PAPER_PLACE.search(source), source


def test_presets_checked_against_the_authors_code_name_its_file():
    for model, repo_path in [
        ("ali", "IshmaelBelghazi/ALI, experiments/ali_cifar10.py"),
        ("lsgan", "xudonmao/LSGAN, train_lsun.py"),
        ("dcgan", "Newmu/dcgan_code, faces/train_uncond_dcgan.py"),
        ("progan", "tkarras/progressive_growing_of_gans, branch original-theano-version, config.py"),
        ("vae", "yburda/iwae, experiments.py"),
    ]:
        assert repo_path in PAPER[model]["paper"].source and _REPO_PATH.search(PAPER[model]["paper"].source), model


def test_parameter_counts_quoted_in_sources_are_the_built_models():
    """Every 'Parameters' figure a source quotes for genlab's network is what the preset builds."""
    for model, preset, quoted in [
        ("cyclegan", "paper", ["11,378,179", "2,764,737"]),
        ("progan", "paper", ["1,298,828", "1,298,689"]),
        ("dcgan", "paper", ["12,689,155"]),
        ("pixelcnn", "paper-cifar10", ["4,290,816"]),
        ("glow", "paper", ["44,055,408"]),
        ("vqvae", "paper", ["5,467,862"]),
        ("ddpm", "paper", ["25,833,987"]),
    ]:  # ddpm: the paper's U-Net has 35.7 M (documented)
        _, m = build(model, preset)
        counts = {f"{nparams(c):,}" for c in m.children()} | {f"{nparams(m):,}"}
        assert set(quoted) <= counts, (model, quoted, counts)
        assert all(q in PAPER[model][preset].source for q in quoted)


def test_cli_lists_a_models_presets_with_sources(capsys):
    main(["models", "pixelcnn"])
    out = capsys.readouterr().out
    assert "paper-cifar10" in out and "Table 5" in out and "published: bits/dim 3.14" in out
    main(["models", "wavenet"])
    assert "fsdd (applied with --data fsdd)" in capsys.readouterr().out  # a data preset, applied automatically
    main(["models", "flow-matching"])
    assert "no presets" in capsys.readouterr().out


@pytest.mark.parametrize("model,preset", [(m, p) for m, ps in BUDGET.items() for p in ps])
def test_budget_presets_build_set_every_value_and_leave_the_defaults_alone(model, preset):
    p = registry.entry(model).presets[preset]
    assert not p.data  # applied only when named: `genlab train vae` keeps its defaults
    cfg, m = build(model, preset)
    sections = {"model": to_dict(cfg.model), "train": to_dict(cfg.train), "data": to_dict(cfg.data)}
    for key, value in p.values.items():
        section, name = key.split(".", 1)
        assert sections[section][name] == (list(value) if isinstance(value, tuple) else value), key
    assert "benchmarks/" in p.source and nparams(m) > 0
    # the schedule the benchmark reached, capped at 10 CPU-minutes
    assert (cfg.train.lr_schedule, cfg.train.schedule_steps, cfg.train.max_seconds, cfg.train.budget_clock) == (
        "cosine",
        cfg.train.steps,
        600.0,
        "cpu",
    )
    default = registry.build_run_config(model, data="mnist")  # (mnist-5k brings the vae quick start's own data preset)
    assert default.model.decoder in ("upsample", "conv") and default.train.ema_decay == 0.0


@pytest.mark.parametrize("model,preset", [("pixelcnn", "mnist-cpu"), ("transformer", "mnist-cpu"), ("ali", "alice")])
def test_cpu_presets_build_and_set_their_values(model, preset):
    p = registry.entry(model).presets[preset]
    cfg = registry.build_run_config(model, preset=preset)
    sections = {"model": to_dict(cfg.model), "train": to_dict(cfg.train), "data": to_dict(cfg.data)}
    for key, value in p.values.items():
        section, name = key.split(".", 1)
        assert sections[section][name] == (list(value) if isinstance(value, tuple) else value), key
    assert "benchmarks/" in p.source  # where the values were chosen
    assert nparams(registry.entry(model).model_class(cfg.model)) > 0


def test_pixelcnn_benchmark_settings_flags_over_preset_over_defaults():
    import importlib.util
    import sys
    from pathlib import Path

    bench_dir = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench_dir))  # the script imports harness
    spec = importlib.util.spec_from_file_location("bench_pixelcnn", bench_dir / "pixelcnn_mnist.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ap = bench.build_parser()
    plain = bench.settings(ap.parse_args([]))
    assert plain["train.batch_size"] == 128 and plain["train.ema_decay"] == 0.0
    preset = bench.settings(ap.parse_args(["--preset", "mnist-cpu"]))
    assert preset["train.batch_size"] == 64 and preset["train.ema_decay"] == 0.999
    flagged = bench.settings(ap.parse_args(["--preset", "mnist-cpu", "--batch-size", "32", "--betas", "0.9", "0.99"]))
    assert flagged["train.batch_size"] == 32 and flagged["train.betas"] == (0.9, 0.99) and flagged["train.lr"] == 2e-3
