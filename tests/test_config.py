"""The command line against the original README's usage texts (tests/data/original_usage.txt, a verbatim copy)."""

import argparse
import re
from pathlib import Path

import pytest

from ppo.cli import count
from ppo.config import ATARI, CLASSIC, TrainConfig, add_atari_flags, add_normalization_flags, build_parser

USAGE = (Path(__file__).parent / "data" / "original_usage.txt").read_text()


def original_section(title: str) -> str:
    start = USAGE.index(title)
    body_start = USAGE.index("```", start) + 3
    return USAGE[body_start:USAGE.index("```", body_start)]


def flag_helps(help_text: str) -> dict[str, str]:
    """{--flag: whitespace-normalized help sentence} from an argparse help text's options section."""
    options = help_text[help_text.index("options:"):]
    options = re.sub(r"\n\n[^\n]*:\n", "\n", options)  # fold later argument groups into the list
    entries = re.split(r"\n  (?=-)", options)
    helps = {}
    for entry in entries[1:]:
        entry = " ".join(entry.split())
        match = re.match(r"(--[\w-]+)(?: [A-Z_]+)? (.*)", entry)
        if match:
            helps[match.group(1)] = match.group(2)
    return helps


def usage_flags(help_text: str) -> list[str]:
    usage = help_text[:help_text.index("\n\n")]
    return re.findall(r"\[(--[\w-]+)(?: [A-Z_]+)?\]", usage)


@pytest.mark.parametrize("script,title", [(CLASSIC, "Classic control:"), (ATARI, "Atari:")])
def test_help_matches_original_usage(script, title, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    original = original_section(title)
    ours = build_parser(script).format_help()

    assert script.description in ours and script.description in original
    original_helps, our_helps = flag_helps(original), flag_helps(ours)
    assert len(original_helps) == 16
    for flag, sentence in original_helps.items():
        assert our_helps.get(flag) == sentence, flag
    # Same flags in the same order in the usage line, extras only after them.
    assert usage_flags(ours)[: len(usage_flags(original))] == usage_flags(original)
    # Same metavars: "--num-envs NUM_ENVS" in both.
    for flag in original_helps:
        metavar = re.search(rf"\[{flag}( [A-Z_]+)?\]", original).group(1) or ""
        assert f"[{flag}{metavar}]" in ours


@pytest.mark.parametrize("script,title", [(CLASSIC, "Classic control:"), (ATARI, "Atari:")])
def test_defaults_and_types_match_original(script, title):
    args = build_parser(script).parse_args([])
    for flag, sentence in flag_helps(original_section(title)).items():
        default_text = re.search(r"\(default: ([^)]*)\)", sentence).group(1)
        value = getattr(args, flag[2:].replace("-", "_"))
        if default_text in ("True", "False"):
            assert value is (default_text == "True"), flag
        elif re.fullmatch(r"[\d.e+-]+", default_text) and flag not in ("--learning-rate", "--gae-gamma",
                                                                         "--gae-lambda", "--clip-coeff",
                                                                         "--ent-loss-coeff", "--value-loss-coeff",
                                                                         "--max-gradient"):
            assert isinstance(value, int) and value == float(default_text), flag
        elif re.fullmatch(r"[\d.e+-]+", default_text):
            assert isinstance(value, float) and value == float(default_text), flag
        else:
            assert value == default_text, flag


def test_counts_take_scientific_notation():
    args = build_parser(ATARI).parse_args(["--total-timesteps", "1e7", "--num-envs", "16"])
    assert args.total_timesteps == 10_000_000 and isinstance(args.total_timesteps, int)
    assert count("1e6") == 1_000_000
    assert count("2_000") == 2000


@pytest.mark.parametrize("text", ["0", "-4", "1.5", "abc", "inf", "nan"])
def test_counts_reject_non_positive_or_fractional(text):
    with pytest.raises(argparse.ArgumentTypeError):
        count(text)


def test_train_config_sizes():
    cfg = TrainConfig.from_args(build_parser(CLASSIC).parse_args(["--total-timesteps", "1000"]))
    assert cfg.batch_size == 512 and cfg.minibatch_size == 128
    assert cfg.num_updates == 2  # at least the requested steps: 2 × 512 ≥ 1000


@pytest.mark.parametrize("script", [CLASSIC, ATARI], ids=["main", "main_atari"])
def test_every_flag_has_one_resume_rule(script):
    """The parser's table is the only place that decides what a resumed run may change."""
    parser = build_parser(script)
    (add_normalization_flags if script is CLASSIC else add_atari_flags)(parser)
    destinations = set(vars(parser.parse_args([])))
    assert set(parser.resume_rules) == destinations
    learned = {"environment_id", "num_envs", "num_steps_collected", "num_mini_batches", "num_epochs",
               "learning_rate", "total_timesteps", "gae_gamma", "gae_lambda", "clip_coeff", "ent_loss_coeff",
               "value_loss_coeff", "max_gradient", "seed", "anneal_lr", "clip_value_loss", "bf16", "vec_backend"}
    learned |= {"normalize_observation", "normalize_reward"} if script is CLASSIC else {"env_backend"}
    assert learned <= set(parser.kept_on_resume())
    assert {"use_gpu", "no_progress", "save_every", "keep_checkpoints", "resume", "cpu_threads", "timings",
            "log_dir", "capture_video"}.isdisjoint(parser.kept_on_resume())
