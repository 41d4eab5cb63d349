"""Actor-critic networks: an MLP for flat observations, the Nature CNN for Atari frames."""

from networks.actor_critic import ActorCritic, make_head
from networks.mlp import MLPActorCritic

__all__ = ["ActorCritic", "MLPActorCritic", "make_head"]
