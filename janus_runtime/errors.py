"""Errors the runtime raises on bad input: each message names the input and the fix."""


class JanusError(ValueError):
    """Base class: a problem with something the caller gave us (files, arguments, images)."""


class ModelFilesError(JanusError):
    """A model folder is missing files, holds unreadable files, or does not match its config."""


class UnsupportedModelError(JanusError):
    """The folder holds a model this runtime does not implement (e.g. JanusFlow)."""
