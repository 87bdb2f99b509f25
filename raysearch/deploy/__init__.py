"""A trained model used on new ECGs: a model folder or an exported file (ONNX, TorchScript)
opened alike, WFDB records read for it, and the `predict` and `export` commands.
"""
