"""The learned quality model of DeepSeek-Coder §2.4, which the paper names but does not describe.

Ours is small and fast: a logistic regression (numpy, L2-regularised, full-batch Adam) on ``DIM`` hashed identifier
buckets (``log1p`` counts, L2-normalised; CRC-32 of each distinct identifier, so the buckets do not change between
processes) and a handful of layout statistics (line lengths, blank, comment and digit shares, identifier
density, repeated lines, size). Scoring a file costs one regex pass and one dot product.

**What it is trained on** (:func:`dslib.data.quality.training_set`): a signal from the corpus itself, no labels
from a hub:

- *good* (1): code files of the well-maintained projects in :data:`WELL_MAINTAINED` (CPython's standard library
  and large, reviewed libraries) that compile and pass every heuristic rule;
- *poor* (0): code files from any repository that compile but fail a heuristic rule (auto-generated, encoded
  data, comment ratio, few identifiers, repeated lines).

So the model learns a smooth version of "looks like the rules' rejects" that also fires on files the hard rules
let through. Its precision on files it drops is hand-checked (``dslib/data/quality_labels.csv``, notebook 01).
The shipped weights are ``models/<name>.npz``; ``python -m dslib.data.quality train`` retrains them.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).parent / "models"
DIM = 4096
WELL_MAINTAINED = ("cpython-stdlib", "numpy", "pandas", "torch", "transformers", "datasets", "matplotlib", "pytest")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
COMMENT_LINE = re.compile(r"^[ \t]*(?:#|//|/\*|\*|--|;)", re.MULTILINE)
STATS = ("mean_line", "max_line", "blank", "comment", "digits", "ident_density", "repeated", "log_size")


def repeated_line_fraction(text: str) -> float:
    """The share of lines longer than three characters (stripped) that repeat an earlier such line (Gopher's rule)."""
    lines = [s for s in map(str.strip, text.splitlines()) if len(s) > 3]
    if not lines:
        return 0.0
    return (len(lines) - len(set(lines))) / len(lines)


def layout_stats(text: str, identifiers: int, repeated: float) -> np.ndarray:
    """The dense features, each about 0–1 on ordinary code; C-level string operations only, for speed."""
    lines = text.count("\n") + 1
    size = max(len(text), 1)
    return np.array(
        [
            len(text) / lines / 100,
            max(map(len, text.split("\n"))) / 1000,
            text.count("\n\n") / lines,
            len(COMMENT_LINE.findall(text)) / lines,
            sum(map(text.count, "0123456789")) / size,  # ten C-level scans beat one regex substitution
            identifiers / size * 5,
            repeated,
            np.log1p(size) / 15,
        ],
        dtype=np.float32,
    )


_BUCKETS: dict[str, int] = {}  # identifier → bucket: the same identifiers recur in every file


def _bucket(identifier: str) -> int:
    _BUCKETS[identifier] = bucket = zlib.crc32(identifier.encode()) % DIM
    return bucket


def features(text: str, counts: Counter | None = None, repeated: float | None = None) -> np.ndarray:
    """``DIM`` hashed identifier buckets (L2-normalised ``log1p`` counts) followed by :func:`layout_stats`.

    ``counts`` (identifier → occurrences) and ``repeated`` (:func:`repeated_line_fraction`)
    may be passed in when the heuristic rules have computed them already.
    """
    if counts is None:
        counts = Counter(IDENT.findall(text))
    if repeated is None:
        repeated = repeated_line_fraction(text)
    vector = np.zeros(DIM + len(STATS), dtype=np.float32)
    if counts:
        if len(_BUCKETS) > 1_000_000:  # bound the cache on huge corpora
            _BUCKETS.clear()
        buckets = np.fromiter(
            (_BUCKETS[t] if t in _BUCKETS else _bucket(t) for t in counts), np.int64, count=len(counts)
        )
        np.add.at(vector, buckets, np.log1p(np.fromiter(counts.values(), np.float32, count=len(counts))))
        vector[:DIM] /= np.linalg.norm(vector[:DIM]) or 1.0
    vector[DIM:] = layout_stats(text, sum(counts.values()), repeated)
    return vector


class QualityModel:
    """``score(text)``: the probability that a code file is of the *good* class (see the module docstring)."""

    def __init__(self, weights: np.ndarray, bias: float, name: str = "custom"):
        self.weights, self.bias, self.name = np.asarray(weights, np.float32), float(bias), name

    def score(self, text: str, counts: Counter | None = None, repeated: float | None = None) -> float:
        return float(1 / (1 + np.exp(-(features(text, counts, repeated) @ self.weights + self.bias))))

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(matrix @ self.weights + self.bias)))

    @classmethod
    def fit(
        cls, matrix: np.ndarray, labels: np.ndarray, l2: float = 1e-4, steps: int = 400, lr: float = 0.05, seed: int = 0
    ) -> QualityModel:
        """Logistic regression, classes weighted to balance, by full-batch Adam from a seeded start."""
        labels = np.asarray(labels, np.float32)
        positive = labels.mean()
        if not 0 < positive < 1:
            raise ValueError(f"training needs both classes; got {int(labels.sum())} good of {len(labels)}")
        sample_weight = np.where(labels == 1, 0.5 / positive, 0.5 / (1 - positive)).astype(np.float32) / len(labels)
        rng = np.random.default_rng(seed)
        w, b = rng.normal(0, 1e-3, matrix.shape[1]).astype(np.float32), 0.0
        m, v, mb, vb = np.zeros_like(w), np.zeros_like(w), 0.0, 0.0
        for step in range(1, steps + 1):
            p = 1 / (1 + np.exp(-(matrix @ w + b)))
            error = (p - labels) * sample_weight
            grad_w, grad_b = matrix.T @ error + l2 * w, float(error.sum())
            m, v = 0.9 * m + 0.1 * grad_w, 0.999 * v + 0.001 * grad_w**2
            mb, vb = 0.9 * mb + 0.1 * grad_b, 0.999 * vb + 0.001 * grad_b**2
            correction = np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            w -= lr * correction * m / (np.sqrt(v) + 1e-8)
            b -= lr * correction * mb / (np.sqrt(vb) + 1e-8)
        return cls(w, b)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, weights=self.weights, bias=np.float32(self.bias), dim=DIM, stats=np.array(STATS))


@cache
def load_model(name: str) -> QualityModel:
    """The shipped model ``models/<name>.npz``; a clear error when it is missing or was built for other features."""
    path = MODEL_DIR / f"{name}.npz"
    if not path.is_file():
        available = sorted(p.stem for p in MODEL_DIR.glob("*.npz"))
        raise FileNotFoundError(f"no quality model {name!r} in {MODEL_DIR}; available: {available}")
    with np.load(path) as data:
        if int(data["dim"]) != DIM or tuple(data["stats"]) != STATS:
            raise ValueError(f"{path} was trained on other features (dim {int(data['dim'])}); retrain it")
        return QualityModel(data["weights"], float(data["bias"]), name)
