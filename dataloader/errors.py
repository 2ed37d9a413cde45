"""The one error type of the data pipeline."""


class DataError(ValueError):
    """Bad data or options: raised in the main process, with a message saying how to fix it."""
