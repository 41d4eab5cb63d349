import math

import pytest
import torch

from ppo.loss import ppo_loss


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


def test_loss_hand_computed():
    loss, stats = ppo_loss(**hand_case())
    # ratios 1.5 (clipped to 1.2, A=+1) and 0.9 (inside the clip, A=-1)
    assert stats["policy_loss"].item() == pytest.approx((-1.2 + 0.9) / 2)
    # unclipped errors 0.25, 0.81; clipped values 0.2 and 0.9 -> 0.64, 0.81; max -> 0.64, 0.81
    assert stats["value_loss"].item() == pytest.approx(0.5 * (0.64 + 0.81) / 2)
    assert stats["entropy"].item() == pytest.approx(0.75)
    assert loss.item() == pytest.approx(-0.15 - 0.01 * 0.75 + 0.5 * 0.3625)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    assert stats["old_approx_kl"].item() == pytest.approx((-math.log(1.5) - math.log(0.9)) / 2)
    assert stats["approx_kl"].item() == pytest.approx(((0.5 - math.log(1.5)) + (-0.1 - math.log(0.9))) / 2)


def test_clipped_sample_gets_no_policy_gradient():
    case = hand_case(requires_grad=True)
    loss, _ = ppo_loss(**case)
    loss.backward()
    grad = case["new_logprobs"].grad
    assert grad[0].item() == 0.0                      # ratio 1.5 > 1 + ε with A > 0: clipped
    assert grad[1].item() == pytest.approx(0.9 / 2)   # d/dlogp of -A·r/2 = -A·r/2


def test_unclipped_value_loss():
    _, stats = ppo_loss(**{**hand_case(), "clip_value_loss": False})
    assert stats["value_loss"].item() == pytest.approx(0.5 * (0.25 + 0.81) / 2)


def test_advantages_normalized_per_minibatch():
    n = 3
    loss, stats = ppo_loss(torch.zeros(n), torch.zeros(n), torch.tensor([1.0, 2.0, 30.0]), torch.zeros(n),
                           torch.zeros(n), torch.zeros(n), torch.zeros(n), 0.2, 0.5, 0.0)
    # ratio 1 everywhere, so the policy loss is minus the mean normalized advantage: 0.
    assert stats["policy_loss"].item() == pytest.approx(0.0, abs=1e-6)
