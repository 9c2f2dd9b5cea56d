"""Meta-reinforcement learning: functional policies, batched samplers, the policy-gradient inner
loop, MAML-TRPO, Reptile, ProMP, and adaptation-curve evaluation.

Entry points for the run layer: :class:`metarl.rl.config.RLConfig` and
:func:`metarl.rl.experiment.build`.
"""

from .algos.maml_trpo import MAMLTRPO
from .algos.promp import ProMP
from .algos.reptile import ReptileRL
from .config import RLConfig
from .experiment import RLExperiment, build
from .inner_loop import InnerLoop
from .policies import CategoricalMLPPolicy, GaussianMLPPolicy, make_policy
from .sampling.sampler import Sampler
from .trajectories import Trajectories

__all__ = [
    "MAMLTRPO",
    "CategoricalMLPPolicy",
    "GaussianMLPPolicy",
    "InnerLoop",
    "ProMP",
    "RLConfig",
    "RLExperiment",
    "ReptileRL",
    "Sampler",
    "Trajectories",
    "build",
    "make_policy",
]
