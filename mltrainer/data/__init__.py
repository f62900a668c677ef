"""The data layer: sources, the split, fingerprints, preprocessing, the test-split lock.

    bundle = prepare_data(cfg, root, audit=...)   # load → split by content → fit on train
    bundle.train.X, bundle.val.y, bundle.test(phase="finalize")
    source_fingerprint(cfg, root)                 # cheap: `mlt status` calls it every time

Importing this package is cheap on purpose: `source_fingerprint` needs only the standard
library, and everything that imports pandas or scikit-learn loads on first attribute access.
The table path imports no torch; item data (image folders, text, torch Datasets: `_items.py`,
`_itemsets.py`) imports torch, torchvision, transformers and datasets when it is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mltrainer.data._imagefolder import ImageFolderSource  # registers imagefolder:<dir>
from mltrainer.data._manifest import fingerprint_path

# PythonSource registers python:<module>:<function>
from mltrainer.data._python import PythonSource, find_module_file
from mltrainer.data._sources import (
    SKLEARN_DATASETS,
    SOURCES,
    DataSource,
    RawData,
    register_source,
    source_fingerprint,
)
from mltrainer.data._text import TextSource  # registers text data (datasets folders, files)

if TYPE_CHECKING:
    from mltrainer.data._baseline import trivial_baseline
    from mltrainer.data._bundle import (
        DataBundle,
        Split,
        cache_prepared,
        prepare_data,
        running_phase,
    )
    from mltrainer.data._preprocess import Preprocessor
    from mltrainer.data._spec import DataSpec

_LAZY = {
    "prepare_data": "mltrainer.data._bundle",
    "cache_prepared": "mltrainer.data._bundle",
    "running_phase": "mltrainer.data._bundle",
    "DataBundle": "mltrainer.data._bundle",
    "DataSpec": "mltrainer.data._spec",
    "Split": "mltrainer.data._bundle",
    "Preprocessor": "mltrainer.data._preprocess",
    "trivial_baseline": "mltrainer.data._baseline",
}

__all__ = [
    "SKLEARN_DATASETS",
    "SOURCES",
    "DataBundle",
    "DataSource",
    "DataSpec",
    "ImageFolderSource",
    "Preprocessor",
    "PythonSource",
    "RawData",
    "Split",
    "TextSource",
    "cache_prepared",
    "find_module_file",
    "fingerprint_path",
    "prepare_data",
    "register_source",
    "running_phase",
    "source_fingerprint",
    "trivial_baseline",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mltrainer.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
