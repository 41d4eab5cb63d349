"""--recurrent {lstm,gru} (networks/recurrent.py, ppo/rollout.py ActInState, ppo/buffer.py SequenceBatch): the state
carried across steps and rollouts and zeroed where an episode starts, in both autoreset modes; the update's replay
of whole sequences giving the rollout's numbers; a task that needs memory (tests/memory_envs.py) learned; resume,
evaluate, torchrun, Atari and the flags' checks."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, only_run_dir
from gymnasium.vector import AutoresetMode

import main
import main_atari
from networks.recurrent import recurrent_actor_critic
from ppo import evaluate
from ppo.config import TrainConfig
from ppo.rollout import LearnerEnvs, collect_rollout, rollout_policy
from ppo.tracking import PhaseTimers
from ppo.train import make_buffer
from wrappers.novel import NO_VELOCITY, register_no_velocity

OPTIONS = {"hidden_sizes": (32,), "activation": "tanh", "ortho_init": True, "initial_log_std": 0.0}
NUM_ENVS, NUM_STEPS, ROLLOUTS, TIME_LIMIT = 4, 32, 2, 15


@pytest.fixture(autouse=True)
def tests_on_the_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # memory_envs, imported by the id's module part


class NoLogger:
    def episodes_finished(self, *args) -> None:
        pass


class RecordSteps(gym.vector.VectorWrapper):
    """What the envs returned, independently of the learner: each step's terminated, truncated, and the last
    observation of each truncated episode."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.ends: list[tuple[np.ndarray, np.ndarray]] = []
        self.final_obs: dict[tuple[int, int], np.ndarray] = {}  # (step, env) -> last observation

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        for env in np.flatnonzero(truncated & ~terminated):
            same_step = self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
            self.final_obs[len(self.ends), int(env)] = info["final_obs"][env] if same_step else obs[env]
        self.ends.append((terminated.copy(), truncated.copy()))
        return obs, reward, terminated, truncated, info


def recorded_rollouts(mode: AutoresetMode, kind: str, sequence_length: int | None = None):
    """ROLLOUTS rollouts of CartPoleNoVel (random-ish policy: terminations; a 15-step limit: truncations) by a
    fresh recurrent network; per rollout a copy of the buffer's tensors, the batch's [steps, sequences] shape and
    each minibatch's replayed (log-probabilities, entropies, values) beside its stored log-probabilities and values.
    Each batch is replayed at once, as train() does: it views the buffer, which the next rollout overwrites."""
    register_no_velocity()
    torch.manual_seed(0)
    envs = RecordSteps(gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPoleNoVel-v1", max_episode_steps=TIME_LIMIT)] * NUM_ENVS, autoreset_mode=mode))
    agent = recurrent_actor_critic(envs.single_observation_space, envs.single_action_space, kind, 16, OPTIONS, "cpu")
    cfg = TrainConfig(num_envs=NUM_ENVS, num_steps=NUM_STEPS, num_minibatches=2, num_epochs=1, learning_rate=0.0,
                      total_timesteps=0, gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.0, vf_coef=0.5,
                      max_grad_norm=0.5, seed=1, sequence_length=sequence_length)
    device = torch.device("cpu")
    learner = LearnerEnvs(envs, None, device, agent.head)
    policy = rollout_policy(agent, device, False, NUM_ENVS)
    buffer = make_buffer(envs, agent, cfg, device)
    learner.reset(seed=1)
    rollouts = []
    for rollout in range(ROLLOUTS):
        with torch.no_grad():
            assert collect_rollout(learner, policy, buffer, NoLogger(), PhaseTimers(), rollout * NUM_STEPS,
                                   lambda: False)
            next_value = policy.value(learner.obs, learner.starts)
        copy = {name: getattr(buffer, name).copy() if isinstance(getattr(buffer, name), np.ndarray)
                else getattr(buffer, name).clone() for name in ("obs", "actions", "logprobs", "values", "valid",
                                                                "starts", "states", "final_values")}
        batch = buffer.finish(next_value, cfg.gamma, cfg.gae_lambda)
        with torch.no_grad():
            replays = [(minibatch.evaluate(agent), minibatch.logprobs.clone(), minibatch.values.clone())
                       for minibatch in batch.minibatches(2)]
        rollouts.append((copy, tuple(batch.starts.shape), replays))
    return envs, agent, rollouts


@pytest.mark.parametrize("kind, sequence_length", [("lstm", None), ("gru", None), ("lstm", 8), ("gru", 4)])
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP], ids=["same-step", "next-step"])
def test_the_replay_gives_the_rollouts_log_probabilities_and_values(mode, kind, sequence_length):
    """Whole rollouts, or pieces of --sequence-length steps each replayed from the state stored at its start."""
    envs, agent, rollouts = recorded_rollouts(mode, kind, sequence_length)
    terminated = np.array([t for t, _ in envs.ends])
    truncated = np.array([t & ~d for d, t in envs.ends])
    assert terminated.any() and truncated.any()  # episode ends of both kinds inside the rollouts
    length = sequence_length or NUM_STEPS
    for stored, shape, replays in rollouts:
        assert mode == AutoresetMode.SAME_STEP or not stored["valid"].all()  # NEXT_STEP: reset steps replayed
        assert shape == (length, NUM_ENVS * NUM_STEPS // length)
        replayed = 0
        for (logprobs, _, values), stored_logprobs, stored_values in replays:
            # float32: the replay runs the encoder on T·n rows at once and the RNN over chunks, the rollout one
            # step at a time, so sums differ in their last bits.
            torch.testing.assert_close(logprobs, stored_logprobs, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(values, stored_values, rtol=1e-5, atol=1e-5)
            replayed += len(stored_logprobs)
        assert replayed == int(stored["valid"].sum())  # every valid step once, no reset step
    assert rollouts[1][0]["states"][0].abs().sum() > 0  # the second rollout starts from the state the first reached


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP], ids=["same-step", "next-step"])
def test_the_state_is_zeroed_where_an_episode_starts(mode):
    """Each valid step's stored log-probability and value equal those of the network run step by step from a zero
    state over its episode's observations alone, the episodes cut where the envs said they ended; a truncated
    episode's bootstrap value is the final observation's, from the state the episode reached."""
    envs, agent, rollouts = recorded_rollouts(mode, "lstm")
    obs = torch.cat([stored["obs"] for stored, *_ in rollouts])
    actions = torch.cat([stored["actions"] for stored, *_ in rollouts])
    logprobs = torch.cat([stored["logprobs"] for stored, *_ in rollouts])
    values = torch.cat([stored["values"] for stored, *_ in rollouts])
    final_values = torch.cat([stored["final_values"] for stored, *_ in rollouts])
    next_step = mode == AutoresetMode.NEXT_STEP
    checked = finals = 0
    with torch.no_grad():
        for env in range(NUM_ENVS):
            state, resetting = agent.initial_state(1), False
            for t, (terminated, truncated) in enumerate(envs.ends):
                if resetting:  # NEXT_STEP: this step resets the env; a new episode starts after it
                    resetting, state = False, agent.initial_state(1)
                    continue
                params, value, state = agent.step(obs[t, env][None], state, torch.zeros(1, dtype=torch.bool))
                expected = agent.head.log_prob(params, actions[t, env][None])
                torch.testing.assert_close(logprobs[t, env], expected[0], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(values[t, env], value[0], rtol=1e-5, atol=1e-5)
                checked += 1
                if (t, env) in envs.final_obs:
                    final = torch.as_tensor(envs.final_obs[t, env], dtype=torch.float32)[None]
                    bootstrap = agent.step(final, state, torch.zeros(1, dtype=torch.bool))[1]
                    torch.testing.assert_close(final_values[t, env], bootstrap[0], rtol=1e-5, atol=1e-5)
                    finals += 1
                if terminated[env] or truncated[env]:
                    state, resetting = agent.initial_state(1), next_step
    assert checked > NUM_ENVS * NUM_STEPS and finals > 0


def train(tmp_path, capsys, *flags: str) -> tuple[float, object]:
    """A main.py run on the memory task; its mean return of the last 20 episodes and its run directory."""
    assert main.main(["--environment-id", "memory_envs:CueMemory-v0", "--num-envs", "8", "--num-steps-collected",
                      "32", "--num-mini-batches", "4", "--learning-rate", "3e-3", "--total-timesteps", "16384",
                      "--no-progress", "--log-dir", str(tmp_path / "runs"), *flags]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    return float(summary.split("episodes: ")[1].split(";")[0]), only_run_dir(tmp_path / "runs")


@pytest.mark.slow
def test_a_cue_shown_once_is_remembered_by_a_recurrent_policy_only(tmp_path, capsys):
    feed_forward, _ = train(tmp_path / "ff", capsys)
    assert feed_forward <= 0.5  # without memory the last step's observation says nothing: 0 on average
    recurrent, run_dir = train(tmp_path / "lstm", capsys, "--recurrent", "lstm")
    assert recurrent >= 0.9  # best 1

    # ppo.evaluate rebuilds the network and carries its state through each episode: deterministic, it names
    # the cue (a state dropped between steps would score 0 on average).
    assert evaluate.main([str(run_dir), "--episodes", "20", "--deterministic"]) == 0
    assert "return 1.00 ± 0.00" in capsys.readouterr().out

    # resume goes on with the saved --recurrent and --recurrent-size
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert saved["args"]["recurrent"] == "lstm" and saved["model"]["rnn.weight_hh_l0"].shape == (4 * 64, 64)
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "20480", "--no-progress"]) == 0
    resumed = torch.load(run_dir / "model.pt", weights_only=True)
    assert resumed["global_step"] == 20480 and resumed["args"]["recurrent"] == "lstm"

    # the ONNX export takes the state as an input and gives it back: carried, it names the cue as torch does;
    # zeroed at every step, the model forgets the cue and scores 0 on average
    carried, zeroed = onnx_cue_returns(run_dir, tmp_path, capsys)
    assert carried == [1.0] * 20
    assert np.mean(zeroed) <= 0.5


def onnx_cue_returns(run_dir, tmp_path, capsys) -> tuple[list[float], list[float]]:
    """The run exported once; returns of 20 CueMemory episodes played by the model with onnxruntime alone, its
    state carried from step to step (zeroed where an episode starts), then of the same 20 with the state zeroed at
    every step."""
    import onnxruntime

    from ppo import export
    from ppo.evaluate import make_env

    assert export.main([str(run_dir), "-o", str(tmp_path / "policy.onnx")]) == 0
    assert "checked on 1,000 observations" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "policy.onnx"))
    assert [given.name for given in session.get_inputs()] == ["obs", "state"]
    layers, _, size = session.get_inputs()[1].shape  # [2 (LSTM: h, c) or 1 (GRU), batch, size]
    zero = np.zeros((layers, 1, size), np.float32)
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    env, _ = make_env(payload["script"], payload["env_id"], payload["args"])
    returns: dict[bool, list[float]] = {True: [], False: []}
    for carry in returns:
        for episode in range(20):
            obs, _ = env.reset(seed=episode)
            state, total, done = zero, 0.0, False
            while not done:
                action, state = session.run(["action", "state_out"], {"obs": obs[None], "state": state})
                state = state if carry else zero
                obs, reward, terminated, truncated, _ = env.step(action[0])
                total, done = total + reward, terminated or truncated
            returns[carry].append(total)
    env.close()
    return returns[True], returns[False]


@pytest.mark.slow
def test_a_gru_with_its_own_size_learns_the_cue(tmp_path, capsys):
    score, run_dir = train(tmp_path, capsys, "--recurrent", "gru", "--recurrent-size", "32")
    assert score >= 0.9
    assert torch.load(run_dir / "model.pt", weights_only=True)["model"]["rnn.weight_hh_l0"].shape == (3 * 32, 32)
    assert onnx_cue_returns(run_dir, tmp_path, capsys)[0] == [1.0] * 20


@pytest.mark.parametrize("flags, mentions", [
    (["--num-envs", "6", "--num-mini-batches", "4", "--recurrent", "lstm"], "6"),
    (["--recurrent-size", "32"], "--recurrent"),
    (["--recurrent", "rnn"], "invalid choice"),
    (["--recurrent-size", "0", "--recurrent", "gru"], "0"),
    (["--sequence-length", "16"], "--recurrent"),
    (["--recurrent", "lstm", "--sequence-length", "48"], "48"),
    (["--recurrent", "lstm", "--num-envs", "1", "--sequence-length", "64", "--num-mini-batches", "4"], "= 2"),
])
def test_bad_recurrent_flags_get_one_line(flags, mentions, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--environment-id", "CartPole-v1", *flags, "--log-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and mentions in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env_id", sorted(NO_VELOCITY))
def test_the_no_velocity_envs_hide_what_the_zoo_masks(env_id):
    register_no_velocity()
    base, hidden = NO_VELOCITY[env_id]
    env, full = gym.make(env_id), gym.make(base)
    obs, _ = env.reset(seed=3)
    reference, _ = full.reset(seed=3)
    for _ in range(5):
        action = full.action_space.sample()
        obs, *_ = env.step(action)
        reference, *_ = full.step(action)
    keep = [i for i in range(len(reference)) if i not in hidden]
    assert (obs[list(hidden)] == 0).all() and (reference[list(hidden)] != 0).any()
    np.testing.assert_array_equal(obs[keep], reference[keep])


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--bf16"], ["--environment-id", "Pendulum-v1"],
                                   ["--environment-id", "MountainCarContinuousNoVel-v0"]])
def test_recurrent_runs_with_bf16_and_box_actions(flags, tmp_path, capsys):
    args = ["--environment-id", "CartPoleNoVel-v1", "--recurrent", "gru", "--num-envs", "4",
            "--num-steps-collected", "32", "--total-timesteps", "256", "--no-progress", "--log-dir", str(tmp_path)]
    assert main.main(args + flags) == 0
    assert "256 steps in" in capsys.readouterr().out


@pytest.mark.slow
def test_main_atari_recurrent_stacks_one_frame(tmp_path, capsys):
    assert main_atari.main(["--recurrent", "lstm", "--num-envs", "2", "--num-mini-batches", "2",
                            "--num-steps-collected", "16",
                            "--total-timesteps", "64", "--no-progress", "--log-dir", str(tmp_path)]) == 0
    saved = torch.load(only_run_dir(tmp_path) / "model.pt", weights_only=True)
    assert saved["model"]["encoder.trunk.0.0.weight"].shape[1] == 1  # one frame, not 4
    assert saved["model"]["rnn.weight_hh_l0"].shape == (4 * 128, 128)  # CleanRL's Atari LSTM size
    # the CNN and the LSTM export together, checked against torch over 1,000 steps of real games
    import onnxruntime

    from ppo import export
    assert export.main([str(only_run_dir(tmp_path))]) == 0
    assert "checked on 1,000 observations" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(only_run_dir(tmp_path) / "policy.onnx"))
    assert [(given.name, given.shape) for given in session.get_inputs()] == [
        ("obs", ["batch", 1, 84, 84]), ("state", [2, "batch", 128])]


@pytest.mark.slow
def test_two_ranks_train_a_recurrent_policy(tmp_path):
    from test_distributed import torchrun

    run = torchrun("main.py", "--environment-id", "CartPoleNoVel-v1", "--recurrent", "lstm", "--num-envs", "2",
                   "--num-mini-batches", "2", "--num-steps-collected", "64", "--total-timesteps", "1024",
                   "--no-progress", "--log-dir", str(tmp_path))
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert out.count("1,024 steps in") == 1  # rank 0's summary; the global step counts both ranks' envs
    saved = torch.load(only_run_dir(tmp_path) / "model.pt", weights_only=True)
    assert saved["world_size"] == 2 and saved["args"]["recurrent"] == "lstm"


def test_the_gru_sequence_has_nn_grus_gradients():
    """networks/gru.py's hand-written forward and backward against nn.GRU run step by step and autograd through it
    (the state zeroed where an episode starts), in float64 so that any difference above rounding is a wrong output
    or derivative; with a non-zero initial state and biases, and episode starts inside the sequence."""
    from networks.gru import GRUSequence

    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 7).double()
    for param in gru.parameters():
        torch.nn.init.normal_(param)
    x = torch.randn(6, 3, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 3, 7, dtype=torch.float64, requires_grad=True)
    starts = torch.zeros(6, 3, dtype=torch.bool)
    starts[0, 1] = starts[2, 0] = starts[3, 0] = starts[4, 2] = True
    weight = torch.randn(6, 3, 7, dtype=torch.float64)  # a loss that weighs every output differently
    inputs = [x, h0, *gru.parameters()]

    def step_by_step(x, h, starts):
        outputs = []
        for t in range(len(x)):
            output, h = gru(x[t:t + 1], h * (~starts[t]).to(h.dtype)[None, :, None])
            outputs.append(output)
        return torch.cat(outputs), h

    def gradients(outputs):
        return torch.autograd.grad((outputs * weight).sum(), inputs)

    ours = GRUSequence.apply(x, h0, starts, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
    theirs = step_by_step(x, h0, starts)[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-13)
    for mine, expected in zip(gradients(ours), gradients(theirs), strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-12)
