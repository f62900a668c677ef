from __future__ import annotations

import os

# Tests run on 2 shared cores: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test may reach a hub: trackio (through huggingface_hub) would otherwise ask who is logged in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
