"""raysearch: Ray Tune hyperparameter search for contrastive ECG learning with missing leads.

Read top to bottom: data (PTB-XL reader, cache, metadata encoding) -> models -> train (stages,
evaluation) -> trainable (one Ray Tune trial) -> tuner (the search) -> report.
"""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input (a file, a value, an option).

    The CLI prints its message as one line (plus the listed details, if any) and exits with
    status 2, without a traceback: the message must name the file or value and what was expected.
    """
