"""The committed smoke-scale loss curve (torchtitan's practice): a silent numerical change in the model, the
optimizer, the schedule or the loop moves it.

The run is pinned completely by ``tests/golden/smoke_loss.json``: its model and training configs are stored
there (so editing the smoke preset does not move it) and the data is :class:`dslib.train.SyntheticStream`
(so the corpus does not either). Regenerate deliberately with ``python tests/test_train_golden.py``.
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from dslib.config import LongContextConfig, ModelConfig, Scale, TrainConfig, get_scale
from dslib.train import TrainRun, train

GOLDEN = Path(__file__).parent / "golden" / "smoke_loss.json"


def _scale(stored: dict) -> Scale:
    train_config = {k: tuple(v) if isinstance(v, list) else v for k, v in stored["train"].items()}
    return Scale(
        name="smoke",
        model=ModelConfig(**stored["model"]),
        train=TrainConfig(**train_config),
        long_context=LongContextConfig(**stored["long_context"]),
    )


def _losses(scale: Scale, output_dir: Path) -> list[float]:
    result = train(TrainRun(scale, output_dir=output_dir, data="synthetic", resume=False, progress=False))
    return [row["loss"] for row in result.metrics]


def test_smoke_loss_curve_matches_golden(tmp_path):
    stored = json.loads(GOLDEN.read_text())
    losses = _losses(_scale(stored), tmp_path)
    assert len(losses) == len(stored["losses"])
    assert losses == pytest.approx(stored["losses"], rel=1e-4)


if __name__ == "__main__":
    import tempfile

    smoke = get_scale("smoke")
    stored = {"model": asdict(smoke.model), "train": asdict(smoke.train), "long_context": asdict(smoke.long_context)}
    with tempfile.TemporaryDirectory() as tmp:
        stored["losses"] = _losses(_scale(stored), Path(tmp))
    stored["generated_with"] = {"torch": torch.__version__, "python": sys.version.split()[0]}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(stored, indent=1) + "\n")
    print(f"wrote {GOLDEN}: {len(stored['losses'])} steps, final loss {stored['losses'][-1]:.4f}")
