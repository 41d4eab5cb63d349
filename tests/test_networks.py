import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal

from networks import MLPActorCritic
from networks.heads import CategoricalHead, GaussianHead
from networks.numpy_actor import numpy_sampler

OBS = gym.spaces.Box(-1, 1, (4,), np.float32)


def test_categorical_head_matches_torch_distribution():
    head = CategoricalHead(3)
    logits = torch.randn(5, 3)
    actions = torch.tensor([0, 1, 2, 1, 0])
    reference = Categorical(logits=logits)
    torch.testing.assert_close(head.log_prob(logits, actions), reference.log_prob(actions))
    torch.testing.assert_close(head.entropy(logits), reference.entropy())
    both = head.log_prob_and_entropy(logits, actions)
    assert torch.equal(both[0], head.log_prob(logits, actions)) and torch.equal(both[1], head.entropy(logits))


def test_categorical_head_samples_the_softmax():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(20000, 3)
    frequencies = torch.bincount(CategoricalHead(3).sample(logits), minlength=3) / 20000
    torch.testing.assert_close(frequencies, torch.tensor([0.7, 0.2, 0.1]), atol=0.015, rtol=0)


def test_gaussian_head_samples_mean_plus_std_times_normal_noise():
    head = GaussianHead(2)
    with torch.no_grad():
        head.log_std.copy_(torch.tensor([-0.5, 0.3]))
    mean = torch.randn(4, 2)
    torch.manual_seed(3)
    sampled = head.sample(mean)
    torch.manual_seed(3)
    torch.testing.assert_close(sampled, mean + torch.tensor([-0.5, 0.3]).exp() * torch.randn(4, 2))


def test_gaussian_head_matches_torch_distribution():
    head = GaussianHead(2)
    with torch.no_grad():
        head.log_std.copy_(torch.tensor([-0.5, 0.3]))
    mean, actions = torch.randn(4, 2), torch.randn(4, 2)
    reference = Normal(mean, head.log_std.exp())
    torch.testing.assert_close(head.log_prob(mean, actions), reference.log_prob(actions).sum(-1))
    torch.testing.assert_close(head.entropy(mean), reference.entropy().sum(-1))
    both = head.log_prob_and_entropy(mean, actions)
    assert torch.equal(both[0], head.log_prob(mean, actions)) and torch.equal(both[1], head.entropy(mean))
    samples = head.sample(torch.zeros(50000, 2))
    torch.testing.assert_close(samples.std(0), head.log_std.exp().detach(), atol=0.02, rtol=0)


def test_mlp_discrete():
    agent = MLPActorCritic(OBS, gym.spaces.Discrete(3))
    action, logprob, value = agent.act(torch.zeros(8, 4))
    assert action.shape == (8,) and action.dtype == torch.long and logprob.shape == (8,) and value.shape == (8,)
    logprob2, entropy, value2 = agent.evaluate(torch.zeros(8, 4), action)
    torch.testing.assert_close(logprob, logprob2)
    assert entropy.shape == (8,)
    # Policy output layer initialised with gain 0.01: nearly uniform at the start.
    assert entropy.min().item() == pytest.approx(np.log(3), abs=1e-3)


def test_mlp_continuous_has_state_independent_log_std():
    agent = MLPActorCritic(OBS, gym.spaces.Box(-2, 2, (2,), np.float32))
    action, logprob, value = agent.act(torch.randn(8, 4))
    assert action.shape == (8, 2) and action.dtype == torch.float32 and logprob.shape == (8,)
    assert agent.head.log_std.shape == (2,)
    assert "head.log_std" in agent.state_dict()


NETWORKS = [{}, {"hidden_sizes": (32, 16, 8), "activation": "relu", "ortho_init": False}]


@pytest.mark.parametrize("options", NETWORKS)
def test_mlp_computes_what_nn_sequential_computes_with_the_parameters_it_holds_now(options):
    agent = MLPActorCritic(OBS, gym.spaces.Discrete(3), **options)
    # New parameter objects, not copies into the old ones: a forward that kept the old tensors would miss them.
    agent.load_state_dict({name: torch.randn_like(value) for name, value in agent.state_dict().items()}, assign=True)
    obs = torch.randn(8, 4)
    logits, value = agent(obs)
    # By construction: the same F.linear and activation kernels on the same tensors.
    assert torch.equal(logits, torch.nn.Sequential.forward(agent.actor, obs))  # each layer called as a module
    assert torch.equal(value, torch.nn.Sequential.forward(agent.critic, obs).squeeze(-1))


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.Box(-2, 2, (2,), np.float32)])
def test_mlp_rollout_sample_runs_the_actor_alone_and_draws_as_act_does(action_space):
    agent = MLPActorCritic(OBS, action_space)
    obs = torch.randn(8, 4)
    torch.manual_seed(1)
    sampled = agent.sample(obs)
    torch.manual_seed(1)
    acted = agent.act(obs)[0]
    assert torch.equal(sampled, acted)


@pytest.mark.parametrize("n, obs_dtype, options", [(2, np.float32, NETWORKS[0]), (3, np.float64, NETWORKS[0]),
                                                     (3, np.float32, NETWORKS[1])])
def test_numpy_sampler_draws_the_actions_of_sample(n, obs_dtype, options):
    agent = MLPActorCritic(OBS, gym.spaces.Discrete(n), **options)
    with torch.no_grad():  # logits far from uniform, so that the actions depend on the network
        agent.actor[-1].weight.mul_(300)
    sample_numpy = numpy_sampler(agent)

    def both_samplers(seed):
        generator = np.random.default_rng(seed)
        numpy_actions, torch_actions = [], []
        for i in range(200):
            obs = generator.normal(size=((16, 5)[i % 2], 4)).astype(obs_dtype)
            state = torch.get_rng_state()
            numpy_actions.append(sample_numpy(obs))
            torch.set_rng_state(state)  # the same uniforms for torch's draw
            with torch.no_grad():
                torch_actions.append(agent.sample(torch.from_numpy(obs)).numpy())
        return np.concatenate(numpy_actions), np.concatenate(torch_actions)

    torch.manual_seed(0)
    host, reference = both_samplers(0)
    assert host.dtype == np.int64 and host.shape == (100 * 16 + 100 * 5,)
    # Discrete actions: NumPy's and torch's matmuls may differ in their last bits on some CPUs, which never
    # decides an argmax of logits this far apart plus Gumbel noise; equal actions are what the speed path needs.
    np.testing.assert_array_equal(host, reference)
    assert len(set(host.tolist())) == n
    with torch.no_grad():  # in place, as the optimizer does: the sampler made before must see it
        for parameter in agent.parameters():
            parameter.add_(torch.randn_like(parameter), alpha=0.3)
    torch.manual_seed(0)
    host_after, reference_after = both_samplers(0)
    np.testing.assert_array_equal(host_after, reference_after)
    assert not np.array_equal(host_after, host)  # same observations and noise: the change did change actions


def test_numpy_sampler_only_for_categorical_mlps_in_cpu_float32():
    assert numpy_sampler(MLPActorCritic(OBS, gym.spaces.Box(-2, 2, (2,), np.float32))) is None
    assert numpy_sampler(MLPActorCritic(OBS, gym.spaces.Discrete(2)).double()) is None


def test_orthogonal_init_gains():
    agent = MLPActorCritic(OBS, gym.spaces.Discrete(2))
    for layer, gain in [(agent.actor[0], np.sqrt(2)), (agent.actor[4], 0.01), (agent.critic[4], 1.0)]:
        weight = layer.weight.detach()
        # Orthogonal with gain g: W Wᵀ = g² I on the smaller side.
        small = weight @ weight.T if weight.shape[0] <= weight.shape[1] else weight.T @ weight
        torch.testing.assert_close(small, gain**2 * torch.eye(small.shape[0]), atol=1e-5, rtol=1e-4)
        assert torch.all(layer.bias == 0)


@pytest.mark.parametrize("space", [gym.spaces.Box(-1, 1, (2, 2)), gym.spaces.MultiDiscrete([[2, 3], [2, 2]]),
                                   gym.spaces.Text(4)])
def test_unsupported_action_space(space):
    with pytest.raises(ValueError):
        MLPActorCritic(OBS, space)


def test_network_options_shape_the_mlp():
    agent = MLPActorCritic(OBS, gym.spaces.Box(-1, 1, (3,), np.float32), hidden_sizes=(256, 128), activation="relu",
                           ortho_init=False, initial_log_std=-2.0)
    linears = [layer for layer in agent.actor if isinstance(layer, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(4, 256), (256, 128), (128, 3)]
    assert isinstance(agent.critic[1], torch.nn.ReLU) and agent.critic[-1].out_features == 1
    assert torch.equal(agent.head.log_std.data, torch.full((3,), -2.0))
    assert all((layer.bias != 0).any() for layer in linears)  # torch's default init, not zero biases
    default = MLPActorCritic(OBS, gym.spaces.Discrete(2))
    assert [name for name, _ in default.state_dict().items()][:4] == [
        "critic.0.weight", "critic.0.bias", "critic.2.weight", "critic.2.bias"]  # checkpoints of older runs load
