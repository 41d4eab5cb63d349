"""The value a truncated step is bootstrapped from, under both autoreset modes.

A time-limit truncation is not a death: GAE completes its reward with γ·V(final observation). The loop must hand
``compute_gae`` exactly that: at a truncated (and not terminated) step and env, the critic's value of that env's
last observation, normalized with the statistics the learner had at that step; zero everywhere else. Swapping the
final observation for the reset observation that follows it (or a NEXT_STEP env's reset step for its last step)
fails here. The expected values are computed independently: the final observations are recorded where the env
hands them out, the normalization statistics are rebuilt from every observation the env returned, and the critic
is the saved model (a learning rate of 1e-30 leaves the weights the rollouts ran with, to float32 precision).
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import only_run_dir
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

import main
import ppo.buffer
from networks import MLPActorCritic
from ppo.normalize import ObservationNormalizer

NUM_ENVS, NUM_STEPS, UPDATES, TIME_LIMIT = 2, 32, 2, 10


class RecordFinalObservations(gym.vector.VectorWrapper):
    """Records, per rollout, where a step was truncated without terminating and the last observation of that
    env's episode, normalized as a running normalizer fed with every observation the env returned would."""

    def __init__(self, env: gym.vector.VectorEnv, normalize: bool) -> None:
        super().__init__(env)
        self.normalizer = ObservationNormalizer(env.single_observation_space.shape) if normalize else None
        self.steps = 0
        self.truncations: list[tuple[int, int, int, np.ndarray]] = []  # (rollout, step, env, learner's input)

    def observe(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.float32) if self.normalizer is None else self.normalizer(obs, update=False)

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        if self.normalizer is not None:
            self.normalizer.rms.update(obs)
        return obs, info

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        rollout, step = divmod(self.steps, NUM_STEPS)
        self.steps += 1
        for env in np.flatnonzero(truncated & ~terminated):
            last = info["final_obs"][env] if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP \
                else obs[env]
            self.truncations.append((rollout, step, int(env), self.observe(np.asarray(last)[None])[0]))
        if self.normalizer is not None:
            self.normalizer.rms.update(obs)
        return obs, reward, terminated, truncated, info


def same_step_pendulum() -> gym.vector.VectorEnv:
    """Pendulum never terminates: every episode ends in a truncation. Box actions: observations normalized."""
    return gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("Pendulum-v1", max_episode_steps=TIME_LIMIT))] *
        NUM_ENVS, autoreset_mode=AutoresetMode.SAME_STEP)


def next_step_cartpole() -> gym.vector.VectorEnv:
    """Gymnasium's native CartPole vector env: NEXT_STEP autoreset, terminations and truncations both."""
    return gym.wrappers.vector.RecordEpisodeStatistics(CartPoleVectorEnv(NUM_ENVS, max_episode_steps=TIME_LIMIT))


@pytest.mark.parametrize("env_id, make_envs, normalize", [
    ("Pendulum-v1", same_step_pendulum, True),
    ("CartPole-v1", next_step_cartpole, False),
], ids=["same-step-normalized", "next-step"])
def test_truncated_steps_are_bootstrapped_from_the_final_observation(env_id, make_envs, normalize, tmp_path,
                                                                      monkeypatch):
    envs = RecordFinalObservations(make_envs(), normalize)
    monkeypatch.setattr(main, "make_classic_envs", lambda *args, **kwargs: envs)
    handed = []
    compute_gae = ppo.buffer.compute_gae

    def spy(rewards, values, next_value, terminated, truncated, final_values, *args):
        handed.append((np.array(truncated, np.float32), np.array(final_values, np.float32)))
        return compute_gae(rewards, values, next_value, terminated, truncated, final_values, *args)

    monkeypatch.setattr(ppo.buffer, "compute_gae", spy)
    assert main.main(["--environment-id", env_id, "--num-envs", str(NUM_ENVS), "--num-steps-collected",
                      str(NUM_STEPS), "--num-mini-batches", "2", "--total-timesteps", str(NUM_ENVS * NUM_STEPS *
                                                                                       UPDATES),
                      "--learning-rate", "1e-30", "--no-progress", "--log-dir", str(tmp_path)]) == 0
    assert len(handed) == UPDATES
    assert len(envs.truncations) >= 2 * UPDATES  # episodes of 10 steps: several truncations per rollout

    saved = torch.load(only_run_dir(tmp_path) / "model.pt", weights_only=True)
    agent = MLPActorCritic(envs.single_observation_space, envs.single_action_space)
    agent.load_state_dict(saved["model"])
    expected = np.zeros((UPDATES, NUM_STEPS, NUM_ENVS), np.float32)
    truncated = np.zeros_like(expected)
    with torch.no_grad():
        for rollout, step, env, last in envs.truncations:
            expected[rollout, step, env] = agent(torch.from_numpy(last)[None])[1].item()
            truncated[rollout, step, env] = 1.0
    for rollout, (got_truncated, got_values) in enumerate(handed):
        np.testing.assert_array_equal(got_truncated, truncated[rollout])
        np.testing.assert_allclose(got_values, expected[rollout], rtol=1e-5, atol=1e-6)
        assert (got_values[truncated[rollout] == 1] != 0).all()  # the comparison means something
