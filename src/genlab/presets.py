"""Presets: named config values that belong together, and the papers' settings.

A :class:`Preset` is a set of ``"section.field" -> value`` pairs with the place they
come from. The registry (:mod:`genlab.registry`) keeps each model's presets in its
entry; ``genlab train MODEL --preset NAME`` applies one, ``genlab models MODEL`` lists
them with their sources and published results (:func:`describe`).

:data:`PAPER` holds, per model, the ``paper`` preset (and ``paper-<variant>`` where the
paper reports a second setting): the architecture and schedule of the paper as far as
genlab's model expresses them. Every source text says which table or section it
follows and what the paper uses that genlab does not have; nothing is approximated
without saying so. A preset that names ``data.name`` trains on the paper's data set
unless the user names another one (``--data``). :class:`Published` results sit next to
the preset they belong to, so ``benchmarks/reproduce.py`` prints them beside its own.
These presets have been built and counted on a CPU; none has been trained to the end
of its schedule, and none has run on a GPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Published:
    """A result printed in a paper: ``metric`` ("test NLL nats", "bits/dim", "inception
    score", ...), its ``value``, the ``source`` (paper, table, row) and a ``note`` on how
    comparable genlab's own measurement is (data, estimator, feature network)."""

    metric: str
    value: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Preset:
    """Config values that belong together, e.g. the settings of a paper or of a benchmark.

    ``values``: ``"section.field" -> value`` (e.g. ``{"train.lr": 1e-3}``); ``source``: where
    they come from (a paper's section or table, a benchmark script and its result);
    ``data``: data set names the preset is applied to automatically (before a preset the
    user names and before the user's overrides); ``published``: the paper's results for
    this setting.
    """

    values: Mapping[str, Any]
    source: str
    data: tuple[str, ...] = ()
    published: tuple[Published, ...] = ()


def describe(presets: Mapping[str, Preset]) -> str:
    """Presets as text, one block each: name, source, values, published results."""
    blocks = []
    for name, p in presets.items():
        lines = [
            name + (f" (applied with --data {', '.join(p.data)})" if p.data else ""),
            f"  source: {p.source}",
            "  values: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in p.values.items()),
        ]
        lines += [
            f"  published: {r.metric} {r.value:g} ({r.source}{'; ' + r.note if r.note else ''})" for r in p.published
        ]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


_ADAM_GAN = {"train.lr": 2e-4, "train.betas": (0.5, 0.999)}
# Pixel RNN paper, section 3.5 / figure 5: 7x7 mask A, 15 residual blocks of 2h = 256 maps, 1x1 output layers of 1024.
_PIXELCNN_15 = {
    "model.hidden_channels": 256,
    "model.num_blocks": 15,
    "model.input_kernel": 7,
    "model.block_kernel": 3,
    "model.output_channels": 1024,
}

#: The papers' settings, by registry name, then preset name.
PAPER: dict[str, dict[str, Preset]] = {
    "vae": {
        "paper": Preset(
            {
                "data.name": "mnist",
                "model.image_shape": (1, 28, 28),
                "model.likelihood": "bernoulli",
                "model.latent_dim": 50,
                "model.encoder": "mlp",
                "model.decoder": "mlp",
                "model.mlp_hidden": (200, 200),
                "model.activation": "tanh",
                "train.batch_size": 20,
                "train.lr": 1e-3,
                "train.betas": (0.99, 0.999),
                "train.steps": 9_840_000,
            },
            source=(
                "yburda/iwae, experiments.py, optimizers.py and datasets.py (the authors' code; Burda, Grosse & "
                "Salakhutdinov 2016 (IWAE), section 5 and appendix C): the one-stochastic-layer MNIST model "
                "(784-200-200-50 tanh MLP, mirrored decoder), MNIST binarised afresh at every use "
                "(dynamic binarisation, datasets.py and the paper's footnote 2; the fixed binarisation is its "
                "appendix D), batch 20, 3,280 passes (= 9,840,000 steps; the code trains on 59,600 images), "
                "Adam betas (0.99, 0.999): optimizers.py's "
                "defaults, which experiments.py keeps (the paper's text says beta1 0.9). Parameters: 425,284, the "
                "paper's layers exactly. Not in genlab: the learning-rate schedule 1e-3 * 10^(-i/7) for 3^i passes, "
                "i = 0..7 (genlab: constant 1e-3, the first stage's rate); Adam's epsilon 1e-4 and second moments "
                "started at 1 (genlab: PyTorch's 1e-8 and 0). The IWAE-trained rows: add model.train_iw_samples=50."
            ),
            published=(
                Published(
                    "test NLL nats",
                    86.76,
                    "Burda et al. 2016, Table 1, MNIST, 1 stochastic layer, VAE k=1",
                    "paper: k = 5000 importance samples on the 10,000 test digits",
                ),
                Published(
                    "test NLL nats",
                    84.78,
                    "Burda et al. 2016, Table 1, MNIST, 1 stochastic layer, IWAE k=50",
                    "trained with the k=50 IWAE bound (genlab: model.train_iw_samples=50)",
                ),
            ),
        ),
        "paper-iaf": Preset(
            {
                "data.name": "mnist",
                "model.image_shape": (1, 28, 28),
                "model.likelihood": "bernoulli",
                "model.posterior": "iaf",
                "model.latent_dim": 32,
                "model.iaf_steps": 2,
                "model.iaf_hidden_dim": 320,
            },
            source=(
                "Kingma et al. 2016 (IAF), section 6.1 and Table 1, MNIST row 'IAF (Depth = 2, Width = 320)': two IAF "
                "steps whose autoregressive networks have 320 hidden units, 32 latent units, dynamically binarised "
                "MNIST (Table 1; the statically binarised figure of section 6.1 is for the deepest IAF). Not "
                "expressible in genlab's VAE: the paper's ResNet encoder/decoder (genlab: plain stride-2 conv stages), "
                "its Adamax optimiser and schedule (genlab: Adam with its defaults), data-dependent initialisation and "
                "weight normalisation, and for CIFAR-10 the bidirectional hierarchy of latent maps (genlab has one "
                "latent vector, so no CIFAR-10 preset)."
            ),
            published=(
                Published(
                    "test NLL nats",
                    79.77,
                    "Kingma et al. 2016, Table 1, MNIST, IAF (Depth = 2, Width = 320), log p(x)",
                    "the same row's variational bound: 82.02 nats",
                ),
                Published(
                    "test NLL nats", 81.08, "Kingma et al. 2016, Table 1, MNIST, diagonal covariance (no IAF), log p(x)"
                ),
            ),
        ),
    },
    "pixelcnn": {
        "paper": Preset(
            {"data.name": "mnist", "model.image_shape": (1, 28, 28), "model.likelihood": "bernoulli", **_PIXELCNN_15},
            source=(
                "van den Oord, Kalchbrenner & Kavukcuoglu 2016a (Pixel RNN), section 3.5, figure 5 and Table 4 "
                "(binarised MNIST): a 7x7 mask-A convolution, 15 residual blocks (1x1 2h->h, 3x3 mask B, 1x1 h->2h, "
                "h = 128), two 1x1 output layers (1024 units), a sigmoid per pixel. The paper "
                "states the depth and width for its CIFAR-10 models; this preset uses the same "
                "network on binarised MNIST. Not in genlab: the "
                "paper's RMSProp optimiser (genlab: Adam)."
            ),
            published=(
                Published("test NLL nats", 81.30, "van den Oord et al. 2016a, Table 4, binarised MNIST, PixelCNN"),
            ),
        ),
        "paper-cifar10": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.likelihood": "categorical",
                "model.grey_levels": 256,
                **_PIXELCNN_15,
            },
            source=(
                "van den Oord et al. 2016a (Pixel RNN), sections 3.4-3.5 and 5, Table 5 (CIFAR-10): the network of "
                "'paper' with R->G->B channel masks and a 256-way softmax per sub-pixel. Not in genlab: RMSProp "
                "(genlab: Adam). ../shared/data holds CIFAR-10's test split only, as JPEGs: train on a machine that "
                "can download CIFAR-10. Parameters: 4,290,816, the paper's layers exactly."
            ),
            published=(Published("bits/dim", 3.14, "van den Oord et al. 2016a, Table 5, CIFAR-10 test, PixelCNN"),),
        ),
    },
    "gated-pixelcnn": {
        "paper": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.likelihood": "categorical",
                "model.grey_levels": 256,
                "model.hidden_channels": 384,
                "model.num_blocks": 20,
                "model.input_kernel": 5,
                "model.block_kernel": 5,
                "model.output_channels": 384,
            },
            source=(
                "van den Oord et al. 2016b (Conditional PixelCNN), section 3.1 and Table 1 (CIFAR-10): 20 gated layers "
                "of 384 feature maps, 5x5 filters, a 256-way softmax per sub-pixel. The paper gives no output-head "
                "width: genlab's 1x1 head is 384 wide here. The paper reports no MNIST setting. Not in genlab: its "
                "32-GPU synchronous training schedule (genlab: Adam with its defaults)."
            ),
            published=(
                Published("bits/dim", 3.03, "van den Oord et al. 2016b, Table 1, CIFAR-10 test, Gated PixelCNN"),
            ),
        ),
    },
    "pixelvae": {
        "paper": Preset(
            {
                "data.name": "mnist",
                "model.image_shape": (1, 28, 28),
                "model.likelihood": "bernoulli",
                "model.latent_levels": 1,
            },
            source=(
                "Gulrajani et al. 2017 (PixelVAE), section 4.1 and Table 1 (binarised MNIST): one latent level and a "
                "PixelCNN decoder of a few masked layers conditioned on z. Not in genlab: the paper's MNIST layer "
                "sizes (genlab's defaults are kept), its gated masked layers, and its hierarchical LSUN / ImageNet "
                "64x64 models (genlab's 2-level model is sized for 28x28)."
            ),
            published=(
                Published(
                    "test NLL nats",
                    80.64,
                    "Gulrajani et al. 2017, Table 1, binarised MNIST, PixelVAE (an upper bound)",
                    "the gated variant without upsampling: <= 79.66, about 79.02 with 1,000 importance samples",
                ),
            ),
        ),
    },
    "dcgan": {
        "paper": Preset(
            {
                "data.name": "celeba",
                "model.image_shape": (3, 64, 64),
                "model.latent_dim": 100,
                "model.channels": 128,
                "model.upsample": "transposed",
                "model.g_batchnorm": True,
                "model.d_batchnorm": True,
                "model.objective": "non-saturating",
                "train.batch_size": 128,
                "train.weight_decay": 1e-5,
                "train.steps": 34_180,
                **_ADAM_GAN,
            },
            source=(
                "Newmu/dcgan_code, faces/train_uncond_dcgan.py (the authors' code; Radford, Metz & Chintala 2016 "
                "(DCGAN), section 4 and figure 1): 100-d z projected to 4x4x1024 with batch norm per unit "
                "(as genlab's), transposed stride-2 convolutions 512-256-128-3 to 64x64 (ngf 128), D "
                "128-256-512-1024 (ndf 128), ReLU/tanh in G, LeakyReLU 0.2 in D, weights N(0, 0.02), Adam lr 2e-4, "
                "beta1 0.5, L2 weight decay 1e-5, batch 128, 25 epochs of 350,000 faces with G and D updated on "
                "alternate batches (about 34,180 updates of each). "
                "Not in genlab: the code's and figure 1's 5x5 kernels (genlab's DCGAN has no kernel-size setting: "
                "4x4 stride-2 layers); z uniform in [-1, 1] (genlab: normal); convolutions without biases (genlab's "
                "last layer of G has 3); the paper's data (LSUN bedrooms, Imagenet-1k, its own web-scraped faces): "
                "CelebA 64x64 instead. Parameters of G: 12,689,155 (the code's layers with 4x4 kernels, plus 3 "
                "biases); the code's G with its 5x5 kernels: 18,885,760."
            ),
        ),
    },
    "lsgan": {
        "paper": Preset(
            {
                "data.name": "celeba",
                "model.image_shape": (3, 64, 64),
                "model.latent_dim": 1024,
                "model.channels": 64,
                "model.objective": "least-squares",
                "train.batch_size": 64,
                "train.lr": 1e-3,
                "train.betas": (0.5, 0.999),
                "train.steps": 1_000_000,
            },
            source=(
                "xudonmao/LSGAN, train_lsun.py and vgg.py (the authors' code for the LSUN scenes; Mao et al. 2017 "
                "(LSGAN), section 3.2 with a = 0, b = c = 1, and figure 3): 1024-d z, batch norm, D widths "
                "64-128-256-512, Adam lr 1e-3 (train_lsun.py's learning_rate; train_chn.py, the "
                "Chinese-characters model, uses 2e-4), "
                "beta1 0.5, batch 64, D then G on every batch, max_steps 1,000,000. Not expressible in genlab's "
                "DCGAN-shaped networks: the 112x112 LSUN network (vgg.py; G: 3x3 transposed convolutions alternating "
                "strides 2 and 1, 256 maps at 7x7; D: 5x5 stride-2 convolutions, ops.py): genlab uses DCGAN's 4x4 "
                "stride-2 layers; z uniform in [-1, 1] (genlab: normal); LSUN (CelebA 64x64 instead)."
            ),
        ),
    },
    "ali": {
        "paper": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.latent_dim": 64,
                "model.encoder": "stochastic",
                "model.dropout": 0.5,
                "model.input_dropout": 0.2,
                "train.batch_size": 100,
                "train.lr": 1e-4,
                "train.betas": (0.5, 0.999),
                "train.steps": 2_913_750,
            },
            source=(
                "IshmaelBelghazi/ALI, experiments/ali_cifar10.py (the authors' code; Dumoulin et al. 2017 (ALI), "
                "appendix A, CIFAR-10 table): 64-d z, stochastic encoder, batch 100, Adam lr 1e-4, beta1 0.5, dropout "
                "0.2 on the inputs of the first layers of D(x) and D(z) (model.input_dropout) and 0.5 on D's later "
                "layers (model.dropout), 6,475 epochs of the 45,000 training images of ali/streams.py (2,913,750 "
                "steps). The table's 'beta2 = 1e-3' is in the convention of Blocks' Adam of 2016 (mila-iqia/blocks, "
                "blocks/algorithms/__init__.py before commit aa06451: decay rates as 1 - beta, defaults 0.1 and "
                "0.001), which the script leaves at its default: beta2 0.999 in PyTorch's convention. Not expressible "
                "in genlab's ALI: the paper's layer table (stride-1 and stride-2 convolutions of other widths, maxout "
                "units in D, leaky slope 0.1, a sigmoid output, weights N(0, 0.01)) and the 0.5 dropout between D(x)'s "
                "convolutions (genlab drops the image features after its conv body, and after each hidden layer of "
                "the z and joint MLPs); genlab keeps its DCGAN-shaped networks. The paper reports no sample-quality "
                "metric for CIFAR-10."
            ),
        ),
    },
    "cyclegan": {
        "paper": Preset(
            {
                "model.image_shape": (6, 256, 256),
                "model.g_channels": 64,
                "model.g_downsamplings": 2,
                "model.g_blocks": 9,
                "model.d_channels": 64,
                "model.d_downsamplings": 3,
                "model.objective": "least-squares",
                "model.lambda_cyc": 10.0,
                "model.lambda_id": 0.0,
                "train.batch_size": 1,
                "train.lr": 2e-4,
                "train.betas": (0.5, 0.999),
                "train.steps": 266_800,
            },
            source=(
                "Zhu et al. 2017 (CycleGAN), section 4 and appendix 7.1-7.2: generator c7s1-64, d128, d256, 9 x R256, "
                "u128, u64, c7s1-3 at 256x256; 70x70 PatchGAN (C64-C128-C256-C512); least squares; lambda = 10; Adam "
                "lr 2e-4, beta1 0.5, batch 1; 200 epochs of horse2zebra's larger domain (1,334 images) = "
                "266,800 steps. Not in genlab: the data "
                "(give it with --data unpaired:folder:<A>,folder:<B>); the history of 50 "
                "generated images; the linear decay of the rate to 0 over the last 100 epochs (genlab: constant, or "
                "train.lr_schedule=cosine). The paper reports FCN scores and AMT studies, not FID. Parameters: G and F "
                "11,378,179 each, D_A and D_B 2,764,737 each: the appendix's layers exactly."
            ),
        ),
    },
    "progan": {
        "paper": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.latent_dim": 128,
                "model.channels": 128,
                "model.min_channels": 128,
                "model.objective": "wgan-gp",
                "model.gp_weight": 10.0,
                "model.drift": 0.001,
                "model.mbstd_group": 16,
                "model.stable_steps": 25_000,
                "model.fade_steps": 25_000,
                "train.batch_size": 16,
                "train.lr": 1e-3,
                "train.betas": (0.0, 0.99),
                "train.steps": 1_250_000,
            },
            source=(
                "tkarras/progressive_growing_of_gans, branch original-theano-version, config.py, the block 'Section "
                "6.5: CIFAR10 inception scores' (Karras et al. 2018 (ProGAN), section 6.5; appendix A.1 for the "
                "layers): 128-d latent (latent_size), 128 feature maps at every resolution "
                "(fmap_base 4096, fmap_max 128), WGAN-GP (lambda 10, drift 0.001), minibatch stddev over the whole "
                "minibatch of 16 (mbstat_avg 'all'), equalized learning rate, pixel norm, Adam lr 1e-3, betas "
                "(0, 0.99), batch 16, 400k images per stabilisation and per fade-in "
                "(lod_training_kimg = lod_transition_kimg = 400: 25,000 steps each), 20,000k images in all "
                "(total_kimg: 1,250,000 steps), no learning-rate ramp-up, no mirroring. Not in genlab: the "
                "gradient-penalty target 750 (iwass_target; the penalty is lambda (|grad| - 750)^2 / 750^2, genlab's "
                "target is 1); G and D updated in one function (separate_funcs False; genlab: D, then G); the base "
                "config's generator EMA 0.999 (set train.ema_decay=0.999 for it). The paper's CIFAR-10 figure is an "
                "inception score, which genlab does not compute. Parameters: G 1,298,828 and D 1,298,689; the config's "
                "layers up to 32x32 at 128 maps: 1,295,747 and 1,297,153 (genlab keeps a toRGB / fromRGB layer per "
                "resolution and a bias per unit of G's first dense layer)."
            ),
            published=(
                Published(
                    "inception score",
                    8.80,
                    "Karras et al. 2018, section 6.5, unsupervised CIFAR-10",
                    "not comparable with genlab's FID/KID",
                ),
            ),
        ),
    },
    "glow": {
        "paper": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.num_scales": 3,
                "model.steps_per_scale": 32,
                "model.hidden_channels": 512,
                "model.invertible_conv": True,
                "train.lr": 1e-3,
            },
            source=(
                "Kingma & Dhariwal 2018 (Glow), section 5 and Table 2 (CIFAR-10): L = 3 levels of K = 32 steps "
                "(actnorm, invertible 1x1 convolution, affine coupling), coupling networks 512 wide, learned prior, "
                "Adam lr 1e-3. Not in genlab: the paper's multi-GPU batch and its learning-rate warm-up (genlab: "
                "train.warmup_steps, unset). Parameters: 44,055,408."
            ),
            published=(Published("bits/dim", 3.35, "Kingma & Dhariwal 2018, Table 2, CIFAR-10 test, Glow"),),
        ),
    },
    "vqvae": {
        "paper": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.hidden_channels": 256,
                "model.downsamplings": 2,
                "model.residual_blocks": 2,
                "model.num_codes": 512,
                "model.beta": 0.25,
                "model.ema_decay": 0.99,
                "train.lr": 2e-4,
                "train.batch_size": 128,
                "train.steps": 250_000,
            },
            source=(
                "van den Oord, Vinyals & Kavukcuoglu 2017 (VQ-VAE), section 4.1 (CIFAR-10) and section 3.2: two "
                "stride-2 4x4 convolutions and two 3x3 residual blocks of 256 units (an 8x8 code map), beta 0.25, Adam "
                "lr 2e-4, batch 128, 250,000 steps. The paper gives no K for CIFAR-10: section "
                "3.2's '8 x 8 x 10' counts its discrete latents (an 8x8 field of 10 latents each), "
                "and K = 512 is its ImageNet and DeepMind Lab "
                "value (section 4.2), kept here. Not in genlab: the codebook learned by the loss term "
                "|sg[z_e] - e|^2, as in the paper's experiments (section 3.2: the moving-average update of appendix "
                "A.1 was not used for them); genlab's VQ-VAE has only the EMA codebook (decay 0.99, appendix A.1) and "
                "one code per position; the paper's separately trained PixelCNN prior (genlab trains its own 4-block "
                "prior as the run's second stage); the code length d (none given for CIFAR-10) is left at genlab's 16. "
                "Parameters: 5,467,862."
            ),
            published=(
                Published(
                    "bits/dim",
                    4.67,
                    "van den Oord et al. 2017, section 4.1, CIFAR-10 test, VQ-VAE",
                    "the same section: a continuous VAE 4.51, VIMCO 5.14",
                ),
            ),
        ),
    },
    "ddpm": {
        "paper": Preset(
            {
                "data.name": "cifar10",
                "model.image_shape": (3, 32, 32),
                "model.timesteps": 1000,
                "model.schedule": "linear",
                "model.loss": "simple",
                "model.channels": 128,
                "model.channel_mult": (1, 2, 2, 2),
                "model.num_blocks": 2,
                "model.attention_resolutions": (16,),
                "model.groups": 32,
                "model.dropout": 0.1,
                "train.lr": 2e-4,
                "train.batch_size": 128,
                "train.steps": 800_000,
                "train.ema_decay": 0.9999,
            },
            source=(
                "Ho, Jain & Abbeel 2020 (DDPM), section 4 and appendix B (CIFAR-10): T = 1000, linear betas 1e-4 to "
                "0.02, L_simple, U-Net of 128 channels with multipliers (1, 2, 2, 2), 2 residual blocks per "
                "resolution, self-attention at 16x16, group norm, dropout 0.1, Adam lr 2e-4, batch 128, 800k steps, "
                "EMA 0.9999, gradients clipped to norm 1 (the registry entry's training default). Not in genlab: "
                "random horizontal flips; the paper's 5,000-step learning-rate warm-up (set train.warmup_steps=5000). "
                "Parameters: 35.7 M in the paper, 25,833,987 in genlab's U-Net "
                "with these settings (its residual blocks and attention differ in detail)."
            ),
            published=(
                Published(
                    "FID",
                    3.17,
                    "Ho et al. 2020, Table 1, CIFAR-10, unconditional",
                    "Inception FID on 50,000 samples; genlab's FID uses its own CIFAR-10 features",
                ),
                Published("bits/dim", 3.75, "Ho et al. 2020, Table 1, CIFAR-10 test NLL bound of the L_simple model"),
            ),
        ),
    },
}


# The latent-variable models sized for 10 CPU-minutes on binarised MNIST (issue #12, part 2): fully
# connected encoder and decoder, whose cheap decoder also makes the IWAE k = 1000 evaluation affordable.
def _budget(steps: int) -> dict:
    """A cosine schedule of ``steps`` (what 10 CPU-minutes gave on the benchmark's host) capped at 10 CPU-minutes."""
    return {
        "train.steps": steps,
        "train.lr_schedule": "cosine",
        "train.schedule_steps": steps,
        "train.max_seconds": 600.0,
        "train.budget_clock": "cpu",
    }


_MNIST_BINARY = {"data.name": "mnist", "model.image_shape": (1, 28, 28), "model.likelihood": "bernoulli"}
_VAE_10MIN = {
    **_MNIST_BINARY,
    "model.encoder": "mlp",
    "model.decoder": "mlp",
    "model.mlp_hidden": (512, 512),
    "model.latent_dim": 32,
    "train.batch_size": 128,
    "train.lr": 2e-3,
    "train.warmup_steps": 100,
    "train.ema_decay": 0.999,
}
#: mnist-10min on a CPU with bfloat16 instructions: autocast, batches of 1024, Adam 3e-3
_BF16 = {"train.amp": True, "train.batch_size": 1024, "train.lr": 3e-3}
#: the IAF posterior of the budget presets: 2 steps, AR-NN 256x2, context 64
_IAF = {"model.posterior": "iaf", "model.iaf_steps": 2, "model.iaf_hidden_dim": 256, "model.iaf_context": 64}
_AND_BUDGET = (
    "The benchmark fits the cosine schedule to the budget while it runs; this preset's schedule is the length it "
    "reached there, capped at 10 CPU-minutes (train.max_seconds, train.budget_clock=cpu)."
)

#: ``genlab train vae`` on its default data (the quick start): the fully connected networks of
#: mnist-10min (about 5x faster per image than the conv networks on a CPU, so 2.5x the steps in
#: half the time), with an EMA whose horizon (200 steps) is short against the run.
VAE_QUICKSTART = Preset(
    {
        "model.encoder": "mlp",
        "model.decoder": "mlp",
        "model.mlp_hidden": (512, 512),
        "train.lr": 2e-3,
        "train.warmup_steps": 100,
        "train.ema_decay": 0.995,
        "train.steps": 5000,
    },
    data=("mnist-5k",),
    source=(
        "measured for the quick start on an AMD EPYC (no AVX512-BF16/AMX), 1 thread each, batch 128, test NLL by "
        "IWAE k=100 on the 500 mnist-5k test images (benchmarks/README.md, 'Quick-start runs'): these MLPs, 5,000 "
        "steps: 96.5 nats in 114 CPU-s (a cosine schedule: 96.1); the conv networks at equal CPU "
        "(1,000 steps, 112 CPU-s): 96.3; the conv networks' 2,000 steps, the default before: 93.7 in 236 CPU-s "
        "(4 to 6 minutes of wall clock on 2 cores); these MLPs with "
        "2,000 steps: 98.3 (102.5 without the EMA)"
    ),
)


#: Presets sized for a budget of CPU minutes, by registry name, then preset name.
BUDGET: dict[str, dict[str, Preset]] = {
    "vae": {
        "mnist-10min": Preset(
            {**_VAE_10MIN, **_budget(23_000)},
            source=(
                "benchmarks/vae_mnist.py --preset mnist-10min --minutes 10 --clock cpu --threads 1: 784-512-512-32 "
                "MLPs (ELU), Adam 2e-3, EMA 0.999; test NLL 87.73 nats (IWAE k=1000, all 10,000 test images, dynamic "
                "binarisation) after 10.1 CPU-minutes, 23,047 steps (49 epochs). The MLPs won 90-CPU-second probes "
                "against the conv networks (benchmarks/README.md, 'VAE on MNIST'). " + _AND_BUDGET
            ),
        ),
        "mnist-10min-bf16": Preset(
            {**_VAE_10MIN, **_budget(18_300), **_BF16},
            source=(
                "benchmarks/vae_mnist.py --preset mnist-10min-bf16 --minutes 10 --clock cpu --threads 1, for CPUs "
                "with bfloat16 instructions (AVX512-BF16, AMX; elsewhere autocast is emulated and slower): "
                "mnist-10min with bfloat16 autocast, batch 1024, Adam 3e-3; test NLL 85.52 nats "
                "(IWAE k=1000, all 10,000 test images) after 10.0 CPU-minutes, 18,343 steps "
                "(313 epochs, 31,000 images per CPU-second on an Intel Xeon with AMX). " + _AND_BUDGET
            ),
        ),
        "mnist-10min-iaf-bf16": Preset(
            {**_VAE_10MIN, **_budget(11_500), **_BF16, **_IAF},
            source=(
                "benchmarks/vae_iaf_mnist.py --preset mnist-10min --posteriors iaf --minutes 10 --clock cpu "
                "--threads 1 --set train.amp=true --set train.batch_size=1024 --set train.lr=3e-3, for CPUs "
                "with bfloat16 instructions: mnist-10min-bf16 with a 2-step IAF posterior "
                "(AR-NN 256x2, context 64); test NLL 84.70 nats (IWAE k=1000, all test images), -ELBO 87.34, "
                "after 10.0 CPU-minutes, 11,500 steps (196 epochs). " + _AND_BUDGET
            ),
        ),
        "mnist-10min-iaf": Preset(
            {**_VAE_10MIN, **_budget(17_000), **_IAF},
            source=(
                "benchmarks/vae_iaf_mnist.py --preset mnist-10min --posteriors iaf --minutes 10 --clock "
                "cpu --threads 1: mnist-10min with a 2-step IAF posterior (AR-NN 256x2, context 64); "
                "test NLL 87.82 nats (IWAE k=1000, all test images), -ELBO 90.81, after 10.1 "
                "CPU-minutes, 16,967 steps (36 epochs). " + _AND_BUDGET
            ),
        ),
    },
    "pixelvae": {
        "mnist-10min": Preset(
            {
                **_MNIST_BINARY,
                "model.latent_levels": 1,
                "model.decoder": "mlp",
                "model.mlp_hidden": (512, 512),
                "train.batch_size": 128,
                "train.lr": 2e-3,
                "train.warmup_steps": 20,
                **_budget(2_900),
            },
            source=(
                "benchmarks/pixelvae_mnist.py --preset mnist-10min --minutes 10 --clock cpu --threads 1: the z -> map "
                "network as 512-512 MLPs (model.decoder=mlp), which beat the upsampling stages in 90-CPU-second probes "
                "(benchmarks/README.md, 'PixelVAE on MNIST'); test NLL 84.15 nats (IWAE k=20, all 10,000 test images), "
                "-ELBO 85.05, after 10.1 CPU-minutes, 2,941 steps (6.3 epochs). " + _AND_BUDGET
            ),
        ),
    },
}
