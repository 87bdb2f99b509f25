"""PTB-XL as raysearch reads it: the schema (classes, leads, folds), the database csv, the WFDB
records converted once into a memory-mapped cache, the synthetic demo set, the download, and
which dataset `--data` names.
"""
