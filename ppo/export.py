"""Export a trained agent's deterministic policy to ONNX, checked against torch before it is kept.

    python -m ppo.export RUN [-o FILE] [--best] [--with-value]

The model takes observations as the run's env gives them to the agent and returns the action as the env takes
it, so it runs with onnxruntime and gymnasium alone (docs/export.md has a dozen lines that play an episode):
- input ``obs``: a batch of observations [N, ...], float32, or uint8 for images (Atari frame stacks, main.py's
  preprocessed images); a Dict or Tuple flattened as Gymnasium's ``flatten`` does (the layout docs/export.md
  gives). A Dict or Tuple that holds images is refused for now. Observation normalization is folded
  in: the saved statistics, applied as in training.
- input ``state`` (a --recurrent run): the hidden state [k, N, size], float32 (k = 2 for an LSTM, h then c; 1 for
  a GRU); zeros where an episode starts, else the previous step's ``state_out``.
- input ``action_mask`` (where the env gives ``info["action_mask"]``): booleans, True for an allowed action.
- output ``action``: the most likely action (argmax; a Box action's Gaussian mean clipped to the space's bounds,
  as ppo.evaluate does); with --with-value, output ``value``: the critic's estimate; with ``state``, output
  ``state_out``: the state after the step.

At export the model is checked by onnx's checker, then onnxruntime's actions are compared with torch's on 1,000
observations from real episodes of the env (a recurrent policy step by step, each side carrying its own state):
discrete actions identical, continuous within 1e-5, or the export fails with the largest difference and nothing
is written.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from networks.actor_critic import ActorCritic, masked
from networks.multi_input import MultiInputActorCritic
from ppo import checkpoint
from ppo.cli import OneLineParser, UsageError, checked
from ppo.evaluate import best_model_path, make_env_and_agent
from ppo.normalize import ObservationNormalizer

CHECK_OBSERVATIONS = 1_000
CONTINUOUS_TOLERANCE = 1e-5
INSTALL = "pip install -r requirements-export.txt"


class DeterministicPolicy(nn.Module):
    """The agent's deterministic action for raw observations, in one forward pass torch.onnx can trace: inputs
    ``input_names`` (obs[, state][, action_mask]), outputs ``output_names`` (action[, value][, state_out]). A
    recurrent agent takes its state [k, N, size] (k = 2 for an LSTM: h and c; 1 for a GRU) and gives the state after
    the step; the caller carries it and zeroes it where an episode starts."""

    def __init__(self, agent: ActorCritic, normalizer: ObservationNormalizer | None, action_space: gym.Space,
                 with_value: bool, with_mask: bool) -> None:
        super().__init__()
        self.agent, self.with_value, self.with_mask = agent, with_value, with_mask
        self.recurrent = getattr(agent, "recurrent", False)
        self.normalize = normalizer is not None
        if normalizer is not None:  # float32 copies of the saved statistics (ObservationNormalizer's formula)
            self.register_buffer("mean", torch.as_tensor(normalizer.rms.mean, dtype=torch.float32))
            self.register_buffer("scale", torch.as_tensor(np.sqrt(normalizer.rms.var + normalizer.epsilon),
                                                          dtype=torch.float32))
            self.clip = float(normalizer.clip)
        self.bounded = isinstance(action_space, gym.spaces.Box)
        if self.bounded:
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
        self.input_names = ["obs"] + ["state"] * self.recurrent + ["action_mask"] * with_mask
        self.output_names = ["action"] + ["value"] * with_value + ["state_out"] * self.recurrent

    def forward(self, obs: torch.Tensor, *state_and_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = state_and_mask[0] if self.recurrent else None
        action_mask = state_and_mask[-1] if self.with_mask else None
        if self.normalize:
            obs = torch.clamp((obs.float() - self.mean) / self.scale, -self.clip, self.clip)
        if self.recurrent:
            params, value, state = self.agent.advance(obs, state)
        else:
            params, value = self.agent.outputs(obs)
        action = self.agent.head.mode(masked(params, action_mask))
        if self.bounded:
            action = torch.maximum(torch.minimum(action, self.high), self.low)
        return (action, *(value,) * self.with_value, *(state,) * self.recurrent)

    def zero_state(self) -> np.ndarray | None:
        """The state of one env at an episode's start (None without memory)."""
        return self.agent.initial_state(1, "cpu").numpy() if self.recurrent else None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Torch's outputs for the inputs onnxruntime would be fed."""
        with torch.no_grad():
            outputs = self(*(torch.as_tensor(feeds[name]) for name in self.input_names))
        return dict(zip(self.output_names, (output.numpy() for output in outputs), strict=True))


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m ppo.export",
                           description="Export a trained agent's deterministic policy to ONNX, checked by "
                                       "onnxruntime against torch")
    parser.add_argument("path", metavar="RUN", help="a run directory (its model.pt) or a checkpoint file")
    parser.add_argument("-o", "--output", default=None,
                        help="the .onnx file to write (default: policy.onnx in the run directory, "
                             "best_policy.onnx with --best)")
    parser.add_argument("--best", action="store_true",
                        help="export the run's best_model.pt (evaluation during training) (default: False)")
    parser.add_argument("--with-value", action="store_true",
                        help="a second output, the critic's value of each observation (default: False)")
    return parser


def onnx_runner(session) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    names = [given.name for given in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(None, feeds), strict=True))


def inputs(policy: DeterministicPolicy, obs: np.ndarray, mask: np.ndarray | None,
           state: np.ndarray | None) -> dict[str, np.ndarray]:
    return {"obs": obs, **({"state": state} if policy.recurrent else {}),
            **({"action_mask": mask} if policy.with_mask else {})}


@dataclass
class Observations:
    """Consecutive observations of real episodes [count, ...], their action masks (where the env gives them) and
    where each episode starts (the state is zeroed there)."""

    obs: np.ndarray
    masks: np.ndarray | None
    starts: np.ndarray

    def at(self, policy: DeterministicPolicy, index: int, state: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return inputs(policy, self.obs[index:index + 1],
                      None if self.masks is None else self.masks[index:index + 1], state)


def collect_observations(env: gym.Env, policy: DeterministicPolicy, count: int) -> Observations:
    """``count`` observations from real episodes, played by the policy itself: the inputs the exported model will
    see."""
    observations, masks, starts = [], [], []
    obs, info = env.reset(seed=0)
    episode, start, state = 0, True, policy.zero_state()
    while len(observations) < count:
        observations.append(np.asarray(obs))
        starts.append(start)
        mask = np.asarray(info["action_mask"], bool) if policy.with_mask else None
        if mask is not None:
            masks.append(mask)
        outputs = policy.run(inputs(policy, np.asarray(obs)[None], None if mask is None else mask[None], state))
        state = outputs.get("state_out")
        obs, _, terminated, truncated, info = env.step(outputs["action"][0])
        start = terminated or truncated
        if start:
            episode += 1
            obs, info = env.reset(seed=episode)
            state = policy.zero_state()
    return Observations(np.stack(observations), np.stack(masks) if masks else None, np.array(starts))


def export(policy: DeterministicPolicy, observations: Observations, path: Path) -> None:
    example = {name: torch.as_tensor(value) for name, value in inputs(
        policy, observations.obs[:2], None if observations.masks is None else observations.masks[:2],
        None if not policy.recurrent else np.repeat(policy.zero_state(), 2, axis=1)).items()}
    batch_axis = {"state": 1, "state_out": 1}  # the state is [k, N, size]; every other input and output [N, ...]
    # The TorchScript exporter (dynamo=False): the torch.export-based one needs onnxscript, a package more for
    # the same graph of a few layers; its deprecation warning is not the user's business.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # nn.LSTM/GRU check sizes, constants of the model
        # "define the initial states (h0/c0) as inputs of the model" to vary the batch: they are (state)
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1", UserWarning)
        torch.onnx.export(policy, tuple(example[name] for name in policy.input_names), str(path),
                          input_names=policy.input_names, output_names=policy.output_names, dynamo=False,
                          dynamic_axes={name: {batch_axis.get(name, 0): "batch"}
                                        for name in policy.input_names + policy.output_names}, opset_version=17)


def outputs_on(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], policy: DeterministicPolicy,
               observations: Observations) -> dict[str, np.ndarray]:
    """``run``'s outputs (torch's or onnxruntime's) on all the observations: in one batch, or for a recurrent
    policy step by step, each runner carrying its own state, zeroed where an episode starts."""
    if not policy.recurrent:
        return run(inputs(policy, observations.obs, observations.masks, None))
    steps, state = [], policy.zero_state()
    for index, start in enumerate(observations.starts):
        state = policy.zero_state() if start else state
        outputs = run(observations.at(policy, index, state))
        state = outputs.pop("state_out")
        steps.append(outputs)
    return {name: np.concatenate([step[name] for step in steps]) for name in steps[0]}


def check_against_torch(path: Path, policy: DeterministicPolicy, observations: Observations,
                        discrete: bool) -> dict[str, float]:
    """onnx's checker, then onnxruntime against torch on the observations; raises RuntimeError where they differ.
    Returns milliseconds per single action of each (a batch of one, the deployment case)."""
    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx.load(str(path)))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_run = onnx_runner(session)
    theirs, ours = outputs_on(onnx_run, policy, observations), outputs_on(policy.run, policy, observations)
    for name, mine in ours.items():
        other = theirs[name]
        if name == "action" and discrete:
            if not np.array_equal(mine, other):
                raise RuntimeError(f"onnxruntime's actions differ from torch's on {int((mine != other).sum())} "
                                   f"of {len(mine)} observations")
        elif not np.allclose(mine, other, rtol=0, atol=CONTINUOUS_TOLERANCE):
            raise RuntimeError(f"onnxruntime's {name} differs from torch's by up to "
                               f"{np.abs(mine - other).max():.3g} (allowed {CONTINUOUS_TOLERANCE})")
    return {"onnxruntime_ms": per_action_ms(onnx_run, policy, observations),
            "torch_ms": per_action_ms(policy.run, policy, observations)}


def per_action_ms(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], policy: DeterministicPolicy,
                  observations: Observations, repeats: int = 200) -> float:
    feeds = [observations.at(policy, index, policy.zero_state()) for index in range(repeats)]
    run(feeds[0])
    start = time.perf_counter()
    for one in feeds:
        run(one)
    return (time.perf_counter() - start) / repeats * 1e3


def output_path(args, loaded: checkpoint.Loaded) -> Path:
    if args.output is None:
        return loaded.run_dir / ("best_policy.onnx" if args.best else "policy.onnx")
    path = Path(args.output)
    if not path.parent.is_dir():
        raise UsageError(f"argument -o/--output: the directory {str(path.parent)!r} does not exist")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def check():
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise UsageError(f"ppo.export needs onnx and onnxruntime: {INSTALL}") from None
        loaded = checkpoint.load(best_model_path(args.path) if args.best else args.path, "argument RUN",
                                 prefer_model=True)
        return loaded, output_path(args, loaded)

    loaded, path = checked(parser, check)
    env, agent, normalizer = checked(parser, lambda: make_env_and_agent(loaded.payload, None, torch.device("cpu")))
    if isinstance(agent, MultiInputActorCritic):
        env.close()  # its packed row is cut into float32 parts by a bit cast, which ONNX's opset 17 lacks
        parser.error(f"argument RUN: {loaded.payload['env_id']!r} observes a Dict or Tuple with images; exporting "
                     "such a policy is not supported yet (flat, image and Atari policies are)")
    _, info = env.reset(seed=0)
    with_mask = agent.head.takes_masks and "action_mask" in info
    policy = DeterministicPolicy(agent, normalizer, env.action_space, args.with_value, with_mask).eval()
    observations = collect_observations(env, policy, CHECK_OBSERVATIONS)
    env.close()
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:  # renamed into place once checked
        candidate = Path(scratch) / path.name
        export(policy, observations, candidate)
        discrete = not isinstance(env.action_space, gym.spaces.Box)
        try:
            timing = check_against_torch(candidate, policy, observations, discrete)
        except RuntimeError as error:
            print(f"error: the ONNX model of {loaded.path} failed its check, nothing written: {error}",
                  file=sys.stderr)
            return 1
        candidate.replace(path)
    shape = ", ".join(map(str, observations.obs.shape[1:]))
    state = f", state float32 [{policy.zero_state().shape[0]}, N, {agent.size}]" if policy.recurrent else ""
    mask = ", action_mask" if policy.with_mask else ""
    print(f"{path}: deterministic policy of {loaded.payload['env_id']} ({loaded.path}, step "
          f"{loaded.payload.get('global_step', 0):,}); inputs obs {observations.obs.dtype.name} [N, {shape}]{state}"
          f"{mask}; checked on {len(observations.obs):,} observations against torch; one action: onnxruntime "
          f"{timing['onnxruntime_ms']:.3f} ms, torch {timing['torch_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
