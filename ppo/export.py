"""Export a trained agent's deterministic policy to ONNX, checked against torch before it is kept.

    python -m ppo.export RUN [-o FILE] [--best] [--with-value]

The model takes observations as the run's env gives them to the agent and returns the action as the env takes
it, so it runs with onnxruntime and gymnasium alone (docs/export.md has a dozen lines that play an episode):
- input ``obs``: a batch of observations [N, ...], float32, or uint8 for images (Atari frame stacks, main.py's
  preprocessed images); a Dict or Tuple flattened as Gymnasium's ``flatten`` does (the layout docs/export.md
  gives). A Dict or Tuple that holds images is refused for now. Observation normalization is folded
  in: the saved statistics, applied as in training.
- input ``action_mask`` (where the env gives ``info["action_mask"]``): booleans, True for an allowed action.
- output ``action``: the most likely action (argmax; a Box action's Gaussian mean clipped to the space's bounds,
  as ppo.evaluate does); with --with-value, output ``value``: the critic's estimate.

At export the model is checked by onnx's checker, then onnxruntime's actions are compared with torch's on 1,000
observations from real episodes of the env: discrete actions identical, continuous within 1e-5, or the export
fails with the largest difference and nothing is written.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
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
    """The agent's deterministic action for raw observations, in one forward pass torch.onnx can trace."""

    def __init__(self, agent: ActorCritic, normalizer: ObservationNormalizer | None, action_space: gym.Space,
                 with_value: bool, with_mask: bool) -> None:
        super().__init__()
        self.agent, self.with_value, self.with_mask = agent, with_value, with_mask
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

    def forward(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None):
        if self.normalize:
            obs = torch.clamp((obs.float() - self.mean) / self.scale, -self.clip, self.clip)
        params, value = self.agent.outputs(obs)
        action = self.agent.head.mode(masked(params, action_mask))
        if self.bounded:
            action = torch.maximum(torch.minimum(action, self.high), self.low)
        return (action, value) if self.with_value else action


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


def collect_observations(env: gym.Env, policy: DeterministicPolicy, count: int
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` observations (and action masks, where the env gives them) from real episodes, played by the
    policy itself: the inputs the exported model will see."""
    observations, masks = [], []
    obs, info = env.reset(seed=0)
    episode = 0
    with torch.no_grad():
        while len(observations) < count:
            observations.append(np.asarray(obs))
            mask = np.asarray(info["action_mask"], bool) if policy.with_mask else None
            if mask is not None:
                masks.append(mask)
            action = policy(torch.as_tensor(np.asarray(obs))[None],
                            None if mask is None else torch.as_tensor(mask)[None])
            action = (action[0] if policy.with_value else action)[0].numpy()
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                episode += 1
                obs, info = env.reset(seed=episode)
    return np.stack(observations), np.stack(masks) if masks else None


def export(policy: DeterministicPolicy, example: torch.Tensor, mask: torch.Tensor | None, path: Path) -> None:
    inputs = (example,) if mask is None else (example, mask)
    names = ["obs"] + (["action_mask"] if mask is not None else [])
    outputs = ["action"] + (["value"] if policy.with_value else [])
    # The TorchScript exporter (dynamo=False): the torch.export-based one needs onnxscript, a package more for
    # the same graph of a few layers; its deprecation warning is not the user's business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(policy, inputs, str(path), input_names=names, output_names=outputs, dynamo=False,
                          dynamic_axes={name: {0: "batch"} for name in names + outputs}, opset_version=17)


def check_against_torch(path: Path, policy: DeterministicPolicy, observations: np.ndarray, masks: np.ndarray | None,
                        discrete: bool) -> dict[str, float]:
    """onnx's checker, then onnxruntime against torch on the observations; raises RuntimeError where they differ.
    Returns milliseconds per single action of each (a batch of one, the deployment case)."""
    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx.load(str(path)))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"obs": observations, **({"action_mask": masks} if masks is not None else {})}
    theirs = session.run(None, feeds)
    with torch.no_grad():
        ours = policy(torch.as_tensor(observations), None if masks is None else torch.as_tensor(masks))
    ours = [tensor.numpy() for tensor in (ours if policy.with_value else (ours,))]
    for name, mine, other in zip(("action", "value"), ours, theirs, strict=False):
        if name == "action" and discrete:
            if not np.array_equal(mine, other):
                raise RuntimeError(f"onnxruntime's actions differ from torch's on {int((mine != other).sum())} "
                                   f"of {len(mine)} observations")
        elif not np.allclose(mine, other, rtol=0, atol=CONTINUOUS_TOLERANCE):
            raise RuntimeError(f"onnxruntime's {name} differs from torch's by up to "
                               f"{np.abs(mine - other).max():.3g} (allowed {CONTINUOUS_TOLERANCE})")
    return time_single_actions(session, policy, observations, masks)


def time_single_actions(session, policy: DeterministicPolicy, observations: np.ndarray, masks: np.ndarray | None,
                        repeats: int = 200) -> dict[str, float]:
    def per_call(function) -> float:
        function(0)
        start = time.perf_counter()
        for i in range(repeats):
            function(i % len(observations))
        return (time.perf_counter() - start) / repeats * 1e3

    def onnx_one(i: int) -> None:
        session.run(None, {"obs": observations[i:i + 1],
                           **({"action_mask": masks[i:i + 1]} if masks is not None else {})})

    def torch_one(i: int) -> None:
        with torch.no_grad():
            policy(torch.as_tensor(observations[i:i + 1]),
                   None if masks is None else torch.as_tensor(masks[i:i + 1]))

    return {"onnxruntime_ms": per_call(onnx_one), "torch_ms": per_call(torch_one)}


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
        if (loaded.payload.get("args") or {}).get("recurrent"):
            raise UsageError(f"argument RUN: {args.path!r} is a --recurrent run; exporting a policy with a hidden "
                             "state is not supported yet (play it with python -m ppo.evaluate)")
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
    observations, masks = collect_observations(env, policy, CHECK_OBSERVATIONS)
    env.close()
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:  # renamed into place once checked
        candidate = Path(scratch) / path.name
        export(policy, torch.as_tensor(observations[:2]), None if masks is None else torch.as_tensor(masks[:2]),
               candidate)
        discrete = not isinstance(env.action_space, gym.spaces.Box)
        try:
            timing = check_against_torch(candidate, policy, observations, masks, discrete)
        except RuntimeError as error:
            print(f"error: the ONNX model of {loaded.path} failed its check, nothing written: {error}",
                  file=sys.stderr)
            return 1
        candidate.replace(path)
    inputs = "obs" + (", action_mask" if masks is not None else "")
    print(f"{path}: deterministic policy of {loaded.payload['env_id']} ({loaded.path}, step "
          f"{loaded.payload.get('global_step', 0):,}); inputs {inputs} {observations.dtype.name} "
          f"[N, {', '.join(map(str, observations.shape[1:]))}]; checked on {len(observations):,} observations "
          f"against torch; one action: onnxruntime {timing['onnxruntime_ms']:.3f} ms, torch "
          f"{timing['torch_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
