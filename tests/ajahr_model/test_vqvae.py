"""The tokenizer's networks: token counts, the EMA codebook, dead-code resets, straight-through gradients."""

from __future__ import annotations

import pytest
import torch

from ajahr_model.tokenizer.vqvae import EMAQuantizer, PoseVQVAE, TokenizerConfig, TokenizerConfigError


@pytest.mark.parametrize(("tokens", "mul"), [(320, 5), (160, 4), (40, 2), (20, 1)])
def test_token_count_is_20_times_2_to_the_mul_over_2_to_the_down_t(tokens, mul):
    config = TokenizerConfig(tokens=tokens, codebook_size=16, code_dim=4, width=8, down_t=1)
    assert config.mul == mul
    model = PoseVQVAE(config)
    out = model(torch.randn(3, 21, 6))
    assert out.pose6d.shape == (3, 21, 6)
    assert out.indices.shape == (3, tokens)
    assert model.decode_indices(out.indices).shape == (3, 21, 6)
    assert model.decode_latent(torch.randn(3, tokens, 4)).shape == (3, 21, 6)


def test_a_token_count_off_the_grid_is_refused_with_the_choices():
    with pytest.raises(TokenizerConfigError, match=r"tokens=30 .* choose one of \[10, 20, 40"):
        TokenizerConfig(tokens=30)


def _quantizer(codebook: torch.Tensor, counts: torch.Tensor, decay: float = 0.9) -> EMAQuantizer:
    quantizer = EMAQuantizer(codebook.shape[0], codebook.shape[1], decay=decay, dead_threshold=1.0)
    quantizer.codebook.copy_(codebook)
    quantizer.ema_count.copy_(counts)
    quantizer.ema_sum.copy_(codebook * counts[:, None])
    quantizer.initialised.fill_(True)
    return quantizer


def _latent(points: list[list[float]]) -> torch.Tensor:
    """(1, D, N) encoder output holding the given D-dimensional points as N tokens."""
    return torch.tensor(points).T[None]


def test_the_ema_update_moves_counts_and_codes_by_the_decay():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    quantizer = _quantizer(codebook, torch.tensor([4.0, 4.0, 4.0]))
    points = [[1.0, 0.0], [0.0, 1.0], [9.0, 0.0]]  # two to code 0, one to code 1, none to code 2
    out = quantizer(_latent(points))
    assert out.indices.tolist() == [[0, 0, 1]]
    assert out.counts.tolist() == [2, 1, 0]
    expected_counts = torch.tensor([0.9 * 4 + 0.1 * 2, 0.9 * 4 + 0.1 * 1, 0.9 * 4])
    assert torch.allclose(quantizer.ema_count, expected_counts)
    sum0 = 0.9 * 4 * codebook[0] + 0.1 * torch.tensor([1.0, 1.0])
    sum1 = 0.9 * 4 * codebook[1] + 0.1 * torch.tensor([9.0, 0.0])
    assert torch.allclose(quantizer.codebook[0], sum0 / expected_counts[0])
    assert torch.allclose(quantizer.codebook[1], sum1 / expected_counts[1])
    assert torch.allclose(quantizer.codebook[2], codebook[2])  # unused but alive: unchanged
    assert quantizer.last_reset_count == 0


def test_a_dead_code_is_reset_to_an_encoder_output_of_the_batch():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [50.0, 50.0]])
    # Code 2 is never chosen and its running count is about to fall under the threshold (1.0).
    quantizer = _quantizer(codebook, torch.tensor([4.0, 4.0, 1.05]))
    points = [[1.0, 0.0], [0.0, 1.0], [9.0, 0.0], [11.0, 0.0]]
    quantizer(_latent(points), generator=torch.Generator().manual_seed(0))
    assert quantizer.last_reset_count == 1
    assert any(torch.equal(quantizer.codebook[2], torch.tensor(p)) for p in points)
    assert quantizer.ema_count[2] == quantizer.dead_threshold
    assert torch.allclose(quantizer.ema_sum[2], quantizer.codebook[2] * quantizer.dead_threshold)
    assert not quantizer.dead_codes().any()


def test_the_first_training_batch_initialises_the_codebook_from_encoder_outputs():
    quantizer = EMAQuantizer(4, 2)
    points = torch.randn(1, 2, 10, generator=torch.Generator().manual_seed(0))
    quantizer(points, generator=torch.Generator().manual_seed(1))
    rows = points[0].T
    assert bool(quantizer.initialised)
    for code in quantizer.codebook:
        # Each code is an input row, or (if its count moved) an average of input rows near it.
        assert (rows - code).norm(dim=1).min() < 2.0


def test_eval_mode_leaves_the_codebook_alone():
    quantizer = _quantizer(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([4.0, 0.5]))
    before = {name: buffer.clone() for name, buffer in quantizer.named_buffers()}
    quantizer.eval()
    quantizer(_latent([[1.0, 0.0], [9.0, 0.0]]))
    for name, buffer in quantizer.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_the_straight_through_estimator_passes_the_decoder_gradient_to_the_encoder():
    config = TokenizerConfig(tokens=20, codebook_size=16, code_dim=4, width=8)
    model = PoseVQVAE(config)
    out = model(torch.randn(4, 21, 6), generator=torch.Generator().manual_seed(0))
    # Only the reconstruction, no commitment loss: the encoder's gradient must come through the
    # quantizer's argmin, which has none of its own.
    out.pose6d.pow(2).sum().backward()
    first_conv = model.encoder.layers[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.quantizer.buffers())


def test_the_quantized_forward_value_is_the_code_and_the_commitment_loss_its_distance():
    quantizer = _quantizer(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([4.0, 4.0]))
    quantizer.eval()
    latent = _latent([[1.0, 0.0], [9.0, 2.0]]).requires_grad_(True)
    out = quantizer(latent)
    assert torch.equal(out.quantized.detach(), _latent([[0.0, 0.0], [10.0, 0.0]]))
    assert out.commit_loss.item() == pytest.approx((1.0 + 1.0 + 4.0) / 4)
    out.commit_loss.backward()
    assert latent.grad.abs().sum() > 0
