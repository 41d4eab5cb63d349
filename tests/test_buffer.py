import pytest
import torch

from ppo.buffer import RolloutBuffer, compute_gae, minibatch_indices

GAMMA, LAMBDA = 0.9, 0.8


def test_gae_hand_computed_with_termination_and_truncation():
    # Env 0 terminates at t=1; env 1 is truncated at t=0 with V(final observation) = 2.0.
    rewards = torch.tensor([[1.0, 0.5], [1.0, 0.0], [1.0, 1.0]])
    values = torch.tensor([[0.5, 1.0], [0.4, 0.6], [0.3, 0.7]])
    next_value = torch.tensor([0.2, 0.1])
    terminated = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    truncated = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    final_values = torch.tensor([[0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])

    advantages, returns = compute_gae(rewards, values, next_value, terminated, truncated, final_values,
                                      GAMMA, LAMBDA)
    # Env 0: t=2 bootstraps from next_value; t=1 is a death (no bootstrap, nothing flows back from t=2);
    #        t=0 bootstraps from V(s1) and receives γλ·A1.
    a0_2 = 1 + 0.9 * 0.2 - 0.3                       # 0.88
    a0_1 = 1 - 0.4                                   # 0.6
    a0_0 = (1 + 0.9 * 0.4 - 0.5) + 0.9 * 0.8 * a0_1  # 1.292
    # Env 1: t=0 is a time limit: reward + γ·V(final obs), and nothing flows back from the next episode.
    a1_2 = 1 + 0.9 * 0.1 - 0.7                       # 0.39
    a1_1 = (0 + 0.9 * 0.7 - 0.6) + 0.9 * 0.8 * a1_2  # 0.3108
    a1_0 = 0.5 + 0.9 * 2.0 - 1.0                     # 1.3
    expected = torch.tensor([[a0_0, a1_0], [a0_1, a1_1], [a0_2, a1_2]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values)
    assert advantages[0, 0].item() == pytest.approx(1.292)
    assert advantages[0, 1].item() == pytest.approx(1.3)


def test_gae_terminated_and_truncated_together_is_a_termination():
    ones = torch.ones(1, 1)
    advantages, _ = compute_gae(ones, torch.zeros(1, 1), torch.tensor([5.0]), ones, ones,
                                torch.full((1, 1), 100.0), GAMMA, LAMBDA)
    assert advantages.item() == pytest.approx(1.0)


def test_gae_lambda_one_gives_discounted_returns():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    zeros = torch.zeros(3, 1)
    _, returns = compute_gae(rewards, torch.rand(3, 1), torch.tensor([0.0]), zeros, zeros, zeros, 0.5, 1.0)
    torch.testing.assert_close(returns[:, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]))


@pytest.mark.parametrize("batch,num", [(512, 4), (12, 3), (7, 7), (8, 1)])
def test_minibatches_partition_the_batch(batch, num):
    parts = minibatch_indices(batch, num, torch.Generator().manual_seed(0))
    assert len(parts) == num
    assert all(len(p) == batch // num for p in parts)
    assert sorted(torch.cat(parts).tolist()) == list(range(batch))


def test_minibatches_are_shuffled():
    first = minibatch_indices(64, 4, torch.Generator().manual_seed(0))[0]
    assert first.tolist() != list(range(16))


def test_minibatches_refuse_uneven_split():
    with pytest.raises(ValueError):
        minibatch_indices(10, 3)


@pytest.mark.parametrize("obs_shape, obs_dtype, action_shape, action_dtype", [
    ((4,), torch.float32, (), torch.long),  # CartPole: float observations, discrete actions
    ((4, 84, 84), torch.uint8, (), torch.long),  # Atari frames
    ((3,), torch.float32, (1,), torch.float32),  # Pendulum: continuous actions
])
def test_store_step_writes_the_rows_the_update_reads(obs_shape, obs_dtype, action_shape, action_dtype):
    # On the CPU rows go through NumPy views of the storage: they must land in the tensors themselves.
    buffer = RolloutBuffer(3, 2, obs_shape, obs_dtype, action_shape, action_dtype, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    rows = []
    for step in range(3):
        obs = (torch.rand((2, *obs_shape), generator=generator) * 200).to(obs_dtype)
        action = (torch.rand((2, *action_shape), generator=generator) * 5).to(action_dtype)
        buffer.store_step(step, obs, action, action.numpy())
        rows.append((obs, action))
    assert torch.equal(buffer.obs, torch.stack([obs for obs, _ in rows]))
    assert torch.equal(buffer.actions, torch.stack([action for _, action in rows]))
    assert buffer.obs.flatten(0, 1).shape == (6, *obs_shape)
