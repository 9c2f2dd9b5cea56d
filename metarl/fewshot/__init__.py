"""Supervised few-shot learning: sinusoid regression and N-way K-shot image classification
(Omniglot, MiniImagenet, your own folders) with the core's learners and Prototypical Networks, driven through one
interface (:class:`FewShotLearner`)."""

from .datasets import load_dataset
from .episodes import EpisodeSampler, FewShotBatch
from .image_set import LabelledImages
from .learners import FewShotLearner, build_learner
from .losses import classification_loss
from .models import MLP, Conv4
from .protonets import ProtoNet, protonet_loss
from .sinusoid import SinusoidBatch, SinusoidTasks

__all__ = [
    "MLP",
    "Conv4",
    "EpisodeSampler",
    "FewShotBatch",
    "FewShotLearner",
    "LabelledImages",
    "ProtoNet",
    "SinusoidBatch",
    "SinusoidTasks",
    "build_learner",
    "classification_loss",
    "load_dataset",
    "protonet_loss",
]
