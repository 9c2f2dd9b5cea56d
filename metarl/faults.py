"""Failures of the machine a run depends on, not of the user's input: a full disk, a sampler
worker that died or got stuck. The CLI prints ``error: <message>`` without a traceback and exits
with code 3 (bad input exits with 2, :class:`metarl.run.errors.UserError`). The message says
what happened, what was kept, and how to continue."""


class EnvironmentFault(RuntimeError):
    """The machine failed the run; the message names what was kept and how to go on."""
