"""sb3-contrib's recurrent actor-critic with its LSTM run over whole sequences when it can.

``RecurrentPPO`` trains on sequences that start where an episode (RL²: a trial) starts or where
a minibatch cuts one, padded to one length. sb3-contrib's ``_process_sequence`` steps the LSTM
one time step at a time, in Python, whenever any ``episode_start`` flag in the batch is set,
which is every batch in training: the flags sit at the sequences' first steps. RL² on 2D
navigation spent 98% of an iteration there (89.6 s of 8,000 env steps, LSTM of 256 units).

:class:`FastRecurrentActorCriticPolicy` resets the states of the sequences flagged at their
first step and runs the whole sequence in one ``nn.LSTM`` call, which is the same computation;
a flag anywhere later (not produced by sb3-contrib's buffer) falls back to the step-by-step loop.
``MlpLstmPolicy``'s other behaviour is unchanged.
"""

from __future__ import annotations

import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn


class FastRecurrentActorCriticPolicy(RecurrentActorCriticPolicy):
    """``MlpLstmPolicy`` whose LSTM runs each training sequence in one call (module docstring)."""

    @staticmethod
    def _process_sequence(
        features: torch.Tensor,
        lstm_states: tuple[torch.Tensor, torch.Tensor],
        episode_starts: torch.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        n_seq = lstm_states[0].shape[1]
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)  # [time, sequences]
        if bool(torch.any(starts[1:] != 0.0)):
            return RecurrentActorCriticPolicy._process_sequence(
                features, lstm_states, episode_starts, lstm
            )
        keep = (1.0 - starts[0]).view(1, n_seq, 1)  # reset where a sequence starts an episode
        sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
        return torch.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states
