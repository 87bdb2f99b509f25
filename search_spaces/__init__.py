"""The search spaces raysearch ships: `--space default` (the paper's budget), `cpu`, `tiny`."""
