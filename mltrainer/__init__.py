"""mlt: a gated, five-phase workflow engine that trains PyTorch models reproducibly.

Importing the package must stay cheap: `mlt status` and `mlt --help` never import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"
