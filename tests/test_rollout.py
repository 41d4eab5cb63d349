"""What a rollout hands the update: for each stored step, the log-probability of its action and the value of its
observation under the parameters the rollout ran with, whether the network computes them per step (shared
trunk) or in one batched pass after the rollout (separate actor and critic)."""

import copy

import pytest
import torch
from conftest import only_run_dir
from torch.distributions import Categorical, Normal

import main
import main_atari
import ppo.rollout
import ppo.train
from networks import MLPActorCritic
from networks.cnn import CNNActorCritic
from networks.heads import CategoricalHead

FLAGS = ["--num-envs", "2", "--num-steps-collected", "16", "--num-mini-batches", "2", "--num-epochs", "1",
         "--total-timesteps", "32", "--no-progress"]


@pytest.mark.parametrize("entry,env_id,batched", [
    (main.main, "CartPole-v1", True),  # Discrete actions
    (main.main, "Pendulum-v1", True),  # Box actions, normalized observations
    (main_atari.main, "ALE/Breakout-v5", False),
])
def test_stored_log_probs_and_values_belong_to_the_stored_steps(entry, env_id, batched, tmp_path, monkeypatch):
    seen = []
    update_policy = ppo.train.update_policy

    def spy(agent, optimizer, batch, cfg, world):
        seen.append((copy.deepcopy(agent), copy.deepcopy(batch)))  # before the update changes the parameters
        return update_policy(agent, optimizer, batch, cfg, world)

    monkeypatch.setattr(ppo.train, "update_policy", spy)
    assert entry(["--environment-id", env_id, *FLAGS, "--log-dir", str(tmp_path / "runs")]) == 0
    (agent, batch), = seen
    assert agent.separate_critic is batched
    assert isinstance(agent, MLPActorCritic if batched else CNNActorCritic)
    assert len(batch.obs) == 32

    with torch.no_grad():
        for i in range(len(batch.obs)):  # one step at a time, the distribution from torch.distributions
            params, value = agent(batch.obs[i:i + 1])
            if isinstance(agent.head, CategoricalHead):
                logprob = Categorical(logits=params[0]).log_prob(batch.actions[i])
            else:
                logprob = Normal(params[0], agent.head.log_std.exp()).log_prob(batch.actions[i]).sum()
            torch.testing.assert_close(batch.logprobs[i], logprob, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batch.values[i], value[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("flags, torch_sampling", [([], False), (["--bf16"], True)])
def test_cpu_rollouts_sample_in_numpy_except_under_bf16(flags, torch_sampling, tmp_path, monkeypatch):
    """The NumPy sampler is what a float32 CPU rollout runs; under --bf16 the actions must come from the same
    bfloat16 forward as the stored log-probabilities, so from torch."""
    calls = []
    sample = MLPActorCritic.sample
    monkeypatch.setattr(MLPActorCritic, "sample", lambda *args: calls.append(1) or sample(*args))
    assert main.main(["--environment-id", "CartPole-v1", *FLAGS, *flags, "--log-dir", str(tmp_path / "runs")]) == 0
    assert len(calls) == (16 if torch_sampling else 0)


def test_frames_stored_channels_last_train_the_same_weights(tmp_path, monkeypatch):
    # The CPU CNN's rollout buffer keeps frames in the convolutions' layout (NHWC) and gathers minibatches as
    # such: training must come out bit for bit as with frames stored as the env gives them (NCHW), including
    # the update after dropped reset steps (a lost life on the ale-vector backend).
    batches = []
    update_policy = ppo.train.update_policy

    def spy(agent, optimizer, batch, cfg, world):
        batches.append((len(batch.obs), batch.obs.is_contiguous()))
        return update_policy(agent, optimizer, batch, cfg, world)

    monkeypatch.setattr(ppo.train, "update_policy", spy)
    flags = ["--environment-id", "ALE/Breakout-v5", "--num-envs", "2", "--num-steps-collected", "64",
             "--num-mini-batches", "2", "--num-epochs", "2", "--total-timesteps", "256", "--no-progress"]
    assert main_atari.main([*flags, "--log-dir", str(tmp_path / "nhwc")]) == 0
    buffer_class = ppo.train.RolloutBuffer

    def as_given(*args, obs_memory_format=None, **kwargs):  # NCHW storage whatever the network asks for
        return buffer_class(*args[:7], **kwargs)

    monkeypatch.setattr(ppo.train, "RolloutBuffer", as_given)
    assert main_atari.main([*flags, "--log-dir", str(tmp_path / "nchw")]) == 0
    assert [contiguous for _, contiguous in batches] == [False, False, True, True]
    assert min(size for size, _ in batches) < 128  # reset steps were dropped
    assert [size for size, _ in batches[:2]] == [size for size, _ in batches[2:]]
    nhwc, nchw = (torch.load(only_run_dir(tmp_path / name) / "model.pt", weights_only=True)["model"]
                  for name in ("nhwc", "nchw"))
    assert nhwc.keys() == nchw.keys()
    # By construction: the network converts its input to channels_last either way, so the convolutions see the
    # same bytes in the same layout; only the buffer's storage differs.
    assert all(torch.equal(nhwc[key], nchw[key]) for key in nhwc)


def test_numpy_and_torch_rollouts_train_the_same_weights(tmp_path, monkeypatch):
    """The NumPy actor step is a speed path only: a CartPole run trains to the same weights, bit for bit, as with
    the actor's torch forward (SampleThenEvaluate)."""
    flags = ["--environment-id", "CartPole-v1", "--num-envs", "4", "--num-steps-collected", "32",
             "--total-timesteps", "1024", "--no-progress"]
    assert main.main([*flags, "--log-dir", str(tmp_path / "numpy")]) == 0
    monkeypatch.setattr(ppo.rollout, "numpy_sampler", lambda agent: None)
    assert main.main([*flags, "--log-dir", str(tmp_path / "torch")]) == 0
    weights = [torch.load(only_run_dir(tmp_path / name) / "model.pt", weights_only=True)["model"]
               for name in ("numpy", "torch")]
    # The same discrete actions (an argmax of logits plus Gumbel noise: last-bit differences between NumPy's and
    # torch's matmul do not decide it), then the same torch update: the same bits.
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
