"""ppo/adam.py against torch.optim.Adam: the agent computes as before, the same parameters step after step, and
interchangeable state."""

import copy
import subprocess
import sys

import gymnasium as gym
import pytest
import torch
from conftest import ROOT

from networks import MLPActorCritic
from networks.cnn import CNNActorCritic
from ppo.adam import Adam, flat_views

FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")
IDS = ["mlp-categorical", "mlp-gaussian", "cnn-channels-last"]


def agents():
    torch.manual_seed(0)
    return [MLPActorCritic(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2)),
            MLPActorCritic(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Box(-2.0, 2.0, (2,))),  # with log-std
            CNNActorCritic(FRAMES, gym.spaces.Discrete(4), device="cpu")]  # channels_last weights


def steps(optimizers, agents_, generator, learning_rates):
    """The optimizers step on the same gradients, reading the learning rate as the loop sets it."""
    for learning_rate in learning_rates:
        gradients = [torch.randn(p.shape, generator=generator) for p in agents_[0].parameters()]
        for optimizer, agent in zip(optimizers, agents_, strict=True):
            optimizer.param_groups[0]["lr"] = learning_rate
            optimizer.zero_grad()
            for parameter, gradient in zip(agent.parameters(), gradients, strict=True):
                if parameter.grad is None:
                    parameter.grad = gradient.clone()
                else:
                    parameter.grad.copy_(gradient)  # the flat gradient's views, as backward fills them
            optimizer.step()


@pytest.mark.parametrize("index", range(3), ids=IDS)
def test_the_agent_computes_the_same_on_the_flat_tensor(index):
    agent = agents()[index]
    before = copy.deepcopy(agent)
    layouts = {name: (p.shape, p.stride()) for name, p in agent.named_parameters()}
    optimizer = Adam(agent, lr=1e-3)
    (flat,) = optimizer.param_groups[0]["params"]
    total, count = sum(p.numel() for p in before.parameters()), len(list(before.parameters()))
    assert total <= flat.numel() < total + 16 * count  # each piece padded to 64 bytes at most
    for name, parameter in agent.named_parameters():
        assert (parameter.shape, parameter.stride()) == layouts[name], name  # channels_last stays so
        assert parameter.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr(), name
        assert parameter.grad.untyped_storage().data_ptr() == flat.grad.untyped_storage().data_ptr(), name
        assert torch.equal(parameter, dict(before.named_parameters())[name]), name
    obs = torch.randint(0, 256, (3, *FRAMES.shape), dtype=torch.uint8) if index == 2 else torch.randn(3, 4)
    with torch.no_grad():
        for got, expected in zip(agent(obs), before(obs), strict=True):
            assert torch.equal(got, expected)


@pytest.mark.parametrize("index", range(3), ids=IDS)
def test_steps_are_torch_adams_to_the_bit(index):
    ours, theirs = agents()[index], agents()[index]
    start = copy.deepcopy(ours)
    optimizers = [Adam(ours, lr=1e-3, eps=1e-5),
                  torch.optim.Adam(theirs.parameters(), lr=1e-3, eps=1e-5, foreach=False)]
    steps(optimizers, [ours, theirs], torch.Generator().manual_seed(1), [1e-3, 5e-4, 2.5e-4, 1e-4])
    for (name, mine), reference, initial in zip(ours.named_parameters(), theirs.parameters(), start.parameters(),
                                                strict=True):
        assert not torch.equal(mine, initial), name  # every tensor moved: the comparison means something
        # Bit for bit by construction: torch's single-tensor Adam's elementwise ops, in its order, on the same
        # numbers (correctly rounded on any CPU; pieces aligned so tails take the same kernel paths).
        assert torch.equal(mine, reference), name


def test_the_gradient_clip_sees_every_parameter():
    agent = agents()[1]
    optimizer = Adam(agent, lr=1e-3)
    for parameter in agent.parameters():
        parameter.grad.normal_()
    expected = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in agent.parameters()]))
    norm = torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], 0.5)
    torch.testing.assert_close(norm, expected)
    total = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in agent.parameters()]))
    torch.testing.assert_close(total, torch.tensor(0.5), rtol=1e-5, atol=0)


def test_state_dicts_load_into_each_other():
    """Checkpoints written with torch.optim.Adam resume with this one and the other way round."""
    ours, theirs = agents()[1], agents()[1]
    mine, reference = Adam(ours, lr=1e-3, eps=1e-5), torch.optim.Adam(theirs.parameters(), lr=1e-3, eps=1e-5)
    assert mine.state_dict()["state"] == {}  # as torch's before its first step
    steps([mine, reference], [ours, theirs], torch.Generator().manual_seed(2), [1e-3, 1e-3])

    swapped_ours, swapped_theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
    from_torch = Adam(swapped_theirs, lr=0.0)
    from_torch.load_state_dict(copy.deepcopy(reference.state_dict()))  # as through a checkpoint file
    to_torch = torch.optim.Adam(swapped_ours.parameters(), lr=0.0)
    to_torch.load_state_dict(copy.deepcopy(mine.state_dict()))
    assert from_torch.param_groups[0]["lr"] == to_torch.param_groups[0]["lr"] == 1e-3
    steps([mine, from_torch, reference, to_torch], [ours, swapped_theirs, theirs, swapped_ours],
          torch.Generator().manual_seed(3), [5e-4, 2e-4])
    for a, b, c, d in zip(ours.parameters(), swapped_theirs.parameters(), theirs.parameters(),
                          swapped_ours.parameters(), strict=True):
        for other in (b, c, d):
            assert torch.equal(a, other)
    assert mine.state_dict()["state"][0]["step"].item() == 4


def test_a_state_over_one_flat_tensor_loads_piece_by_piece():
    """Checkpoints of 2026-12-03 and before hold Adam's state over one flat tensor of all parameters."""
    agent = agents()[2]
    optimizer = Adam(agent, lr=1e-3)
    total = sum(p.numel() for p in agent.parameters())
    exp_avg, exp_avg_sq = torch.randn(total), torch.rand(total)
    optimizer.load_state_dict({"state": {0: {"step": torch.tensor(7.0), "exp_avg": exp_avg,
                                             "exp_avg_sq": exp_avg_sq}},
                               "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-5, "params": [0]}]})
    state = optimizer.state_dict()
    assert [s["step"].item() for s in state["state"].values()] == [7.0] * len(list(agent.parameters()))
    for key, flat in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        pieces = flat_views(flat, list(agent.parameters()))
        assert all(torch.equal(state["state"][i][key], piece) for i, piece in enumerate(pieces)), key


def test_a_state_dict_of_other_parameters_is_refused():
    saved = torch.optim.Adam(list(agents()[0].parameters())[:3], lr=1e-3).state_dict()
    with pytest.raises(ValueError, match="parameters"):
        Adam(agents()[0], lr=1e-3).load_state_dict(saved)


def test_constructing_and_stepping_it_leaves_torch_dynamo_unimported():
    """One reason it exists (ppo/adam.py); checked in a fresh interpreter."""
    code = ("import sys, torch; from ppo.adam import Adam; m = torch.nn.Linear(2, 2); o = Adam(m, lr=0.1); "
            "m(torch.ones(1, 2)).sum().backward(); o.step(); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
