"""Command-line flags shared by main.py and main_atari.py, and the checks on them.

The original README's two usage texts are the contract: every flag keeps its name, type, default and help
sentence. Each script therefore lists its own help sentences and default *texts* ("2.5e-4", "1e7") in a table;
the parsed default is that text run through the flag's type, so the help line and the value can never drift apart.
Every flag is added with its resume rule (``KEPT``, ``EXTENDABLE`` or ``FROM_COMMAND_LINE``): the one place that decides
what a resumed run may change. All validation that needs no environment happens here, before anything is created.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ppo.cli import (
    OneLineParser,
    UsageError,
    check_directory,
    count,
    keyword_argument,
    log_std,
    non_negative_float,
    positive_float,
    seed_number,
    unit_interval,
)

# The type of every original flag, shared by both scripts (names and types are identical in both usages).
FLAG_TYPES: dict[str, Callable[[str], Any]] = {
    "--environment-id": str,
    "--num-envs": count,
    "--num-steps-collected": count,
    "--num-mini-batches": count,
    "--num-epochs": count,
    "--learning-rate": positive_float,
    "--total-timesteps": count,
    "--gae-gamma": unit_interval,
    "--gae-lambda": unit_interval,
    "--clip-coeff": positive_float,
    "--ent-loss-coeff": non_negative_float,
    "--value-loss-coeff": non_negative_float,
    "--max-gradient": positive_float,
    "--seed": seed_number,
}
SWITCHES = ("--deterministic-torch", "--use-gpu")


@dataclass(frozen=True)
class ScriptFlags:
    """One script's contract: description, and per original flag (default text, help sentence)."""

    prog: str
    description: str
    flags: dict[str, tuple[str, str]]
    exp_name: str
    vec_backends: tuple[str, ...] = ("sync", "async")  # the first is the default
    cpu_threads: int | None = None  # torch's intra-op threads; None: torch's default (one per core)
    cpu_threads_why: str = "torch's own choice, one per core"


CLASSIC = ScriptFlags(
    prog="main.py",
    description="PPO Classic Control Training Script",
    exp_name="ppo",
    vec_backends=("auto", "native", "sync", "async"),
    # One thread: the 64-64 MLP's ops are smaller than the cost of waking a second one (docs/performance.md).
    cpu_threads=1,
    cpu_threads_why="1: the small MLP's ops take microseconds, less than waking a second thread costs; more threads "
                    "pay from minibatches of about 2,000 samples",
    flags={
        "--environment-id": ("CartPole-v1", "Gym environment id to train on"),
        "--num-envs": ("4", "number of parallel environments to use"),
        "--num-steps-collected": ("128", "number of steps to collect per environment"),
        "--num-mini-batches": ("4", "number of mini-batches to split each rollout into for training"),
        "--num-epochs": ("4", "number of epochs to train on each mini-batch"),
        "--learning-rate": ("2.5e-4", "learning rate"),
        "--total-timesteps": ("25000", "total number of timesteps to train for"),
        "--gae-gamma": ("0.99", "discount factor for Generalized Advantage Estimation"),
        "--gae-lambda": ("0.95", "Lambda parameter for Generalized Advantage Estimation"),
        "--clip-coeff": ("0.2", "Clipping parameter for PPO loss function"),
        "--ent-loss-coeff": ("0.01", "Weighting parameter for entropy loss term in PPO loss function"),
        "--value-loss-coeff": ("0.5", "Weighting parameter for value loss term in PPO loss function"),
        "--max-gradient": ("0.5", "Maximum gradient norm for gradient clipping"),
        "--seed": ("1", "random seed"),
        "--deterministic-torch": ("False", "whether to use deterministic torch operations"),
        "--use-gpu": ("False", "whether to use a GPU"),
    },
)

ATARI = ScriptFlags(
    prog="main_atari.py",
    description="PPO Atari Training Script",
    exp_name="ppo_atari",
    flags={
        "--environment-id": ("ALE/Assault-v5", "environment ID"),
        "--num-envs": ("8", "number of environments"),
        "--num-steps-collected": ("128", "number of steps collected per rollout"),
        "--num-mini-batches": ("4", "number of mini-batches"),
        "--num-epochs": ("4", "number of epochs per training phase"),
        "--learning-rate": ("2.5e-4", "learning rate"),
        "--total-timesteps": ("1e7", "total number of timesteps"),
        "--gae-gamma": ("0.99", "GAE gamma parameter"),
        "--gae-lambda": ("0.95", "GAE lambda parameter"),
        "--clip-coeff": ("0.1", "clipping coefficient"),
        "--ent-loss-coeff": ("0.01", "entropy loss coefficient"),
        "--value-loss-coeff": ("0.5", "value loss coefficient"),
        "--max-gradient": ("0.5", "maximum gradient value"),
        "--seed": ("1", "random seed"),
        "--deterministic-torch": ("False", "whether to set deterministic torch behavior"),
        "--use-gpu": ("False", "whether to use GPU"),
    },
)


# A resumed run keeps the saved value of a KEPT flag (what is learned and how: a different value is an error) and
# takes a FROM_COMMAND_LINE flag from the resuming command (where it runs and what it prints or writes). An
# EXTENDABLE flag is kept, or raised past the saved step to extend the run (--total-timesteps).
KEPT, FROM_COMMAND_LINE, EXTENDABLE = "kept", "from the command line", "kept, or raised to extend the run"


class TrainingParser(OneLineParser):
    """The parser of a training script: every flag is added with ``flag``, which records its resume rule."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_rules: dict[str, str] = {}  # flag destination -> KEPT, EXTENDABLE or FROM_COMMAND_LINE

    def flag(self, group: Any, *names: str, resume: str, **kwargs: Any) -> None:
        """``group.add_argument(*names, **kwargs)`` (``group``: this parser or one of its groups)."""
        action = group.add_argument(*names, **kwargs)
        self.resume_rules[action.dest] = resume

    def kept_on_resume(self) -> list[str]:
        """Flags whose saved values a resumed run keeps (EXTENDABLE ones included, unless raised)."""
        return [dest for dest, rule in self.resume_rules.items() if rule != FROM_COMMAND_LINE]


# The help of a flag that only restores a default: it is there to win over a --tuned row (test_tuned.py).
OVER_TUNED = "wins over the setting of a --tuned row"


class TurnOff(argparse.Action):
    """A switch that sets its ``dest`` and the ``also`` dests to False: --no-normalize-observation turns off
    normalization for every action space, including a --tuned row's --normalize-observation."""

    def __init__(self, option_strings: list[str], dest: str, also: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=True, **kwargs)
        self.also = also

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        for dest in (self.dest, *self.also):
            setattr(namespace, dest, False)


ORIGINAL_FROM_COMMAND_LINE = ("--deterministic-torch", "--use-gpu")


def build_parser(script: ScriptFlags) -> TrainingParser:
    """The original flags, in the original order, then the extras both scripts share."""
    parser = TrainingParser(prog=script.prog, description=script.description)
    for flag, (default_text, sentence) in script.flags.items():
        help_text = f"{sentence} (default: {default_text})"
        resume = FROM_COMMAND_LINE if flag in ORIGINAL_FROM_COMMAND_LINE else \
            EXTENDABLE if flag == "--total-timesteps" else KEPT
        if flag in SWITCHES:
            parser.flag(parser, flag, action="store_true", help=help_text, resume=resume)
        else:
            kind = FLAG_TYPES[flag]
            parser.flag(parser, flag, type=kind, default=kind(default_text), help=help_text, resume=resume)
    add_extra_flags(parser, script)
    add_checkpoint_flags(parser)
    add_evaluation_flags(parser)
    add_tracking_flags(parser)
    add_recurrent_flags(parser)
    return parser


def add_recurrent_flags(parser: TrainingParser) -> None:
    """Memory (networks/recurrent.py), in both scripts: kept on resume, they define the network."""
    group = parser.add_argument_group("memory")
    parser.flag(group, "--recurrent", choices=("lstm", "gru"), default=None, resume=KEPT,
                help="an LSTM or GRU between the encoder and the heads, its state carried through each episode; "
                     "minibatches are then sets of whole envs' rollouts (default: off)")
    parser.flag(group, "--no-recurrent", dest="recurrent", action="store_const", const=None, resume=KEPT,
                help=f"no recurrent layer, as without --recurrent; {OVER_TUNED} (default: False)")
    parser.flag(group, "--recurrent-size", type=count, default=None, metavar="N", resume=KEPT,
                help="the recurrent layer's hidden size (default: 64 after the MLP, 128 after a CNN)")
    parser.flag(group, "--sequence-length", type=count, default=None, metavar="L", resume=KEPT,
                help="the update replays each env's rollout in pieces of L steps, each from the state it had at "
                     "its first step; a minibatch is a set of pieces (default: the whole rollout)")


def add_extra_flags(parser: TrainingParser, script: ScriptFlags) -> None:
    extra = parser.add_argument_group("additional options")
    parser.flag(extra, "--exp-name", default=script.exp_name, resume=KEPT,
                help=f"experiment name, part of the run directory name (default: {script.exp_name})")
    parser.flag(extra, "--log-dir", default="runs", resume=FROM_COMMAND_LINE,
                help="directory that holds one TensorBoard run directory per run (default: runs)")
    parser.flag(extra, "--capture-video", action="store_true", resume=FROM_COMMAND_LINE,
                help="record videos of env 0's episodes into videos/<run name>/ (default: False)")
    parser.flag(extra, "--no-progress", action="store_true", resume=FROM_COMMAND_LINE,
                help="no progress bar, only the summary line at the end (default: False)")
    backends = {"auto": "native where the env has one and there are 8 envs or more, else sync",
                "native": "the env's own vectorized implementation (CartPole)",
                "sync": "one env after the other in this process", "async": "one subprocess per env"}
    parser.flag(extra, "--vec-backend", choices=script.vec_backends, default=script.vec_backends[0], resume=KEPT,
                help="how the envs are stepped: " + "; ".join(f"{name}: {backends[name]}"
                                                               for name in script.vec_backends)
                     + f" (default: {script.vec_backends[0]})")
    parser.flag(extra, "--cpu-threads", type=count, default=script.cpu_threads, metavar="N", resume=FROM_COMMAND_LINE,
                help=f"torch's CPU threads for inference and updates (default: {script.cpu_threads_why})")
    parser.flag(extra, "--bf16", action="store_true", resume=KEPT,
                help="bfloat16 mixed precision: matrix products and convolutions in bfloat16 (torch.autocast), "
                     "weights, optimizer and loss in float32; about 1.5x faster Atari updates on CPUs with "
                     "AVX512-BF16 or AMX and on GPUs with bfloat16, emulated and several times slower elsewhere "
                     "(default: False)")
    parser.flag(extra, "--timings", action="store_true", resume=FROM_COMMAND_LINE,
                help="at the end, also print the time spent in env stepping, inference, GAE and update "
                     "(default: False)")
    parser.flag(extra, "--no-anneal-lr", dest="anneal_lr", action="store_false", resume=KEPT,
                help="keep the learning rate constant instead of annealing it linearly to 0 (default: False)")
    parser.flag(extra, "--anneal-lr", action="store_true", default=True, resume=KEPT,
                help=f"anneal the learning rate, as without the flag; {OVER_TUNED} (default: True)")
    parser.flag(extra, "--anneal-clip", action="store_true", resume=KEPT,
                help="anneal --clip-coeff linearly to 0 over the run, as the learning rate is (default: False)")
    parser.flag(extra, "--no-anneal-clip", dest="anneal_clip", action="store_false", default=False, resume=KEPT,
                help=f"keep --clip-coeff constant, as without --anneal-clip; {OVER_TUNED} (default: True)")
    parser.flag(extra, "--no-clip-value-loss", dest="clip_value_loss", action="store_false", resume=KEPT,
                help="plain squared-error value loss instead of the clipped one (default: False)")
    parser.flag(extra, "--clip-value-loss", action="store_true", default=True, resume=KEPT,
                help=f"the clipped value loss, as without the flag; {OVER_TUNED} (default: True)")


def add_checkpoint_flags(parser: TrainingParser) -> None:
    saving = parser.add_argument_group("checkpoints")
    parser.flag(saving, "--save-every", type=count, default=None, metavar="N", resume=FROM_COMMAND_LINE,
                help="write a checkpoint into <run dir>/checkpoints/ every N updates, and at the end "
                     "(default: a tenth of the run's updates, so ten per run)")
    parser.flag(saving, "--keep-checkpoints", type=count, default=3, metavar="K", resume=FROM_COMMAND_LINE,
                help="keep the newest K checkpoints, remove older ones (default: 3)")
    parser.flag(saving, "--resume", metavar="PATH", default=None, resume=FROM_COMMAND_LINE,
                help="continue the run in PATH (its run directory or one of its checkpoint files) with its "
                     "saved flags, in the same run directory (default: None)")


def add_evaluation_flags(parser: TrainingParser) -> None:
    """Evaluation during training (ppo/periodic_eval.py): kept on resume, so a run's evaluations compare."""
    group = parser.add_argument_group("evaluation during training")
    parser.flag(group, "--eval-every", type=count, default=None, metavar="N", resume=KEPT,
                help="every N env steps, play --eval-episodes whole episodes on an env of its own, log eval/* to "
                     "TensorBoard and evaluations.csv, and keep the best policy as best_model.pt (default: off)")
    parser.flag(group, "--eval-episodes", type=count, default=5, metavar="K", resume=KEPT,
                help="episodes of each evaluation (default: 5)")
    parser.flag(group, "--eval-stochastic", action="store_true", resume=KEPT,
                help="sample the evaluation's actions; main.py evaluates the deterministic policy otherwise "
                     "(default: False)")
    parser.flag(group, "--eval-deterministic", action="store_true", resume=KEPT,
                help="the deterministic policy in evaluation; main_atari.py samples otherwise, as "
                     "rl-baselines3-zoo does (default: False)")


def add_tracking_flags(parser: TrainingParser) -> None:
    """Weights & Biases, named as CleanRL names them (ppo/tracking.py WandbMirror); where a run is watched from is
    the resuming command's choice."""
    group = parser.add_argument_group("experiment tracking")
    parser.flag(group, "--track", action="store_true", resume=FROM_COMMAND_LINE,
                help="mirror the run to Weights & Biases: every TensorBoard scalar, the flags, videos and the "
                     "evaluation table (pip install -r requirements-track.txt; WANDB_MODE=offline works without "
                     "a network) (default: False)")
    parser.flag(group, "--wandb-project-name", default="ppo-gymnasium", resume=FROM_COMMAND_LINE,
                help="the W&B project (default: ppo-gymnasium)")
    parser.flag(group, "--wandb-entity", default=None, resume=FROM_COMMAND_LINE,
                help="the W&B team or user (default: your default entity)")


def add_atari_flags(parser: TrainingParser) -> None:
    """main_atari.py's choice of emulator backend (kept on resume: the backends differ in what the agent sees)."""
    group = parser.add_argument_group("atari")
    parser.flag(group, "--env-backend", choices=("auto", "gymnasium", "ale-vector", "envpool"), default="auto",
                resume=KEPT,
                help="auto: ale-vector, or gymnasium for --capture-video and --vec-backend async; gymnasium: "
                     "ale-py envs with Gymnasium's wrappers (wrappers/atari.py), the only one that records "
                     "videos or steps envs in subprocesses; ale-vector: ale-py's own C++ vector env, stepped "
                     "in threads, with the same preprocessing (wrappers/ale_vector.py); envpool: EnvPool's C++ "
                     "envs, likewise (pip install -r requirements-envpool.txt) (default: auto)")
    parser.flag(group, "--frame-stack", type=count, default=None, metavar="N", resume=KEPT,
                help="frames each observation stacks (default: 4, or 1 with --recurrent, as CleanRL's LSTM agent)")


def atari_frame_stack(saved: argparse.Namespace | dict) -> int:
    """main_atari.py's --frame-stack as given, else 4, or 1 with --recurrent (a run's saved flags: runs saved
    before either flag existed stacked 4)."""
    saved = vars(saved) if isinstance(saved, argparse.Namespace) else saved
    return saved.get("frame_stack") or (1 if saved.get("recurrent") else 4)


def add_network_flags(parser: TrainingParser) -> None:
    """main.py's MLP, and --tuned (ppo/tuned.py). All kept on resume: they define what is learned."""
    group = parser.add_argument_group("network and tuned settings")
    parser.flag(group, "--tuned", action="store_true", resume=KEPT,
                help="use the hyperparameters known to work for the env (a row of ppo/tuned.py, from "
                     "rl-baselines3-zoo; --total-timesteps included); flags given on the command line still win; "
                     "an env without a row is an error that lists the envs with one (default: False)")
    parser.flag(group, "--hidden-sizes", type=count, nargs="+", default=[64, 64], metavar="N", resume=KEPT,
                help="units of each hidden layer of the actor and of the critic (default: 64 64)")
    parser.flag(group, "--activation", choices=("tanh", "relu"), default="tanh", resume=KEPT,
                help="activation of the hidden layers (default: tanh)")
    parser.flag(group, "--initial-log-std", type=log_std, default=0.0, resume=KEPT,
                help="the Gaussian policy's initial log standard deviation, for Box actions (default: 0.0)")
    parser.flag(group, "--no-ortho-init", dest="ortho_init", action="store_false", resume=KEPT,
                help="torch's default initialization instead of orthogonal weights and zero biases "
                     "(default: False)")
    parser.flag(group, "--ortho-init", action="store_true", default=True, resume=KEPT,
                help=f"orthogonal weights and zero biases, as without the flag; {OVER_TUNED} (default: True)")


def add_env_kwargs_flag(parser: TrainingParser) -> None:
    """main.py's keyword arguments for the env's constructor (kept on resume: they define the task)."""
    group = parser.add_argument_group("environment")
    parser.flag(group, "--env-kwargs", nargs="+", type=keyword_argument, default=[], metavar="KEY=VALUE",
                resume=KEPT, help="keyword arguments for the env's constructor (gym.make), values read as Python "
                                  "literals (anything else as a string), saved with the run (default: none)")


def add_image_flags(parser: TrainingParser) -> None:
    """main.py's preprocessing of image observations (wrappers/images.py) and the user's own wrappers: each a
    Gymnasium wrapper, kept on resume and rebuilt by ppo.evaluate, since they define what the agent sees."""
    group = parser.add_argument_group("images and wrappers")
    parser.flag(group, "--frame-stack", type=count, default=1, metavar="N", resume=KEPT,
                help="stack the last N images of an image observation into its channels (default: 1)")
    parser.flag(group, "--grayscale", action="store_true", resume=KEPT,
                help="convert an RGB image observation to one gray channel (default: False)")
    parser.flag(group, "--resize", type=count, nargs=2, default=None, metavar=("H", "W"), resume=KEPT,
                help="resize an image observation to H x W pixels (default: as the env gives it)")
    parser.flag(group, "--env-wrapper", nargs="+", default=[], metavar="MODULE:CLASS", resume=KEPT,
                help="wrappers of your own, each called with the env and returning the wrapped env, applied in "
                     "the order given before this trainer's own (default: none)")


def add_normalization_flags(parser: TrainingParser) -> None:
    """main.py's normalization switches: observations for Box action spaces, rewards for all."""
    group = parser.add_argument_group("normalization")
    parser.flag(group, "--no-normalize-observation", dest="normalize_observation", action=TurnOff,
                also=("normalize_any_observation",), resume=KEPT,
                help="turn off running observation normalization, which is on for Box action spaces, and "
                     "--normalize-observation's, a --tuned row's included (default: False)")
    parser.flag(group, "--no-normalize-reward", dest="normalize_reward", action="store_false", resume=KEPT,
                help="turn off scaling rewards by the running std of the discounted return (default: False)")
    parser.flag(group, "--normalize-reward", action="store_true", default=True, resume=KEPT,
                help=f"scale rewards, as without the flag; {OVER_TUNED} (default: True)")
    parser.flag(group, "--normalize-observation", dest="normalize_any_observation", action="store_true",
                resume=KEPT, help="normalize observations for any action space, not only Box ones (default: "
                                  "False)")


def check_tracking(track: bool) -> None:
    """--track needs wandb, which is optional: without it, one line saying how to install it."""
    if track:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UsageError("argument --track: Weights & Biases is not installed: pip install -r "
                             "requirements-track.txt") from None


def check_output_paths(args: argparse.Namespace) -> None:
    """Where the run will write: the log directory (a resumed run writes into its own run directory) and, with
    --capture-video, videos/; with --track, that wandb is there to write to."""
    check_tracking(args.track)
    if args.resume is None:
        check_directory(args.log_dir, "--log-dir")
    if args.capture_video:
        check_directory("videos", "--capture-video")


def check_batch(args: argparse.Namespace) -> None:
    """Checks that need several flags together; single-flag checks live in the value types."""
    batch = args.num_envs * args.num_steps_collected
    if batch % args.num_mini_batches:
        raise UsageError(
            f"argument --num-mini-batches: the batch of --num-envs {args.num_envs} × --num-steps-collected "
            f"{args.num_steps_collected} = {batch} samples does not split into {args.num_mini_batches} "
            "equal mini-batches"
        )
    length = args.sequence_length
    if length and not args.recurrent:
        raise UsageError("argument --sequence-length: cuts the sequences of --recurrent lstm or gru, which is off")
    if length and args.num_steps_collected % length:
        raise UsageError(f"argument --sequence-length: --num-steps-collected {args.num_steps_collected} does not "
                         f"split into pieces of {length} steps")
    pieces = args.num_envs * (args.num_steps_collected // length if length else 1)
    if args.recurrent and pieces % args.num_mini_batches:
        raise UsageError(f"argument --num-mini-batches: with --recurrent a minibatch is a set of whole sequences, "
                         f"so their number (--num-envs {args.num_envs}" +
                         (f" × --num-steps-collected {args.num_steps_collected} / --sequence-length {length}"
                          if length else "") +
                         f" = {pieces}) must be a multiple of --num-mini-batches {args.num_mini_batches}")
    if args.recurrent_size and not args.recurrent:
        raise UsageError("argument --recurrent-size: sizes the recurrent layer of --recurrent lstm or gru, which "
                         "is off")
    if args.eval_every is not None and args.eval_every < batch:
        raise UsageError(f"argument --eval-every: {args.eval_every} steps is less than one rollout (--num-envs "
                         f"{args.num_envs} × --num-steps-collected {args.num_steps_collected} = {batch}): "
                         "evaluations happen between updates")


def select_device(use_gpu: bool) -> torch.device:
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("argument --use-gpu: CUDA is not available on this machine (drop --use-gpu to run on the CPU)")
    if "LOCAL_RANK" not in os.environ:
        return torch.device("cuda")
    local_rank = int(os.environ["LOCAL_RANK"])  # under torchrun: rank r of a machine uses its GPU r
    if local_rank >= torch.cuda.device_count():
        raise UsageError(f"argument --use-gpu: this is process {local_rank} of its machine, which has "
                         f"{torch.cuda.device_count()} GPUs: start at most one process per GPU")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def check_bf16(device: torch.device) -> str | None:
    """A warning when --bf16 would run without hardware bfloat16 (emulated, so slower than float32)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "warning: --bf16: this GPU has no native bfloat16 support; float32 is faster here"
    if device.type == "cpu" and not cpu_has_bfloat16():
        return ("warning: --bf16: this CPU has no AVX512-BF16 or AMX instructions, so bfloat16 is emulated: "
                "several times slower than float32 (Breakout: 9x on an AVX2 CPU)")
    return None


def cpu_has_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), from the flags Linux lists in
    /proc/cpuinfo; False where that file is missing (the warning then errs on the side of saying so)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class TrainConfig:
    """What the shared training loop needs, independent of which script parsed it."""

    num_envs: int
    num_steps: int
    num_minibatches: int
    num_epochs: int
    learning_rate: float
    total_timesteps: int
    gamma: float
    gae_lambda: float
    clip_coef: float
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    seed: int
    anneal_lr: bool = True
    anneal_clip: bool = False  # the clip coefficient annealed linearly to 0 over the run
    clip_value_loss: bool = True
    bf16: bool = False  # forward passes under torch.autocast(bfloat16)
    # Where the annealing schedules start: (update, learning rate, clip coefficient). An extended run anneals
    # from the values it stood at towards 0 at its new end; None: from the flags' values at update 0.
    anneal_from: tuple[int, float, float] | None = None
    world_size: int = 1  # processes under torchrun, each with num_envs envs (ppo/distributed.py)
    sequence_length: int | None = None  # --recurrent: the pieces the update replays (None: whole rollouts)

    @property
    def batch_size(self) -> int:
        """Samples of one rollout of this process."""
        return self.num_envs * self.num_steps

    @property
    def steps_per_update(self) -> int:
        """Env steps of one update, all processes together: what the global step counts."""
        return self.batch_size * self.world_size

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Enough updates to train at least total_timesteps steps (all processes together)."""
        return -(-self.total_timesteps // self.steps_per_update)

    @classmethod
    def from_args(cls, args: argparse.Namespace, world_size: int = 1) -> TrainConfig:
        return cls(
            num_envs=args.num_envs,
            num_steps=args.num_steps_collected,
            num_minibatches=args.num_mini_batches,
            num_epochs=args.num_epochs,
            learning_rate=args.learning_rate,
            total_timesteps=args.total_timesteps,
            gamma=args.gae_gamma,
            gae_lambda=args.gae_lambda,
            clip_coef=args.clip_coeff,
            ent_coef=args.ent_loss_coeff,
            vf_coef=args.value_loss_coeff,
            max_grad_norm=args.max_gradient,
            seed=args.seed,
            anneal_lr=args.anneal_lr,
            anneal_clip=getattr(args, "anneal_clip", False),  # runs saved before the flag: off
            clip_value_loss=args.clip_value_loss,
            bf16=getattr(args, "bf16", False),  # checkpoints written before the flag existed
            anneal_from=tuple(args.anneal_from) if getattr(args, "anneal_from", None) else None,
            world_size=world_size,
            sequence_length=getattr(args, "sequence_length", None),  # runs saved before the flag: whole rollouts
        )

