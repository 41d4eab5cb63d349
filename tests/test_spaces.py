"""Observation spaces main.py flattens: each learns a small corridor task to near its best return."""

import gymnasium as gym
import numpy as np
import pytest

import main
from wrappers.classic import check_classic_env


class ShapedCorridor(gym.Env):
    """Walk right to the end of a corridor of 4 cells (+1 there, -0.01 a step; best return 0.97), observed through
    the space named by ``kind``."""

    LENGTH = 4

    def __init__(self, kind: str = "discrete") -> None:
        self.kind = kind
        n = self.LENGTH + 1
        self.observation_space = {
            "discrete": gym.spaces.Discrete(n),  # one-hot
            "multi_binary": gym.spaces.MultiBinary(n),  # a bit per cell
            "multi_discrete": gym.spaces.MultiDiscrete([n, 2]),  # one-hot per part
            "box_2d": gym.spaces.Box(0.0, 1.0, (n, 2), np.float32),  # reshaped
            "dict": gym.spaces.Dict({"cell": gym.spaces.Discrete(n), "noise": gym.spaces.Box(-1, 1, (2,))}),
            "tuple": gym.spaces.Tuple((gym.spaces.MultiBinary(2), gym.spaces.Discrete(n))),
        }[kind]
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def observe(self):
        p, n = self.position, self.LENGTH + 1
        grid = np.zeros((n, 2), np.float32)
        grid[p, 0] = 1.0
        return {
            "discrete": p, "multi_binary": (np.arange(n) == p).astype(np.int8),
            "multi_discrete": np.array([p, p % 2]), "box_2d": grid,
            "dict": {"cell": p, "noise": self.np_random.uniform(-1, 1, 2).astype(np.float32)},
            "tuple": (np.array([p % 2, 1], np.int8), p),
        }[self.kind]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self.observe(), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        done = self.position == self.LENGTH
        return self.observe(), 1.0 if done else -0.01, done, False, {}


gym.register("ShapedCorridor-v0", entry_point=ShapedCorridor, max_episode_steps=40)
KINDS = ["discrete", "multi_binary", "multi_discrete", "box_2d", "dict", "tuple"]


def test_each_space_is_flattened_in_a_fixed_order():
    sizes = {"discrete": 5, "multi_binary": 5, "multi_discrete": 7, "box_2d": 10, "dict": 7, "tuple": 7}
    for kind, size in sizes.items():
        observation_space, _ = check_classic_env("ShapedCorridor-v0", env_kwargs={"kind": kind})
        assert observation_space.shape == (size,), kind
    env = ShapedCorridor("dict")
    env.reset(seed=0)
    env.position = 2
    flat = gym.spaces.flatten(env.observation_space, env.observe())
    assert flat[:5].tolist() == [0, 0, 1, 0, 0]  # "cell" one-hot first: Dict keys in sorted order


@pytest.mark.parametrize("kind", KINDS)
def test_each_observation_space_learns_the_corridor(kind, tmp_path, capsys):
    assert main.main(["--environment-id", "ShapedCorridor-v0", "--env-kwargs", f"kind={kind!r}",
                      "--total-timesteps", "8192", "--num-envs", "4", "--no-progress", "--log-dir",
                      str(tmp_path)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    mean_return = float(summary.split("episodes: ")[1].split(";")[0])
    assert mean_return > 0.8, summary  # best 0.97; walking at random mostly runs out of time below 0


class ActionCorridor(ShapedCorridor):
    """The corridor driven through another action space: MultiDiscrete([2, 3]) (the first part moves, the second
    is ignored), MultiBinary(2) (bit 0 moves right, bit 1 is ignored) or a Box (right where positive)."""

    def __init__(self, actions: str = "multi_discrete") -> None:
        super().__init__("discrete")
        self.action_space = {"multi_discrete": gym.spaces.MultiDiscrete([2, 3]), "multi_binary":
                             gym.spaces.MultiBinary(2), "box": gym.spaces.Box(-1.0, 1.0, (1,), np.float32)}[actions]

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, self.action_space.dtype)), action
        if isinstance(self.action_space, gym.spaces.Box):  # right where the action is positive
            return super().step(int(action[0] > 0))
        return super().step(int(action[0]))


gym.register("ActionCorridor-v0", entry_point=ActionCorridor, max_episode_steps=40)


@pytest.mark.parametrize("actions", ["multi_discrete", "multi_binary", "box"])
def test_each_action_space_learns_the_corridor(actions, tmp_path, capsys):
    assert main.main(["--environment-id", "ActionCorridor-v0", "--env-kwargs", f"actions={actions!r}",
                      "--total-timesteps", "8192", "--num-envs", "4", "--no-progress", "--log-dir",
                      str(tmp_path)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(summary.split("episodes: ")[1].split(";")[0]) > 0.8, summary


def test_multi_categorical_and_bernoulli_heads_match_torch_distributions():
    import torch
    from torch.distributions import Bernoulli, Categorical

    from networks.heads import BernoulliHead, MultiCategoricalHead

    torch.manual_seed(0)
    head, logits = MultiCategoricalHead([2, 3]), torch.randn(6, 5)
    actions = head.sample(logits)
    assert actions.shape == (6, 2) and actions[:, 0].max() <= 1 and actions[:, 1].max() <= 2
    parts = (Categorical(logits=logits[:, :2]), Categorical(logits=logits[:, 2:]))
    torch.testing.assert_close(head.log_prob(logits, actions),
                               parts[0].log_prob(actions[:, 0]) + parts[1].log_prob(actions[:, 1]))
    torch.testing.assert_close(head.entropy(logits), parts[0].entropy() + parts[1].entropy())
    big = torch.tensor([[0.0, 2.0, 0.0, 0.0, 3.0]]).expand(20000, 5)
    frequencies = torch.bincount(head.sample(big)[:, 1], minlength=3) / 20000
    torch.testing.assert_close(frequencies, torch.softmax(big[0, 2:], -1), atol=0.015, rtol=0)

    bits, logits = BernoulliHead(3), torch.randn(6, 3)
    actions = bits.sample(logits)
    reference = Bernoulli(logits=logits)
    torch.testing.assert_close(bits.log_prob(logits, actions), reference.log_prob(actions.float()).sum(-1))
    torch.testing.assert_close(bits.entropy(logits), reference.entropy().sum(-1))
    ones = bits.sample(torch.tensor([[2.0, -1.0, 0.0]]).expand(20000, 3)).float().mean(0)
    torch.testing.assert_close(ones, torch.sigmoid(torch.tensor([2.0, -1.0, 0.0])), atol=0.015, rtol=0)
