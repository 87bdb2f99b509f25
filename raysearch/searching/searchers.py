"""A Tune Searcher over a fixed list of configurations (the teacher search, the report's seed
runs): each given once, in order; public Tune interfaces only.
"""

from __future__ import annotations

from ray.tune.search import Searcher

from raysearch.files import write_bytes


class FixedSearcher(Searcher):
    """Suggests the given configurations in order, each once, then reports it is finished."""

    def __init__(self, configs: list[dict], metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.configs = list(configs)
        self.given: dict[str, int] = {}

    def suggest(self, trial_id: str):
        if trial_id in self.given:
            return dict(self.configs[self.given[trial_id]])
        if len(self.given) >= len(self.configs):
            return Searcher.FINISHED
        self.given[trial_id] = len(self.given)
        return dict(self.configs[self.given[trial_id]])

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass

    def save(self, checkpoint_path: str) -> None:
        import pickle

        write_bytes(checkpoint_path, pickle.dumps({"configs": self.configs, "given": self.given}))

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as fh:
            state = pickle.load(fh)
        self.configs, self.given = state["configs"], state["given"]
