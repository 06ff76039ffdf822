"""Errors a user can fix: the CLI prints their message as one paragraph, without a traceback."""


class PfdtrainError(Exception):
    """Base class of every error whose message tells the user what is wrong and how to fix it."""


class TrainingError(PfdtrainError, RuntimeError):
    """The run cannot go on as configured; the message says why and what to change."""
