"""Export, parity and latency: the machinery behind `mltrainer.export`.

Deliberately empty: the fresh-process parity worker (`python -m mltrainer.exporting.worker`)
imports this package, and an ONNX check must run in a process that never imported torch, which
is what a deployment without torch looks like. The public API lives in `mltrainer.export`.
"""
