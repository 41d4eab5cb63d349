"""The optimizer's one flat parameter: the agent computes and learns as it would with one tensor per layer."""

import copy

import gymnasium as gym
import pytest
import torch

from networks import MLPActorCritic
from networks.cnn import NatureCNNActorCritic
from ppo.buffer import Batch
from ppo.config import TrainConfig
from ppo.flat_parameters import flat_optimizer_state, flat_views
from ppo.train import clip_gradients_, make_optimizer, optimizer_step, update_policy

BOX = gym.spaces.Box(-1.0, 1.0, (3,))
FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")


def agents():
    torch.manual_seed(0)
    return [MLPActorCritic(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2)),
            MLPActorCritic(BOX, gym.spaces.Box(-2.0, 2.0, (2,))),  # with the Gaussian head's log-std
            NatureCNNActorCritic(FRAMES, gym.spaces.Discrete(4), channels_last=True)]


def batch_for(agent, size=32):
    generator = torch.Generator().manual_seed(1)
    if isinstance(agent, NatureCNNActorCritic):
        obs = torch.randint(0, 256, (size, *FRAMES.shape), dtype=torch.uint8, generator=generator)
    else:
        obs = torch.randn(size, agent.actor[0].in_features, generator=generator)
    with torch.no_grad():
        params, values = agent(obs)
        actions = agent.head.sample(params)
        logprobs = agent.head.log_prob(params, actions)
    returns = values + torch.randn(size, generator=generator)
    return Batch(obs, actions, logprobs + 0.05 * torch.randn(size, generator=generator), values,
                 torch.randn(size, generator=generator), returns)


@pytest.mark.parametrize("index", range(3), ids=["categorical-mlp", "gaussian-mlp", "cnn-channels-last"])
def test_flattened_agent_computes_the_same_and_keeps_each_layout(index):
    agent = agents()[index]
    before = copy.deepcopy(agent)
    shapes = {name: (p.shape, p.stride()) for name, p in agent.named_parameters()}
    optimizer = make_optimizer(agent, 1e-3)
    (flat,) = optimizer.param_groups[0]["params"]
    assert flat.numel() == sum(p.numel() for p in before.parameters())
    storage, gradients = flat.untyped_storage().data_ptr(), flat.grad.untyped_storage().data_ptr()
    for name, parameter in agent.named_parameters():
        assert (parameter.shape, parameter.stride()) == shapes[name], name  # channels_last stays channels_last
        assert parameter.untyped_storage().data_ptr() == storage, name
        assert parameter.grad.untyped_storage().data_ptr() == gradients, name
        torch.testing.assert_close(parameter, dict(before.named_parameters())[name], rtol=0, atol=0)
    obs = batch_for(before).obs
    with torch.no_grad():
        for got, expected in zip(agent(obs), before(obs), strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


# The CNN gets one minibatch step: its gradient norm over 1.7M numbers differs in the 5th digit between one
# float32 sum and a sum per tensor, and Adam turns such differences in near-zero gradients into visible ones
# within a few steps (both are as far from the float64 norm).
@pytest.mark.parametrize("index,updates,minibatches", [(0, 3, 2), (1, 3, 2), (2, 1, 1)],
                         ids=["categorical-mlp", "gaussian-mlp", "cnn-channels-last"])
def test_updates_match_adam_and_clipping_over_each_parameter_tensor(index, updates, minibatches):
    """The reference: torch's Adam over the agent's own parameter tensors, each with its own gradient."""
    agent = agents()[index]
    reference = copy.deepcopy(agent)
    initial = copy.deepcopy(agent)
    batch = batch_for(agent)
    cfg = TrainConfig(num_envs=1, num_steps=32, num_minibatches=minibatches, num_epochs=minibatches,
                      learning_rate=1e-3, gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.01, vf_coef=0.5,
                      max_grad_norm=0.5, total_timesteps=32, seed=1)
    flat_optimizer = make_optimizer(agent, 1e-3)
    per_tensor = torch.optim.Adam(reference.parameters(), lr=1e-3, eps=1e-5)
    for _ in range(updates):
        torch.manual_seed(2)  # the same minibatches for both
        got = update_policy(agent, flat_optimizer, batch, cfg)
        torch.manual_seed(2)
        expected = update_policy(reference, per_tensor, batch, cfg)
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)
    for (name, parameter), old in zip(reference.named_parameters(), initial.parameters(), strict=True):
        assert not torch.equal(parameter, old), name  # every tensor learned: the comparison means something
        torch.testing.assert_close(dict(agent.named_parameters())[name], parameter, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_with_adam_state_per_tensor_resumes_into_the_flat_parameter():
    """Checkpoints written before the parameters were flattened: each tensor's moments land in its own piece."""
    agent = agents()[2]
    old_style = copy.deepcopy(agent)
    old_optimizer = torch.optim.Adam(old_style.parameters(), lr=1e-3, eps=1e-5, fused=True)
    for parameter in old_style.parameters():
        parameter.grad = torch.randn_like(parameter)
    old_optimizer.step()
    saved = old_optimizer.state_dict()

    optimizer = make_optimizer(agent, 1e-3)
    optimizer.load_state_dict(flat_optimizer_state(saved, agent))
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    assert float(state["step"]) == 1
    for key in ("exp_avg", "exp_avg_sq"):
        for piece, parameter in zip(flat_views(state[key], list(agent.parameters())), old_style.parameters(),
                                    strict=True):
            torch.testing.assert_close(piece, old_optimizer.state[parameter][key], rtol=0, atol=0)


@pytest.mark.parametrize("scale", [10.0, 1e-3], ids=["clipped", "under-the-limit"])
def test_clipping_the_flat_gradient_is_clip_grad_norm(scale):
    generator = torch.Generator().manual_seed(3)
    ours, theirs = (torch.nn.Parameter(torch.zeros(10_000)) for _ in range(2))
    ours.grad = scale * torch.randn(10_000, generator=generator)
    theirs.grad = ours.grad.clone()
    clip_gradients_([ours], 0.5)
    torch.nn.utils.clip_grad_norm_([theirs], 0.5)
    assert torch.equal(ours.grad, theirs.grad)
    norm = torch.linalg.vector_norm(ours.grad).item()
    assert norm == pytest.approx(0.5, rel=1e-5) if scale > 1 else norm < 0.5


def test_the_functional_adam_step_is_optimizer_step():
    ours, theirs = (make_optimizer(agents()[0], 1e-3) for _ in range(2))
    flats = [optimizer.param_groups[0]["params"][0] for optimizer in (ours, theirs)]
    assert torch.equal(*flats)
    generator = torch.Generator().manual_seed(4)
    for update in range(3):
        step = optimizer_step(ours)
        assert (step == ours.step) == (update == 0)  # the first update creates Adam's state through step()
        for learning_rate in (1e-3, 3e-4):  # read at each step, as the loop anneals it between updates
            for optimizer in (ours, theirs):
                optimizer.param_groups[0]["lr"] = learning_rate
            gradient = torch.randn(flats[0].shape, generator=generator)
            for flat in flats:
                flat.grad.copy_(gradient)
            step()
            theirs.step()
            assert torch.equal(*flats)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(ours.state[flats[0]][key], theirs.state[flats[1]][key]), key
    assert ours.state[flats[0]]["step"].item() == 6


def test_other_optimizers_step_themselves():
    for make in (lambda p: torch.optim.SGD(p, lr=0.1), lambda p: torch.optim.Adam(p, lr=0.1),
                 lambda p: torch.optim.Adam(p, lr=0.1, fused=True, amsgrad=True)):
        parameter = torch.nn.Parameter(torch.ones(3))
        parameter.grad = torch.ones(3)
        optimizer = make([parameter])
        optimizer.step()  # state exists
        assert optimizer_step(optimizer) == optimizer.step
