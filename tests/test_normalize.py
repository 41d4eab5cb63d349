import numpy as np

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
    scaler(np.array([1.0, 2.0]), np.array([False, True]))
    np.testing.assert_allclose(scaler.returns, [1.0, 0.0])  # env 1's episode ended: its return restarts
    out = scaler(np.array([1.0, 1.0]), np.array([False, False]))
    np.testing.assert_allclose(out, np.array([1.0, 1.0]) / np.sqrt(scaler.rms.var + 1e-8), rtol=1e-6)


def test_scaled_rewards_are_clipped_on_both_sides():
    scaler = RewardScaler(num_envs=3, gamma=0.9, clip=2.0)
    rng = np.random.default_rng(2)
    for _ in range(200):  # returns of std about 1
        scaler(rng.normal(size=3), np.ones(3, bool))
    out = scaler(np.array([1e3, -1e3, 0.5]), np.zeros(3, bool))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:2], [2.0, -2.0])
    assert abs(out[2]) < 2.0
