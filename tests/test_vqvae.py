"""VQ-VAE: straight-through gradients, the EMA codebook against its closed form,
dead-code restarts, the PixelCNN prior's causality, the likelihood bound against the
exact marginal on a 1x1 code map, the two training stages and an exact resume."""

from __future__ import annotations

import torch

from genlab import distributions as D
from genlab.models.vqvae import VQVAE, EMACodebook, VQVAEConfig


def tiny(**kw) -> VQVAE:
    torch.manual_seed(0)
    base = dict(
        image_shape=(1, 8, 8),
        hidden_channels=8,
        residual_blocks=1,
        num_codes=4,
        code_dim=3,
        prior_start=0,
        freeze_autoencoder=False,
        prior_channels=8,
        prior_blocks=1,
    )
    return VQVAE(VQVAEConfig(**{**base, **kw}))


def images(n=6, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).float() / 255


def test_straight_through_copies_the_decoder_gradient_to_the_encoder_output():
    model = tiny(beta=0.0).eval()
    x = images()
    captured = {}

    def keep(module, inputs, out):
        out.retain_grad()
        captured["z_e"] = out

    model.encoder.register_forward_hook(keep)
    model.autoencoder_loss({"x": x})["loss"].backward()
    z_e = captured["z_e"]
    # The same loss as a function of z_q alone: its gradient must be what z_e received.
    _, z_q = model.quantize(z_e.detach())
    z_q = z_q.clone().requires_grad_(True)
    loss = -D.discretized_logistic_log_prob(x, *model.decoder_params(z_q)).mean() / model.num_dims
    (g_q,) = torch.autograd.grad(loss, z_q)
    assert g_q.abs().sum() > 0
    assert torch.allclose(z_e.grad, g_q, atol=1e-7)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters() if p.dim() > 1)


def test_commitment_gradient_pulls_the_encoder_output_to_its_code():
    model = tiny(beta=0.25).eval()
    z_e = torch.randn(2, 3, 2, 2, requires_grad=True)
    _, z_q = model.quantize(z_e.detach())
    commitment = 0.25 * (z_e - z_q.detach()).pow(2).sum()
    (g,) = torch.autograd.grad(commitment, z_e)
    assert torch.allclose(g, 0.5 * (z_e - z_q).detach())


def test_ema_update_equals_the_closed_form_on_a_hand_made_batch():
    cb = EMACodebook(num_codes=3, dim=2, decay=0.9, dead_threshold=0.0)
    cb.usage.copy_(torch.tensor([2.0, 1.0, 4.0]))
    cb.embedding_sum.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [4.0, 4.0]]))
    flat = torch.tensor([[1.0, 1.0], [3.0, -1.0], [0.0, 2.0]])
    idx = torch.tensor([0, 0, 1])  # code 2 unused in this batch
    assert cb.update(flat, idx) == 0
    n = torch.tensor([2.0, 1.0, 0.0])
    usage = 0.9 * torch.tensor([2.0, 1.0, 4.0]) + 0.1 * n
    sums = 0.9 * torch.tensor([[2.0, 0.0], [0.0, 1.0], [4.0, 4.0]]) + 0.1 * torch.tensor(
        [[4.0, 0.0], [0.0, 2.0], [0.0, 0.0]]
    )
    total = usage.sum()
    smoothed = (usage + 1e-5) / (total + 3e-5) * total
    assert torch.allclose(cb.usage, usage)
    assert torch.allclose(cb.embedding_sum, sums)
    assert torch.allclose(cb.embedding, sums / smoothed[:, None])
    # Without smoothing the codes would be the plain ratio; with it they are within 1e-5 of it.
    assert torch.allclose(cb.embedding, sums / usage[:, None], rtol=1e-4)


def test_dead_codes_are_restarted_at_encoder_outputs():
    torch.manual_seed(0)
    cb = EMACodebook(num_codes=3, dim=2, decay=0.9, dead_threshold=0.5)
    cb.usage.copy_(torch.tensor([5.0, 0.3, 5.0]))
    cb.embedding_sum.copy_(cb.embedding * cb.usage[:, None])
    flat = torch.tensor([[10.0, 10.0], [11.0, 11.0], [-10.0, 3.0], [-9.0, 4.0]])
    idx = torch.tensor([0, 0, 2, 2])  # code 1 is not used: usage 0.27 < 0.5
    assert cb.update(flat, idx) == 1
    assert any(torch.equal(cb.embedding[1], row) for row in flat)
    assert cb.usage[1] == 1.0 and torch.equal(cb.embedding_sum[1], cb.embedding[1])
    assert cb.usage[0] > 0.5 and cb.usage[2] > 0.5


def test_first_training_step_places_every_code_on_the_data():
    model = tiny(num_codes=8).train()
    x = images(16)
    with torch.no_grad():
        flat = model.encoder_output(x).permute(0, 2, 3, 1).reshape(-1, 3)
    out = model.autoencoder_loss({"x": x})
    # The codebook starts with zero usage: every code not taking >= 50 of the 64 vectors restarts.
    restarted = model.codebook.usage == 1.0
    assert out["restarted"] == int(restarted.sum()) >= 7
    for e in model.codebook.embedding[restarted]:
        assert (flat - e).abs().amax(1).min() < 1e-6


def test_prior_is_causal_over_the_code_map():
    model = tiny(image_shape=(1, 16, 16), num_codes=5, prior_blocks=2)
    h, w = model.code_shape
    x = torch.rand(1, 1, h, w, requires_grad=True)
    out = model.prior(x)  # (1, K, h, w) logits
    for i, j in [(0, 0), (1, 2), (3, 3), (2, 0)]:
        (g,) = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
        order = torch.arange(h * w).view(h, w)
        later = order >= i * w + j
        assert g[0, 0][later].abs().max() == 0, (i, j)
        if i * w + j > 0:
            assert g[0, 0][~later].abs().max() > 0


def test_bound_is_below_the_exact_marginal_on_a_1x1_code_map():
    """With a 1x1 code map and K = 4 codes, log p(x) = logsumexp_c [log p(c) + log p(x|c)]
    is computable: the bound must be one of its terms (the encoder's code) and below it."""
    model = tiny(image_shape=(1, 4, 4), num_codes=4).eval()
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(0.5 * torch.randn_like(p))  # a prior far from uniform
    x = images(5, shape=(1, 4, 4))
    assert model.code_shape == (1, 1)
    with torch.no_grad():
        bound = model.log_prob(x)
        terms = []
        for k in range(4):
            c = torch.full((5, 1, 1), k)
            log_prior = model.prior.log_prob(model._prior_input(c))
            terms.append(log_prior + D.discretized_logistic_log_prob(x, *model.decoder_params(model.embed(c))))
        log_priors = torch.stack([model.prior.log_prob(model._prior_input(torch.full((1, 1, 1), k))) for k in range(4)])
        terms = torch.stack(terms)
        exact = torch.logsumexp(terms, 0)
    assert torch.allclose(torch.logsumexp(log_priors, 0), torch.zeros(1), atol=1e-6)  # the prior is normalised
    assert (bound <= exact + 1e-5).all()
    own = terms.gather(0, model.codes(x).view(1, 5)).squeeze(0)
    assert torch.allclose(bound, own, atol=1e-5)


def test_stages_switch_at_prior_start():
    model = tiny(prior_start=3, freeze_autoencoder=True).train()
    ae, prior = model.train_steps()
    batch = {"x": images()}

    def grads(step):
        model.zero_grad(set_to_none=True)
        step.loss(batch)["loss"].backward()
        return [p.grad for p in step.parameters()]

    for it, ae_on in [(0, True), (2, True), (3, False), (10, False)]:
        model.begin_iteration(it)
        g_ae, g_prior = grads(ae), grads(prior)
        assert all((g is None) != ae_on for g in g_ae), it
        assert all((g is None) == ae_on for g in g_prior), it


def test_sample_goes_through_the_prior_and_encode_decode_round_trip():
    model = tiny().eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    codes = model.sample_codes(3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, model.decode(model.embed(codes).flatten(1)))
    x = images(4)
    z = model.encode(x)
    assert z.shape == (4, *model.latent_shape)
    assert model.codes(x).shape == (4, 2, 2) and model.codes(x).max() < 4
    assert torch.equal(model.reconstruct(x), model.decode(z))
