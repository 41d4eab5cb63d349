import numpy as np
import pytest

from ppo.normalize import ObservationNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_equals_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, size=(n, 3)) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd((3,), epsilon=1e-12)
    for batch in batches:
        rms.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, everything.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var, everything.var(0), rtol=1e-9)


def test_observation_normalizer_centres_and_clips():
    normalizer = ObservationNormalizer((2,), clip=5.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        normalizer(rng.normal([10, -3], [4, 0.1], size=(8, 2)))
    out = normalizer(rng.normal([10, -3], [4, 0.1], size=(1000, 2)), update=False)
    np.testing.assert_allclose(out.mean(0), 0, atol=0.15)
    np.testing.assert_allclose(out.std(0), 1, atol=0.15)
    assert out.dtype == np.float32
    assert np.abs(normalizer(np.array([[1e6, 1e6]]), update=False)).max() == 5.0


def test_reward_scaler_divides_by_return_std_and_resets_on_done():
    scaler = RewardScaler(num_envs=2, gamma=0.5)
    scaler.scale(np.array([[1.0, 2.0]]), np.array([[False, True]]))
    np.testing.assert_allclose(scaler.returns, [1.0, 0.0])  # env 1's episode ended: its return restarts
    out = scaler.scale(np.array([[1.0, 1.0]]), np.array([[False, False]]))
    # The returns seen so far: 1 and 2, then 1 + 0.5 * 1 and 0 + 1 (the prior of count 1e-4 barely counts).
    np.testing.assert_allclose(out, [[1 / np.std([1.0, 2.0, 1.5, 1.0])] * 2], rtol=1e-3)


def scaled_step_by_step(rewards, dones, valid, gamma):
    """The expectation: Gymnasium's NormalizeReward / SB3's VecNormalize, one step of all envs after another."""
    rms, returns, out = RunningMeanStd(()), np.zeros(rewards.shape[1]), []
    for step in range(len(rewards)):
        returns = returns * gamma + rewards[step]
        counted = returns if valid is None else returns[valid[step]]
        if counted.size:
            rms.update(counted)
        returns[dones[step]] = 0.0
        out.append(np.clip(rewards[step] / np.sqrt(rms.var + 1e-8), -10, 10).astype(np.float32))
    return np.stack(out), rms


@pytest.mark.parametrize("num_envs", [1, 4, 9, 64])
@pytest.mark.parametrize("with_reset_steps", [False, True])
def test_a_rollout_scaled_at_once_gives_the_numbers_of_step_by_step_scaling(num_envs, with_reset_steps):
    rng = np.random.default_rng(num_envs)
    rewards = rng.normal(size=(64, num_envs)) * 3
    dones = rng.random((64, num_envs)) < 0.1
    valid = rng.random((64, num_envs)) > 0.2 if with_reset_steps else None
    expected, expected_rms = scaled_step_by_step(rewards, dones, valid, gamma=0.99)
    scaler = RewardScaler(num_envs, gamma=0.99)
    rollouts = (slice(0, 40), slice(40, 64))  # two in a row: the returns carry over
    scaled = [scaler.scale(rewards[part], dones[part], None if valid is None else valid[part]) for part in rollouts]
    # To the bit: float64 NumPy, the same elementwise formulas in the same order as the step-by-step reference.
    np.testing.assert_array_equal(np.concatenate(scaled), expected)
    assert (scaler.rms.mean, scaler.rms.var, scaler.rms.count) == (expected_rms.mean, expected_rms.var,
                                                                  expected_rms.count)


def test_scaled_rewards_are_clipped_on_both_sides():
    scaler = RewardScaler(num_envs=3, gamma=0.9, clip=2.0)
    rng = np.random.default_rng(2)
    scaler.scale(rng.normal(size=(200, 3)), np.ones((200, 3), bool))  # returns of std about 1
    out = scaler.scale(np.array([[1e3, -1e3, 0.5]]), np.zeros((1, 3), bool))[0]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:2], [2.0, -2.0])
    assert abs(out[2]) < 2.0
