"""Running a shipped model without torch: a runner per export format (`runners`) and the
fresh-process parity worker (`python -m mltrainer.runtime.worker REQUEST.json`).

Deliberately light: an ONNX check must run in a process that never imported torch, which is
what a deployment without torch looks like; `mlt predict` runs the ONNX model the same way.
"""

# The files an image folder holds: torchvision's ImageFolder's IMG_EXTENSIONS (a test keeps
# them equal). Here, in a module that imports nothing, for the data layer (which `mlt status`
# imports to fingerprint a folder: no numpy there) and for predict's runtime alike.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
