"""Transformer (Image GPT): a decoder-only causal transformer over the pixels in raster order.

Chen, Radford, Child, Wu, Jun, Luan and Sutskever (2020), "Generative Pretraining from
Pixels", section 2.1 (the autoregressive objective) and 2.3 (the GPT-2 architecture).
An image is a sequence of tokens s_1 .. s_T and the model is exact:

    log p(x) = sum_{i=1..T} log p(s_i | s_<i)                                  (iGPT eq. 1)

* Tokens: one per pixel and channel, T = C*H*W, in PixelCNN's order (genlab.nn.autoregressive):
  rows top to bottom, columns left to right, channels R -> G -> B inside a pixel, so
  token t is channel t % C of pixel (t // C) // W, (t // C) % W. A token takes V values:
  V = 2 for binarised data (``likelihood="bernoulli"``, dynamically binarised by
  :meth:`prepare`, one logit per token), V = ``grey_levels`` (256 for 8-bit data) otherwise
  (``"categorical"``, a V-way softmax per token). Image GPT's 9-bit colour palette is not
  used: colour images are C tokens per pixel.
* Input: the sequence shifted right by one, [s_0, s_1, .., s_{T-1}], where s_0 is a learned
  start token, or the class token of the label when ``num_classes`` > 0 (class
  conditioning by a prefix token, so p(x | y) = prod_i p(s_i | y, s_<i)). Each input is a
  learned token embedding plus a learned position embedding: h_0 = W_e[s] + W_p, (B, T, d).
* ``num_blocks`` pre-norm blocks (GPT-2):

      a   = h + Attention(LayerNorm(h))      Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + M) V
      h'  = a + MLP(LayerNorm(a))           MLP(u) = W_2 GELU(W_1 u + b_1) + b_2, width 4d

  with ``num_heads`` heads of d_head = d/heads each, M = -inf above the diagonal (position t
  sees positions <= t, i.e. the prefix and tokens < t). Then a final LayerNorm and a linear
  head give the parameters of p(s_t | s_<t) at every position t: (B, T, P), P = 1 or V.

Sampling draws one token at a time with a key/value cache: every block keeps the keys and
values of the positions already computed, so a new token costs one position of network work
and attention over the t cached positions (O(T) per token, O(T^2) per image, instead of
one whole-sequence pass per token, O(T^3)). ``method="naive"`` runs the whole sequence once
per token, as the reference. Shapes: x (B, C, H, W) in the input space ({0, 1} for
Bernoulli, the grid {0, 1/(V-1), .., 1} otherwise) -> parameters (B, C*P, H, W), the
layout of :class:`genlab.nn.autoregressive.OutputHead`; log p(x) in nats per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.autoregressive import OutputHead
from ..presets import Preset
from .autoregressive import AutoregressiveImageModel
from .base import GenerativeModel

LIKELIHOODS = ("auto", "bernoulli", "categorical")
MLP_RATIO = 4  # the MLP's hidden width is 4 d (GPT-2, Image GPT)

#: Training defaults of the registry entry: Adam with Image GPT's beta2 = 0.95, a linear warm-up and
#: gradient clipping at norm 1 (GPT-2 practice), batch 64 as the PixelCNN's CPU preset. Not tuned by measurement.
TRAIN_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.95), "warmup_steps": 100, "grad_clip": 1.0, "batch_size": 64}


@dataclass
class TransformerConfig(ModelConfig):
    """``likelihood``: "auto" (Bernoulli for 1 channel, categorical otherwise), "bernoulli" (2
    tokens per value, binarised data) or "categorical" (``grey_levels`` tokens). ``d_model``:
    the width of the residual stream, split into ``num_heads`` heads; ``num_blocks``
    transformer blocks; ``dropout`` on the embeddings, the attention weights and every
    residual branch (0 disables). ``num_classes`` > 0: the first token is the class label."""

    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W): T = C*H*W tokens
    likelihood: str = "auto"
    grey_levels: int = 256  # V of "categorical"
    d_model: int = 64  # d
    num_blocks: int = 4
    num_heads: int = 4  # d_head = d / num_heads
    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        if len(self.image_shape) != 3:
            raise ConfigError(f"transformer needs images (C, H, W), got model.image_shape={tuple(self.image_shape)}")
        self.check_choice("likelihood", LIKELIHOODS)
        if self.grey_levels < 2:
            raise ConfigError(f"model.grey_levels must be >= 2 (256 for 8-bit images), got {self.grey_levels}")
        self.check_positive("d_model", "num_blocks", "num_heads")
        if self.d_model % self.num_heads:
            raise ConfigError(
                f"model.d_model ({self.d_model}) must be a multiple of model.num_heads ({self.num_heads}): "
                f"each head gets d_model / num_heads dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1) (0 disables), got {self.dropout}")


#: The presets of ``genlab train transformer --preset NAME``.
PRESETS: dict[str, Preset] = {
    # A CPU-budget preset: PixelCNN's mnist-cpu budget (30 CPU-minutes of one thread), the network halved in depth.
    "mnist-cpu": Preset(
        {
            "data.name": "mnist",
            "model.image_shape": (1, 28, 28),
            "model.likelihood": "bernoulli",
            "model.num_blocks": 2,
            "train.batch_size": 32,
            "train.lr": 2e-3,
            "train.warmup_steps": 100,
            "train.lr_schedule": "cosine",
            "train.steps": 2_000,
            "train.schedule_steps": 2_000,
            "train.ema_decay": 0.995,
        },
        source=(
            "benchmarks/README.md, 'Transformer and latent priors on MNIST': for about 30 CPU-minutes of one thread, "
            "2 blocks of d = 64 (2,000 steps of 32 at about 36 images/s) reached 94.54 nats against 99.07 for the "
            "default 4 blocks (1,000 steps)"
        ),
    ),
}


@dataclass
class KVCache:
    """Keys and values of one attention layer at every position: k, v (B, heads, T, d_head)."""

    k: Tensor
    v: Tensor


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t attends to positions <= t. Shapes: (B, L, d) -> (B, L, d)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)  # W_Q, W_K, W_V of every head
        self.proj = nn.Linear(d_model, d_model)  # W_O
        self.drop = nn.Dropout(dropout)

    def forward(self, u: Tensor, cache: KVCache | None = None, t: int = 0) -> Tensor:
        """u (B, L, d). Without a cache: positions 0..L-1, masked causally. With a cache: u is the
        one position t (L = 1); its key and value are stored at t and it attends to positions 0..t."""
        b, n, d = u.shape
        q, k, v = self.qkv(u).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, heads, L, d_head)
        if cache is None:
            p = self.dropout if self.training else 0.0
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            if n != 1:
                raise ValueError(f"cached attention takes one position at a time, got {n}")
            cache.k[:, :, t : t + 1], cache.v[:, :, t : t + 1] = k, v
            a = F.scaled_dot_product_attention(q, cache.k[:, :, : t + 1], cache.v[:, :, : t + 1])  # all in its past
        return self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))


class Block(nn.Module):
    """Pre-norm block: h + Attention(LN(h)), then + MLP(LN(.)). Shapes: (B, L, d) -> (B, L, d)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, MLP_RATIO * d_model),
            nn.GELU(),
            nn.Linear(MLP_RATIO * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, h: Tensor, cache: KVCache | None = None, t: int = 0) -> Tensor:
        h = h + self.attn(self.norm1(h), cache, t)
        return h + self.mlp(self.norm2(h))


class Transformer(AutoregressiveImageModel):
    """Image GPT (see the module docstring). log_prob, train_steps, sample and complete come from
    :class:`AutoregressiveImageModel`; this class supplies the network and the token-by-token sampler."""

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        # GenerativeModel's __init__, not AutoregressiveImageModel's: that one reads a mixture count and
        # makes "auto" a logistic mixture for colour; here the head is over tokens (a logit or a softmax).
        GenerativeModel.__init__(self, config)
        c, h, w = config.image_shape
        self.likelihood = config.likelihood if config.likelihood != "auto" else "bernoulli" if c == 1 else "categorical"
        self.head = OutputHead(self.likelihood, config.grey_levels)
        self.input_mode = "binary" if self.likelihood == "bernoulli" else "unit"  # binarised, or the 8-bit grid
        self.vocab = 2 if self.likelihood == "bernoulli" else config.grey_levels  # V, values a token takes
        self.length = c * h * w  # T
        d = config.d_model
        self.token_embedding = nn.Embedding(self.vocab, d)  # W_e
        self.position_embedding = nn.Embedding(self.length, d)  # W_p
        self.prefix_embedding = nn.Embedding(max(config.num_classes, 1), d)  # s_0: the start token, or one per class
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(d, config.num_heads, config.dropout) for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, self.head.params_per_channel)  # P parameters of p(s_t | s_<t)
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2: residual branches scaled by 1/sqrt(2 num_blocks) at initialisation
            for layer in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * config.num_blocks))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------ tokens
    def tokens(self, x: Tensor) -> Tensor:
        """Values in the input space, any shape -> token indices 0..V-1 (long), same shape."""
        return torch.round(x * (self.vocab - 1)).long().clamp(0, self.vocab - 1)

    def sequence(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> token sequences (B, T) in raster order, channels inside a pixel."""
        return self.tokens(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    def prefix(self, labels: Tensor | None, n: int) -> Tensor:
        """The embedding of s_0 for n sequences, (n, d): the start token, or each label's class token."""
        if self.config.num_classes == 0:
            return self.prefix_embedding.weight[0].expand(n, -1)
        if labels is None:
            raise ValueError(f"this model is class-conditional ({self.config.num_classes} classes): pass labels")
        return self.prefix_embedding(labels)

    # ------------------------------------------------------------ the network
    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """x (B, C, H, W) in the input space -> parameters (B, C*P, H, W); those of token t depend
        on the prefix and the tokens before t only."""
        b = x.shape[0]
        c, hh, w = self.config.image_shape
        s = self.sequence(x)  # (B, T)
        inputs = torch.cat([self.prefix(labels, b)[:, None], self.token_embedding(s[:, :-1])], dim=1)  # (B, T, d)
        h = self.drop(inputs + self.position_embedding.weight)
        for block in self.blocks:
            h = block(h)
        params = self.out(self.norm(h))  # (B, T, P), position t = (row, column, channel)
        p = params.shape[-1]
        return params.view(b, hh, w, c, p).permute(0, 3, 4, 1, 2).reshape(b, c * p, hh, w)

    def _step(self, inputs: Tensor, t: int, caches: list[KVCache]) -> Tensor:
        """The input embedding at position t (n, d) -> parameters of token t (n, P), through the caches."""
        h = (inputs + self.position_embedding.weight[t])[:, None]  # (n, 1, d)
        for block, cache in zip(self.blocks, caches):
            h = block(h, cache, t)
        return self.out(self.norm(h))[:, 0]

    def _new_caches(self, n: int) -> list[KVCache]:
        heads = self.config.num_heads
        w = self.position_embedding.weight
        shape = (n, heads, self.length, self.config.d_model // heads)
        return [KVCache(w.new_zeros(shape), w.new_zeros(shape)) for _ in self.blocks]

    # ------------------------------------------------------------ sampling
    def _generate(self, x: Tensor, observed: Tensor, labels: Tensor | None, generator, method: str) -> Tensor:
        """Draw the unobserved tokens of x (n, C, H, W) in order, in place; used by sample and complete.

        ``method="naive"`` is :class:`AutoregressiveImageModel`'s loop: the whole sequence through
        :meth:`forward` once per token. ``"cached"`` feeds one position at a time through the key/value
        caches. Both draw from ``generator`` once per token that some image lacks, in the same
        order, so the same generator state gives the same images."""
        if method != "cached":
            return super()._generate(x, observed, labels, generator, method)  # (which also rejects unknown methods)
        n, C, H, W = x.shape
        was_training = self.training
        self.eval()
        try:
            caches = self._new_caches(n)
            inputs = self.prefix(labels, n)  # (n, d): what position 0 reads
            for t in range(self.length):
                i, j, c = t // (W * C), (t // C) % W, t % C
                params = self._step(inputs, t, caches)  # every position enters the caches, observed or not
                keep = observed[:, c, i, j]
                if not keep.all():
                    x[:, c, i, j] = torch.where(keep, x[:, c, i, j], self.head.sample(params, generator))
                inputs = self.token_embedding(self.tokens(x[:, c, i, j]))  # token t is position t+1's input
        finally:
            self.train(was_training)
        return x
