"""Action masks: where an env puts info["action_mask"], a masked action is never taken, in training or evaluation,
and the log-probabilities and entropy are those of the distribution over the allowed actions."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import only_run_dir
from torch.distributions import Categorical

import main
from networks.actor_critic import masked
from networks.heads import CategoricalHead, MultiCategoricalHead
from ppo import evaluate


class MaskedCorridor(gym.Env):
    """The corridor with a third action, 'jump to the end' (+1 at once), which the mask forbids everywhere except
    at odd positions (where it is allowed but only moves one cell). A masked action taken is counted."""

    taken_masked = 0

    def __init__(self, length: int = 4) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.position = 0

    def mask(self):
        return np.array([True, True, self.position % 2 == 1])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.array([0.0], np.float32), {"action_mask": self.mask()}

    def step(self, action):
        if not self.mask()[action]:
            MaskedCorridor.taken_masked += 1
            self.position = self.length  # what taking it would win: a learner ignoring masks would find it
        else:
            self.position = max(0, self.position + (-1 if action == 0 else 1))
        done = self.position == self.length
        obs = np.array([self.position / self.length], np.float32)
        return obs, 1.0 if done else -0.01, done, False, {"action_mask": self.mask()}


gym.register("MaskedCorridor-v0", entry_point=MaskedCorridor, max_episode_steps=40)


@pytest.mark.parametrize("flags", [[], ["--recurrent", "lstm"]], ids=["feed-forward", "recurrent"])
def test_a_masked_action_is_never_taken_over_a_whole_run(flags, tmp_path, capsys):
    MaskedCorridor.taken_masked = 0
    assert main.main(["--environment-id", "MaskedCorridor-v0", "--total-timesteps", "8192", "--no-progress",
                      "--log-dir", str(tmp_path), *flags]) == 0
    assert MaskedCorridor.taken_masked == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(summary.split("episodes: ")[1].split(";")[0]) > 0.8, summary  # it learned within the mask
    assert evaluate.main([str(only_run_dir(tmp_path)), "--episodes", "20", "--no-progress"]) == 0
    assert MaskedCorridor.taken_masked == 0


def test_the_numpy_actor_and_torch_honour_the_mask_alike(tmp_path, monkeypatch):
    """A run with the NumPy rollout step and one with the torch forward: the same weights, no masked action."""
    import ppo.rollout

    flags = ["--environment-id", "MaskedCorridor-v0", "--total-timesteps", "1024", "--no-progress"]
    MaskedCorridor.taken_masked = 0
    assert main.main([*flags, "--log-dir", str(tmp_path / "numpy")]) == 0
    monkeypatch.setattr(ppo.rollout, "numpy_sampler", lambda agent: None)
    assert main.main([*flags, "--log-dir", str(tmp_path / "torch")]) == 0
    assert MaskedCorridor.taken_masked == 0
    weights = [torch.load(only_run_dir(tmp_path / name) / "model.pt", weights_only=True)["model"]
               for name in ("numpy", "torch")]
    # The same discrete actions either way (the logits' last bits never decide an argmax drawn from this
    # many-decimal noise), then the same update code: the same bits.
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


@pytest.mark.parametrize("head, mask", [
    (CategoricalHead(4), torch.tensor([[True, False, True, False], [False, False, False, True]])),
    (MultiCategoricalHead([2, 3]), torch.tensor([[True, False, True, True, False], [True, True, False, False, True]])),
])
def test_masked_distributions_are_those_over_the_allowed_actions(head, mask):
    torch.manual_seed(0)
    logits = torch.randn(2, head.num_outputs)
    limited = masked(logits, mask)
    actions = torch.stack([head.sample(limited) for _ in range(500)])
    parts = head.sizes if isinstance(head, MultiCategoricalHead) else [head.num_outputs]
    offsets = np.cumsum([0, *parts[:-1]])
    for part, offset in enumerate(offsets):
        chosen = actions if actions.dim() == 2 else actions[..., part]
        assert mask.gather(1, (chosen + int(offset)).T).all()  # never a masked action
    reference = [Categorical(logits=piece.masked_fill(~m, -float("inf")))
                 for piece, m in zip(logits.split(parts, -1), mask.split(parts, -1), strict=True)]
    action = actions[0]
    pieces = [action] if action.dim() == 1 else action.unbind(-1)
    log_prob, entropy = head.log_prob_and_entropy(limited, action)
    torch.testing.assert_close(log_prob, sum(d.log_prob(a) for d, a in zip(reference, pieces, strict=True)))
    torch.testing.assert_close(entropy, sum(d.entropy() for d in reference))
