"""main.py on image observations (wrappers/images.py, networks/cnn.py, networks/multi_input.py): the encoder
chosen from the observation space, images kept uint8 to the buffer, the preprocessing flags, --env-wrapper, and
envs whose task can only be read from the pixels (tests/image_envs.py) learned to near their best return."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, only_run_dir

import main
from networks import CNNActorCritic, MLPActorCritic, MultiInputActorCritic, actor_critic_for
from networks.cnn import NATURE_MIN_SIZE
from ppo import evaluate
from ppo.config import TrainConfig
from ppo.train import make_buffer
from wrappers.classic import check_classic_env, make_classic_env, make_classic_envs
from wrappers.images import ImageOptions, PackObservation

OPTIONS = {"hidden_sizes": (64, 64), "activation": "tanh", "ortho_init": True, "initial_log_std": 0.0}


@pytest.fixture(autouse=True)
def tests_on_the_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # image_envs, imported by the ids' module part


def train(tmp_path, capsys, *flags: str) -> tuple[float, object]:
    """A main.py run; its mean return of the last 20 episodes and its run directory."""
    assert main.main([*flags, "--num-envs", "8", "--num-steps-collected", "32", "--no-progress", "--log-dir",
                      str(tmp_path / "runs")]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    return float(summary.split("episodes: ")[1].split(";")[0]), only_run_dir(tmp_path / "runs")


@pytest.mark.slow
def test_a_cnn_learns_a_task_shown_only_in_the_pixels(tmp_path, capsys):
    score, run_dir = train(tmp_path, capsys, "--environment-id", "image_envs:PixelCue-v0", "--total-timesteps", "8192")
    assert score >= 7.5  # best 8, random 4
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert "trunk.0.0.weight" in saved["model"] and saved["model"]["trunk.0.0.weight"].shape[-1] == 8  # Nature's
    assert saved["obs_rms"] is None  # images are scaled in the network, never normalized


@pytest.mark.slow
def test_a_small_image_learns_with_the_small_conv_stack(tmp_path, capsys):
    score, run_dir = train(tmp_path, capsys, "--environment-id", "image_envs:PixelCue-v0", "--env-kwargs", "size=7",
                           "--total-timesteps", "6144")
    assert score >= 7.5
    assert torch.load(run_dir / "model.pt", weights_only=True)["model"]["trunk.0.0.weight"].shape[-1] == 3


@pytest.mark.slow
def test_a_dict_of_an_image_and_a_vector_learns_a_task_that_needs_both(tmp_path, capsys):
    score, _ = train(tmp_path, capsys, "--environment-id", "image_envs:CueAndFlip-v0", "--total-timesteps", "16384",
                     "--learning-rate", "1e-3")
    assert score >= 7.0  # best 8; the image alone or the flip alone scores 4


@pytest.mark.parametrize("size, convolutions", [(84, "nature"), (NATURE_MIN_SIZE, "nature"),
                                                (NATURE_MIN_SIZE - 1, "small"), (7, "small"), (1, "small")])
def test_the_encoder_is_chosen_from_the_observation_space(size, convolutions):
    agent = actor_critic_for(gym.spaces.Box(0, 255, (3, size, size), np.uint8), gym.spaces.Discrete(2), OPTIONS,
                             "cpu")
    assert isinstance(agent, CNNActorCritic)
    assert agent.trunk[0][0].kernel_size == ((8, 8) if convolutions == "nature" else (3, 3))
    with torch.no_grad():  # every size trains: a forward pass of a batch gives one value per image
        assert agent.value(torch.zeros(2, 3, size, size, dtype=torch.uint8)).shape == (2,)
    flat = actor_critic_for(gym.spaces.Box(-1.0, 1.0, (6,)), gym.spaces.Discrete(2), OPTIONS, "cpu")
    assert isinstance(flat, MLPActorCritic)
    mixed = gym.spaces.Dict({"camera": gym.spaces.Box(0, 255, (1, 7, 7), np.uint8), "flip": gym.spaces.Box(0, 1, (2,))})
    assert isinstance(actor_critic_for(mixed, gym.spaces.Discrete(2), OPTIONS, "cpu"), MultiInputActorCritic)


@pytest.mark.parametrize("kwargs, flags, shape", [
    ({}, [], (3, 40, 40)),                                                       # channels last -> first
    ({"channels_first": True}, [], (3, 40, 40)),
    ({"plane": True}, [], (1, 40, 40)),
    ({}, ["--grayscale"], (1, 40, 40)),
    ({}, ["--resize", "20", "30"], (3, 20, 30)),
    ({"channels_first": True}, ["--grayscale", "--resize", "24", "24", "--frame-stack", "4"], (4, 24, 24)),
    ({}, ["--frame-stack", "2"], (6, 40, 40)),
    ({"plane": True}, ["--frame-stack", "3", "--resize", "10", "12"], (3, 10, 12)),
])
def test_preprocessing_flags_shape_the_observation(kwargs, flags, shape):
    args = main.build_main_parser().parse_args(flags)
    images = ImageOptions.from_args(args)
    space, _ = check_classic_env("image_envs:PixelCue-v0", env_kwargs=kwargs, images=images)
    assert space.shape == shape and space.dtype == np.uint8
    env = make_classic_env("image_envs:PixelCue-v0", env_kwargs=kwargs, images=images)
    obs, _ = env.reset(seed=0)
    assert obs.shape == shape and obs.dtype == np.uint8 and obs.max() > 128  # the cue survives preprocessing
    if images.frame_stack > 1:  # oldest first: the newest frame is the last channels, as one frame alone
        single = make_classic_env("image_envs:PixelCue-v0", env_kwargs=kwargs,
                                  images=ImageOptions(grayscale=images.grayscale, resize=images.resize))
        frame, _ = single.reset(seed=0)
        for _ in range(3):
            obs, *_ = env.step(0)
            frame, *_ = single.step(0)
        np.testing.assert_array_equal(obs[-frame.shape[0]:], frame)
    env.close()


def test_images_stay_uint8_in_the_rollout_buffer():
    envs = make_classic_envs("image_envs:PixelCue-v0", 2, images=ImageOptions(frame_stack=4, resize=(84, 84)))
    agent = actor_critic_for(envs.single_observation_space, envs.single_action_space, OPTIONS, "cpu")
    cfg = TrainConfig(num_envs=2, num_steps=128, num_minibatches=4, num_epochs=4, learning_rate=2.5e-4,
                      total_timesteps=256, gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.01, vf_coef=0.5,
                      max_grad_norm=0.5, seed=1)
    buffer = make_buffer(envs, agent, cfg, torch.device("cpu"))
    assert buffer.obs.dtype == torch.uint8 and buffer.obs.shape == (128, 2, 12, 84, 84)
    assert buffer.obs.untyped_storage().nbytes() == 128 * 2 * 12 * 84 * 84  # one byte a pixel
    envs.close()


def test_a_packed_dict_is_cut_into_its_parts_again_by_the_network():
    env = PackObservation(gym.make("image_envs:CueAndFlip-v0"))
    obs, _ = env.reset(seed=3)
    raw = env.unwrapped.new_cue()  # a fresh observation of the env, packed by the wrapper's own function
    row = env.observation(raw)
    assert row.dtype == np.uint8 and len(row) % 4 == 0
    agent = MultiInputActorCritic(env.unpacked_space, gym.spaces.Discrete(2))
    flip, camera = (part for part in agent.layout)  # flat parts first, images after
    rows = torch.from_numpy(np.stack([row, row]))
    vector = rows[:, flip.offset:flip.offset + flip.nbytes].view(torch.float32)
    assert vector[0].tolist() == raw["flip"].tolist()
    image = rows[:, camera.offset:camera.offset + camera.nbytes].reshape(2, *camera.shape)
    assert torch.equal(image[0, 0], torch.from_numpy(raw["camera"]))
    assert agent.features(rows).shape == (2, 256 + 2)
    tuple_env = PackObservation(gym.make("image_envs:CueAndFlip-v0", tuple_space=True))
    assert [(part.name, part.image) for part in tuple_env.layout] == [("0", False), ("1", True)]


def test_a_run_with_preprocessing_resumes_and_evaluates_with_the_same_pipeline(tmp_path, capsys):
    flags = ["--environment-id", "image_envs:PixelCue-v0", "--env-kwargs", "continuous=True", "--grayscale",
             "--resize", "36", "36", "--frame-stack", "2", "--env-wrapper", "image_envs:Inverted",
             "--total-timesteps", "512", "--save-every", "1"]
    _, run_dir = train(tmp_path, capsys, *flags)
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert saved["args"]["resize"] == [36, 36] and saved["args"]["frame_stack"] == 2
    assert saved["args"]["grayscale"] and saved["args"]["env_wrapper"] == ["image_envs:Inverted"]
    assert saved["obs_rms"] is None  # Box actions, but images: never normalized
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "1024", "--no-progress"]) == 0
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 1024
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "2", "--no-progress"]) == 0
    assert "2 episodes of image_envs:PixelCue-v0" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # the pipeline is the run's: another one is refused
        main.main(["--resume", str(run_dir), "--total-timesteps", "2048", "--frame-stack", "4", "--no-progress"])
    assert exit_info.value.code == 2


def test_env_wrappers_are_applied_in_order_before_the_trainers_own():
    plain = make_classic_env("image_envs:PixelCue-v0")
    inverted = make_classic_env("image_envs:PixelCue-v0", env_wrappers=["image_envs:Inverted"])
    twice = make_classic_env("image_envs:PixelCue-v0", env_wrappers=["image_envs:Inverted", "image_envs:Inverted"])
    (a, _), (b, _), (c, _) = (env.reset(seed=5) for env in (plain, inverted, twice))
    assert a.shape == b.shape == (3, 40, 40)  # the user's wrapper saw the env's own (H, W, C) image
    np.testing.assert_array_equal(b, 255 - a)
    np.testing.assert_array_equal(c, a)


CUE = ["--environment-id", "image_envs:PixelCue-v0"]


@pytest.mark.parametrize("flags, mentions", [
    (["--resize", "0", "8", *CUE], "positive"),
    (["--frame-stack", "0", *CUE], "positive"),
    (["--grayscale", *CUE, "--env-kwargs", "plane=True"], "1 channel"),
    (["--frame-stack", "2", "--environment-id", "CartPole-v1"], "not an image"),
    (["--resize", "8", "8", "--environment-id", "image_envs:CueAndFlip-v0"], "--env-wrapper"),
    (["--env-wrapper", "no_such_module:Wrapper", *CUE], "cannot import"),
    (["--env-wrapper", "image_envs:not_a_wrapper", *CUE], "could not wrap"),
    (["--env-wrapper", "image_envs", *CUE], "module:Class"),
    (["--normalize-observation", *CUE], "images"),
])
def test_bad_image_flags_are_one_line(flags, mentions, tmp_path, capsys, monkeypatch):
    """Exit status 2, one line naming the flag and the problem, nothing written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main.main([*flags, "--log-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"main.py: error: argument {flags[0]}") and mentions in err, err
    assert list(tmp_path.iterdir()) == []
