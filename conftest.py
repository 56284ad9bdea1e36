"""Tests and the notebooks that nbval runs use the smoke scale unless told otherwise."""

import os

os.environ.setdefault("DSLIB_SCALE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
