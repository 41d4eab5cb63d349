"""Run under torchrun by test_distributed.py: main.py as a user starts it, with a spy on each update that
records this rank's weights (their sum and a hash) and the episodes its own envs finished, written to
PROBE_DIR/rank<r>.json at the end."""

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import main  # noqa: E402
import ppo.distributed  # noqa: E402
import ppo.train  # noqa: E402

records = {"weights": [], "episodes": 0, "first": None}
real_update, real_episodes = ppo.train.update_policy, ppo.distributed.SharedLogger.episodes_finished


def digest(agent) -> str:
    flat = b"".join(p.detach().numpy().tobytes() for p in agent.parameters())
    return hashlib.sha256(flat).hexdigest()


def spy_update(agent, optimizer, batch, cfg, world):
    if records["first"] is None:
        records["first"] = digest(agent)
    stats = real_update(agent, optimizer, batch, cfg, world)
    records["weights"].append(digest(agent))
    return stats


def spy_episodes(self, global_step, returns, lengths):
    records["episodes"] += len(returns)
    real_episodes(self, global_step, returns, lengths)


ppo.train.update_policy = spy_update
ppo.distributed.SharedLogger.episodes_finished = spy_episodes
code = main.main(sys.argv[1:])
Path(os.environ["PROBE_DIR"], f"rank{os.environ['RANK']}.json").write_text(json.dumps(records))
sys.exit(code)
