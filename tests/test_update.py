"""The update on batches a NEXT_STEP rollout can leave: fewer valid samples than minibatches, or none."""

import math

import gymnasium as gym
import torch

from networks import MLPActorCritic
from ppo.buffer import Batch
from ppo.config import TrainConfig
from ppo.update import make_optimizer, update_policy

CFG = TrainConfig(num_envs=2, num_steps=8, num_minibatches=4, num_epochs=2, learning_rate=1e-3,
                  total_timesteps=16, gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.01, vf_coef=0.5,
                  max_grad_norm=0.5, seed=1)


def batch_of(size: int) -> Batch:
    generator = torch.Generator().manual_seed(size)
    return Batch(torch.randn(size, 4, generator=generator), torch.randint(0, 2, (size,), generator=generator),
                 torch.full((size,), -0.69), torch.randn(size, generator=generator),
                 torch.randn(size, generator=generator), torch.randn(size, generator=generator))


def test_fewer_samples_than_minibatches_still_give_finite_steps():
    torch.manual_seed(0)
    agent = MLPActorCritic(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))
    before = [p.detach().clone() for p in agent.parameters()]
    stats = update_policy(agent, make_optimizer(agent, 1e-3), batch_of(3), CFG)
    assert all(math.isfinite(stats[key]) for key in ("policy_loss", "value_loss", "entropy", "approx_kl"))
    assert all(torch.isfinite(p).all() for p in agent.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(agent.parameters(), before, strict=True))


def test_an_empty_batch_is_no_update():
    torch.manual_seed(0)
    agent = MLPActorCritic(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))
    optimizer = make_optimizer(agent, 1e-3)
    before = [p.detach().clone() for p in agent.parameters()]
    assert update_policy(agent, optimizer, batch_of(0), CFG) == {}
    assert all(torch.equal(p, b) for p, b in zip(agent.parameters(), before, strict=True))
    assert optimizer.steps == 0  # no step on momentum alone
