import numpy as np
import pytest
import torch
from conftest import F32

from ppo.buffer import RolloutBuffer, compute_gae, minibatch_indices, take_rows

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
    assert advantages[0, 0].item() == pytest.approx(1.292, **F32)
    assert advantages[0, 1].item() == pytest.approx(1.3, **F32)


def test_gae_terminated_and_truncated_together_is_a_termination():
    ones = torch.ones(1, 1)
    advantages, _ = compute_gae(ones, torch.zeros(1, 1), torch.tensor([5.0]), ones, ones,
                                torch.full((1, 1), 100.0), GAMMA, LAMBDA)
    assert advantages.item() == pytest.approx(1.0, **F32)


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


@pytest.mark.parametrize("batch,num", [(3, 4), (1, 4), (9, 4)])
def test_uneven_minibatches_are_never_empty(batch, num):
    # After a NEXT_STEP rollout's reset steps are dropped, fewer samples than minibatches may remain.
    parts = minibatch_indices(batch, num, torch.Generator().manual_seed(0), uneven_ok=True)
    assert len(parts) == min(batch, num)
    assert all(len(p) in (batch // len(parts), batch // len(parts) + 1) for p in parts)
    assert sorted(torch.cat(parts).tolist()) == list(range(batch))


def test_minibatches_refuse_uneven_split():
    with pytest.raises(ValueError):
        minibatch_indices(10, 3)


@pytest.mark.parametrize("obs_shape, obs_dtype, action_shape, action_dtype, memory_format", [
    ((4,), torch.float32, (), torch.long, torch.contiguous_format),  # CartPole: float observations, discrete
    ((4, 84, 84), torch.uint8, (), torch.long, torch.contiguous_format),  # Atari frames
    ((4, 84, 84), torch.uint8, (), torch.long, torch.channels_last),  # Atari frames for channels_last convolutions
    ((3,), torch.float32, (1,), torch.float32, torch.channels_last),  # Pendulum (1-D: no layout to change)
])
def test_stored_rows_are_the_rows_the_update_reads(obs_shape, obs_dtype, action_shape, action_dtype, memory_format):
    # On the CPU rows go through NumPy views of the storage (or a transposing copy): they must land in the
    # tensors themselves, and what store_obs returns is what the network is given.
    buffer = RolloutBuffer(3, 2, obs_shape, obs_dtype, action_shape, action_dtype, torch.device("cpu"),
                           memory_format)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for step in range(3):
        obs = (torch.rand((2, *obs_shape), generator=generator) * 200).to(obs_dtype)
        action = (torch.rand((2, *action_shape), generator=generator) * 5).to(action_dtype)
        given = buffer.store_obs(step, obs)
        for_env = buffer.store_action(step, action)
        assert torch.equal(given, obs)
        assert isinstance(for_env, np.ndarray) and np.array_equal(for_env, action.numpy())
        rows.append((obs, action))
    assert torch.equal(buffer.obs, torch.stack([obs for obs, _ in rows]))
    assert torch.equal(buffer.actions, torch.stack([action for _, action in rows]))
    flat = buffer.obs.flatten(0, 1)
    assert flat.shape == (6, *obs_shape)
    frames_transposed = memory_format == torch.channels_last and len(obs_shape) == 3
    assert flat.is_contiguous(memory_format=memory_format) if frames_transposed else flat.is_contiguous()
    assert given.is_contiguous(memory_format=memory_format) if frames_transposed else given is obs


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_take_rows_is_indexing_in_the_same_layout(memory_format):
    frames = torch.randint(0, 256, (10, 4, 6, 5), dtype=torch.uint8).contiguous(memory_format=memory_format)
    idx = torch.tensor([7, 0, 3, 3, 9])
    taken = take_rows(frames, idx)
    assert torch.equal(taken, frames[idx])
    assert taken.is_contiguous(memory_format=memory_format)
    values = torch.randn(10)
    assert torch.equal(take_rows(values, idx), values[idx])


def test_finish_drops_reset_steps_keeping_the_frame_layout():
    buffer = RolloutBuffer(2, 3, (4, 6, 5), torch.uint8, (), torch.long, torch.device("cpu"), torch.channels_last)
    buffer.obs.copy_(torch.randint(0, 256, buffer.obs.shape, dtype=torch.uint8))
    buffer.rewards[:] = np.arange(6.0).reshape(2, 3)  # with γ = 0 and zero values: advantage = reward
    buffer.valid[1, 0] = False  # env 0's second step was a reset step
    batch = buffer.finish(torch.zeros(3), gamma=0.0, gae_lambda=0.95)
    assert batch.advantages.tolist() == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert torch.equal(batch.obs, buffer.obs.flatten(0, 1)[[0, 1, 2, 4, 5]])
    assert batch.obs.is_contiguous(memory_format=torch.channels_last)
