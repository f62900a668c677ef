"""Running a shipped model without torch: a runner per export format (`runners`) and the
fresh-process parity worker (`python -m mltrainer.runtime.worker REQUEST.json`).

Deliberately light: an ONNX check must run in a process that never imported torch, which is
what a deployment without torch looks like; `mlt predict` runs the ONNX model the same way.
"""
