"""FastRecurrentActorCriticPolicy: RecurrentPPO's LSTM over whole sequences equals sb3-contrib's
step-by-step loop."""

from __future__ import annotations

import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from metarl.rl.sb3_recurrent import FastRecurrentActorCriticPolicy


def _batch(starts: torch.Tensor, seed: int = 0):
    """Features and states of ``starts.shape[0]`` padded sequences of ``starts.shape[1]`` steps,
    flattened sequence-major as sb3-contrib's buffer gives them."""
    g = torch.Generator().manual_seed(seed)
    n_seq, length = starts.shape
    lstm = torch.nn.LSTM(5, 7)
    features = torch.randn(n_seq * length, 5, generator=g, requires_grad=True)
    states = (torch.randn(1, n_seq, 7, generator=g), torch.randn(1, n_seq, 7, generator=g))
    return features, states, starts.reshape(-1).float(), lstm


def test_sequences_flagged_at_their_start_equal_the_step_by_step_loop():
    starts = torch.zeros(4, 6)
    starts[[0, 2], 0] = 1.0  # two sequences begin an episode, two continue one
    features, states, flags, lstm = _batch(starts)
    fast, (h, c) = FastRecurrentActorCriticPolicy._process_sequence(features, states, flags, lstm)
    slow, (h_ref, c_ref) = RecurrentActorCriticPolicy._process_sequence(
        features, states, flags, lstm
    )
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    (grad,) = torch.autograd.grad(fast.square().sum(), features)
    (grad_ref,) = torch.autograd.grad(slow.square().sum(), features)
    torch.testing.assert_close(grad, grad_ref)
    # the reset matters: without it the flagged sequences' outputs differ
    unflagged, _ = RecurrentActorCriticPolicy._process_sequence(
        features, states, torch.zeros_like(flags), lstm
    )
    assert not torch.allclose(unflagged[:6], fast[:6])
    torch.testing.assert_close(unflagged[6:12], fast[6:12])  # sequence 1 was not flagged


def test_a_flag_inside_a_sequence_takes_the_loop():
    starts = torch.zeros(3, 5)
    starts[1, 3] = 1.0  # an episode starts mid-sequence
    features, states, flags, lstm = _batch(starts, seed=1)
    fast, _ = FastRecurrentActorCriticPolicy._process_sequence(features, states, flags, lstm)
    slow, _ = RecurrentActorCriticPolicy._process_sequence(features, states, flags, lstm)
    torch.testing.assert_close(fast, slow)
