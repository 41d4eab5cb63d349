import math

import pytest
import torch
from conftest import F32

from ppo.loss import LOSS_TERMS, _maximum, ppo_loss, ratio_statistics


def hand_case(requires_grad=False):
    new_logprobs = torch.tensor([math.log(1.5), math.log(0.9)], requires_grad=requires_grad)
    return dict(
        new_logprobs=new_logprobs,
        old_logprobs=torch.zeros(2),
        advantages=torch.tensor([1.0, -1.0]),
        new_values=torch.tensor([0.5, 0.9]),
        old_values=torch.tensor([0.0, 1.0]),
        returns=torch.tensor([1.0, 0.0]),
        entropy=torch.tensor([1.0, 0.5]),
        clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, normalize_advantages=False,
    )


def terms_of(result):
    return dict(zip(LOSS_TERMS, result.terms.tolist(), strict=True))


def test_loss_hand_computed():
    result = ppo_loss(**hand_case(requires_grad=True))
    stats = {**terms_of(result), **ratio_statistics(result.log_ratio, clip_coef=0.2)}
    assert not result.terms.requires_grad and not result.log_ratio.requires_grad  # statistics, not in the graph
    # ratios 1.5 (clipped to 1.2, A=+1) and 0.9 (inside the clip, A=-1)
    assert stats["policy_loss"] == pytest.approx((-1.2 + 0.9) / 2, **F32)
    # unclipped errors 0.25, 0.81; clipped values 0.2 and 0.9 -> 0.64, 0.81; max -> 0.64, 0.81
    assert stats["value_loss"] == pytest.approx(0.5 * (0.64 + 0.81) / 2, **F32)
    assert stats["entropy"] == pytest.approx(0.75, **F32)
    assert result.loss.item() == pytest.approx(-0.15 - 0.01 * 0.75 + 0.5 * 0.3625, **F32)
    assert stats["clipfrac"].item() == pytest.approx(0.5, **F32)
    assert stats["old_approx_kl"].item() == pytest.approx((-math.log(1.5) - math.log(0.9)) / 2, **F32)
    assert stats["approx_kl"].item() == pytest.approx(((0.5 - math.log(1.5)) + (-0.1 - math.log(0.9))) / 2, **F32)


def test_clipped_sample_gets_no_policy_gradient():
    case = hand_case(requires_grad=True)
    ppo_loss(**case).loss.backward()
    grad = case["new_logprobs"].grad
    assert grad[0].item() == 0.0                      # ratio 1.5 > 1 + ε with A > 0: clipped
    assert grad[1].item() == pytest.approx(0.9 / 2, **F32)   # d/dlogp of -A·r/2 = -A·r/2


def test_unclipped_value_loss():
    stats = terms_of(ppo_loss(**{**hand_case(), "clip_value_loss": False}))
    assert stats["value_loss"] == pytest.approx(0.5 * (0.25 + 0.81) / 2, **F32)


def test_advantages_normalized_per_minibatch():
    n = 3
    stats = terms_of(ppo_loss(torch.zeros(n), torch.zeros(n), torch.tensor([1.0, 2.0, 30.0]), torch.zeros(n),
                              torch.zeros(n), torch.zeros(n), torch.zeros(n), 0.2, 0.5, 0.0))
    # ratio 1 everywhere, so the policy loss is minus the mean normalized advantage: 0.
    assert stats["policy_loss"] == pytest.approx(0.0, abs=1e-6)


def test_ratio_statistics_pool_the_samples_of_all_minibatches():
    log_ratio = torch.log(torch.tensor([1.5, 0.9, 1.0, 0.7]))
    stats = ratio_statistics(log_ratio, clip_coef=0.2)
    assert stats["clipfrac"].item() == pytest.approx(2 / 4)  # exact: a count over 4; 1.5 and 0.7 lie outside [0.8, 1.2]
    expected_k3 = sum((r - 1) - math.log(r) for r in (1.5, 0.9, 1.0, 0.7)) / 4
    assert stats["approx_kl"].item() == pytest.approx(expected_k3, **F32)
    expected_naive = -sum(math.log(r) for r in (1.5, 0.9, 1.0, 0.7)) / 4
    assert stats["old_approx_kl"].item() == pytest.approx(expected_naive, **F32)


def test_maximum_gives_torch_maximums_values_and_gradients_where_tied_sides_agree():
    # As in the PPO loss: both sides the same function of x wherever the clip is inactive, so they tie there.
    torch.manual_seed(0)
    advantages = torch.randn(1000)
    x = (torch.rand(1000) * 1.2 + 0.4).requires_grad_()  # ratios, many inside [0.8, 1.2]
    results = []
    for maximum in (_maximum, torch.maximum):
        x.grad = None
        value = maximum(-advantages * x, -advantages * torch.clamp(x, 0.8, 1.2))
        (value * torch.linspace(0.5, 2.0, 1000)).sum().backward()
        results.append((value.detach(), x.grad.clone()))
    (ours, our_grad), (torchs, torch_grad) = results
    assert 300 < int((x.detach() - x.detach().clamp(0.8, 1.2) == 0).sum()) < 1000  # ties and clipped samples
    assert torch.equal(ours, torchs) and torch.equal(our_grad, torch_grad)


def test_gradients_are_those_of_the_textbook_formula():
    """The loss's shortcuts (ties to one side, the clipped term out of the graph) give the very gradients of the
    formula written plainly with torch.max, for the policy and the value alike."""
    torch.manual_seed(1)
    n, clip = 512, 0.2
    old_logprobs, advantages = torch.randn(n) - 1, torch.randn(n)
    old_values, returns = torch.randn(n), torch.randn(n)
    new_logprobs = (old_logprobs + 0.3 * torch.randn(n)).requires_grad_()
    new_values = (old_values + 0.3 * torch.randn(n)).requires_grad_()
    entropy = torch.rand(n, requires_grad=True)

    ppo_loss(new_logprobs, old_logprobs, advantages, new_values, old_values, returns, entropy, clip, 0.5, 0.01
             ).loss.backward()
    ours = [tensor.grad.clone() for tensor in (new_logprobs, new_values, entropy)]
    for tensor in (new_logprobs, new_values, entropy):
        tensor.grad = None

    ratio = (new_logprobs - old_logprobs).exp()
    normalized = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy = torch.max(-normalized * ratio, -normalized * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip, clip)
    value = 0.5 * torch.max((new_values - returns) ** 2, (clipped_values - returns) ** 2).mean()
    (policy - 0.01 * entropy.mean() + 0.5 * value).backward()
    textbook = [tensor.grad for tensor in (new_logprobs, new_values, entropy)]

    outside = ((ratio < 1 - clip) | (ratio > 1 + clip)).sum().item()
    assert 50 < outside < n - 50  # both clipped and unclipped samples
    for mine, theirs in zip(ours, textbook, strict=True):
        assert torch.equal(mine, theirs)
