"""Command line: `python -m raysearch [search options]`, or a subcommand. The only module that
knows argparse: each command line becomes an options dataclass once, and the layers below take it.

    python -m raysearch --leads 4 --trials 64          # the search (searching/run.py)
    python -m raysearch data download|synth|info ...   # the data (data/download.py, synthetic.py, ptbxl.py)
    python -m raysearch train ...                      # one stage without Ray (training/standalone.py)
    python -m raysearch report RUN_DIR --seeds 5       # Table 1: seeds, CIs, paired test (reporting/run.py)
    python -m raysearch export MODEL --format onnx --out m.onnx   # a file for devices (deploy/export.py)
    python -m raysearch predict MODEL RECORD ...       # probabilities for WFDB records (deploy/predict.py)

User errors (UserError) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import sys

from raysearch.errors import UserError
from raysearch.log import messages_on_stderr

SUBCOMMANDS = ("data", "train", "report", "export", "predict", "search")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m raysearch` and the `raysearch` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "search"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    try:
        from raysearch.cli import model, search, stage

        commands = {
            "data": stage.data_main,
            "train": stage.train_main,
            "report": search.report_main,
            "export": model.export_main,
            "predict": model.predict_main,
            "search": search.search_main,
        }
        with messages_on_stderr():
            return commands[command](rest)
    except UserError as e:
        print(f"raysearch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raysearch: interrupted", file=sys.stderr)
        return 130
