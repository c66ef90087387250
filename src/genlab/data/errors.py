"""Errors raised by :mod:`genlab.data`."""

from ..errors import GenlabError


class DataError(GenlabError, ValueError):
    """A data set cannot be found, read, verified or interpreted.

    The message always says what is wrong and, where it applies, which files
    to put in which folder.
    """
