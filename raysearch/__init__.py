"""raysearch: Ray Tune hyperparameter search for contrastive ECG learning with missing leads.

Read top to bottom, one subpackage per concern: data (PTB-XL read, cached, checked) -> training
(one stage: config, models, batches, step, stage loop, evaluation) -> search (the trainable, the
space, every arm as one Tune experiment, RUN_DIR, the summary) -> report (Table 1: frozen choices,
seed runs, statistics) and deploy (a trained model on new ECGs: export, predict) -> api and cli.
The Python API (api.py):

    import raysearch
    summary = raysearch.search(leads="4", trials=8, data="synthetic", space="tiny")
    raysearch.report(summary["run_dir"], seeds=2)
    raysearch.load_model(summary["leads"]["4"]["student"]["best_dir"]).predict(signals, metadata)

Importing the package is light: the API's modules (torch, Ray) load on first use.
"""

from raysearch.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "search", "report", "load_model"]


def __getattr__(name: str):
    if name in ("search", "report", "load_model"):
        from raysearch import api

        return getattr(api, name)
    raise AttributeError(f"module 'raysearch' has no attribute {name!r}")
