"""The console while a search runs: one compact part per row (the teacher search, each arm) and
its forecast, nothing else.

    ProgressRow("student-4", trials=64, epochs=30, expected_epochs=9.4)       # what one row (an arm) will do
    ConsoleProgress([row], later=[...], slots=8, measured={...})      # a Tune Callback

The view is computed afresh from Tune's own trial list at every step (nothing to keep in sync,
nothing lost by a resume): trials finished (every epoch), stopped early by ASHA, errored and
running, the best validation macro-AUC so far (of the trials that ran every epoch, at their last
epoch: what the search would keep now), elapsed time and, after the first epochs, the
time left for the whole search, kept current. On a terminal the line is refreshed in place;
in a log it is printed every `interval` seconds and when a row ends.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from dataclasses import dataclass

from ray.tune import Callback

from raysearch.training.config import METRIC


@dataclass
class ProgressRow:
    """What a row is asked to do: its trials, their epochs, the epochs ASHA lets one run on average."""

    name: str
    trials: int
    epochs: int
    expected_epochs: float


def expected_epochs(epochs: int, grace: int | None = None, reduction: int | None = None) -> float:
    """Epochs an average trial runs: all of them without ASHA; with it, every trial runs to the
    first rung (grace), and a 1/reduction share of those at each rung runs on to the next."""
    if not grace or not reduction:
        return float(epochs)
    total, rung, share = 0.0, 0, 1.0
    while rung < epochs:
        nxt = min(max(grace, rung * reduction) if rung else grace, epochs)
        total += share * (nxt - rung)
        rung, share = nxt, share / reduction
    return total


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def epoch_seconds(result: dict) -> float:
    """A trial's seconds per epoch so far, without the once-per-search wait for the teacher's
    cached embeddings (the trial that computed them would otherwise look many times slower)."""
    iters = int(result.get("training_iteration") or 0)
    total = result.get("time_total_s", 0.0) - (result.get("teacher_cache_seconds") or 0.0)
    return max(total, 0.0) / iters if iters else 0.0


class ConsoleProgress(Callback):
    """Tune callback printing raysearch's progress view for the rows of one Tune run.

    `later`: the rows that run after this one (their time counts in the forecast); `measured`:
    seconds per epoch already measured by earlier rows of the search, by row name.
    """

    def __init__(
        self,
        rows: list[ProgressRow],
        slots: int,
        later=(),
        measured=None,
        started=None,
        interval: float = 30.0,
    ):
        self.rows, self.later, self.slots = list(rows), list(later), max(1, slots)
        self.measured, self.interval = dict(measured or {}), interval
        self.started = started or time.time()  # the search's start: elapsed counts all its rows
        self.last_print, self.reported = 0.0, set()

    def __getstate__(self):  # Tune pickles callbacks into the experiment; a restore starts anew
        return {k: v for k, v in self.__dict__.items() if k not in ("last_print", "reported")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.started = time.time()
        self.last_print, self.reported = 0.0, set()

    # -- the view ------------------------------------------------------------------------

    def _count(self, row: ProgressRow, trials: list) -> dict:
        mine = [t for t in trials if t.config.get("stage") and self._row_of(t) == row.name]
        out = {
            "done": 0,
            "stopped": 0,
            "errored": 0,
            "running": 0,
            "epochs": 0,
            "best": None,
            "per_epoch": [],
        }
        for t in mine:
            last = t.last_result or {}
            iters = int(last.get("training_iteration", 0) or 0)
            out["epochs"] += iters
            if iters:
                out["per_epoch"].append(epoch_seconds(last))
            # what the search would choose now: a trial that ran every epoch, by its last epoch's
            # value (the kept checkpoint's, as in the summary, the report, TensorBoard and Optuna)
            final = last.get(METRIC) if t.status == "TERMINATED" and iters >= row.epochs else None
            if final is not None and (out["best"] is None or final > out["best"]):
                out["best"] = final
            if t.status == "ERROR":
                out["errored"] += 1
            elif t.status == "TERMINATED":
                out["done" if iters >= row.epochs else "stopped"] += 1
            elif t.status == "RUNNING":
                out["running"] += 1
        return out

    def _row_of(self, trial) -> str:
        if len(self.rows) == 1:
            return self.rows[0].name
        return trial.config.get("arm") or f"{trial.config['stage']}-{trial.config['leads']}"

    def _left(self, counts: dict[str, dict]) -> tuple[float, bool] | None:
        """Seconds left for this run and the later rows, from measured seconds per epoch, and
        whether every row could be counted. A row not yet measured borrows the median of the
        measured arms (not the teacher's: its network costs several times a student's)."""
        for name, c in counts.items():
            if c["per_epoch"]:
                self.measured[name] = statistics.median(c["per_epoch"])
        if not self.measured:
            return None
        arms = [v for k, v in self.measured.items() if not k.startswith("teacher")]
        fallback = statistics.median(arms) if arms else None
        work, complete = 0.0, True
        for row in self.rows + self.later:
            done = counts[row.name]["epochs"] if row.name in counts else 0
            remaining = max(0.0, row.trials * row.expected_epochs - done)
            per_epoch = self.measured.get(row.name, fallback)
            if per_epoch is None:
                complete = complete and remaining == 0
                continue
            work += remaining * per_epoch
        return work / self.slots, complete

    def line(self, trials: list, counts: dict[str, dict] | None = None) -> str:
        """The progress line; `counts`: this step's `_count` of every row, when already made."""
        counts = counts or {s.name: self._count(s, trials) for s in self.rows}
        left = self._left(counts)
        parts = []
        for row in self.rows:
            c = counts[row.name]
            finished = c["done"] + c["stopped"] + c["errored"]
            if finished == row.trials and row.name in self.reported:
                continue
            if len(self.rows) > 2:  # every arm at once: a short part each (ends get their own line)
                running = f" ({c['running']} running)" if c["running"] else ""
                parts.append(f"{row.name} {finished}/{row.trials}{running}")
                continue
            best = f", best val AUC {c['best']:.4f}" if c["best"] is not None else ""
            parts.append(
                f"{row.name} {finished}/{row.trials} done ({c['stopped']} stopped early, "
                f"{c['errored']} errored), {c['running']} running{best}"
            )
        if left is None:
            eta = ", time left: after the first epochs"
        elif left[1]:
            eta = f", ~{clock(left[0])} left"
        else:
            eta = f", ~{clock(left[0])} left in this run (the next ones: after their first epochs)"
        return f"[{clock(time.time() - self.started)} elapsed{eta}] " + " | ".join(parts)

    def _print(self, text: str, final: bool = False) -> None:
        if sys.stderr.isatty():  # refreshed in place: one terminal line, never wrapped
            width = shutil.get_terminal_size().columns - 1
            text = text if final or len(text) <= width else text[: width - 1] + "…"
            sys.stderr.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    # -- Tune's events -------------------------------------------------------------------

    def on_step_end(self, iteration: int, trials: list, **info):
        now = time.time()
        counts = {s.name: self._count(s, trials) for s in self.rows}
        for row in self.rows:  # a row that has just ended gets a line of its own
            c = counts[row.name]
            if row.name not in self.reported and c["done"] + c["stopped"] + c["errored"] == row.trials:
                self.reported.add(row.name)
                best = f"{c['best']:.4f}" if c["best"] is not None else "-"
                self._print(
                    f"{row.name} finished: {row.trials} trials ({c['done']} ran every epoch, "
                    f"{c['stopped']} stopped early, {c['errored']} errored), best val AUC {best}, "
                    f"{clock(now - self.started)} elapsed",
                    final=True,
                )
        if sys.stderr.isatty() or now - self.last_print >= self.interval:
            self.last_print = now
            self._print(self.line(trials, counts))

    def on_trial_error(self, iteration: int, trials: list, trial, **info):
        self._print(
            f"trial {trial.trial_id} ({self._row_of(trial)}) errored: see {trial.path}/error.txt", True
        )

    def on_experiment_end(self, trials: list, **info):
        if sys.stderr.isatty():
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
