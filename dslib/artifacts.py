"""Where each stage's output lives, and the JSON manifest that says how it was made.

Every stage writes under ``artifacts/<scale>/<stage>/`` and finishes by writing ``manifest.json``
(the config used, fingerprints of its inputs, counts, timings). A stage is *complete* when its
manifest exists and records the same config; notebooks call :func:`ensure` so that each one also runs
on its own, building the earlier stages it needs at the same scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def project_root() -> Path:
    """``$DSLIB_HOME``, else the source checkout ``dslib`` was installed from, else the working directory."""
    if "DSLIB_HOME" in os.environ:
        return Path(os.environ["DSLIB_HOME"]).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


def artifact_dir(scale: str, stage: str, create: bool = True) -> Path:
    path = project_root() / "artifacts" / scale / stage
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def figure_path(scale: str, name: str) -> Path:
    """``figures/<scale>/<name>``; the README's gallery shows the committed ``cpu`` ones."""
    path = project_root() / "figures" / scale / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, path: str | Path | None, dpi: int = 120):
    """Lay ``fig`` out tightly and, when ``path`` is given, save it there; returns ``fig``."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(obj: Any) -> str:
    """A short stable hash of a config, a value, or the bytes of a file or folder (path given as ``Path``)."""
    h = hashlib.sha256()
    if isinstance(obj, Path):
        files = sorted(p for p in obj.rglob("*") if p.is_file()) if obj.is_dir() else [obj]
        for p in files:
            h.update(str(p.relative_to(obj) if obj.is_dir() else p.name).encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    else:
        h.update(json.dumps(_jsonable(obj), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def write_manifest(
    directory: Path,
    config: Any,
    inputs: dict[str, str] | None = None,
    counts: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    **extra: Any,
) -> dict:
    """Write ``manifest.json`` last (atomically), marking the stage complete."""
    manifest = {
        "config": _jsonable(config),
        "config_fingerprint": fingerprint(config),
        "inputs": inputs or {},
        "counts": _jsonable(counts or {}),
        "timings": timings or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        **_jsonable(extra),
    }
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(directory / MANIFEST)
    return manifest


def read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def is_complete(directory: Path, config: Any) -> bool:
    manifest = read_manifest(directory)
    return manifest is not None and manifest.get("config_fingerprint") == fingerprint(config)


def ensure(scale: str, stage: str, config: Any, build: Callable[[Path], Any], force: bool = False) -> Path:
    """Return the stage's folder, running ``build(folder)`` first unless a matching manifest is there.

    ``build`` must end with :func:`write_manifest`; a partial earlier attempt is cleared first.
    """
    directory = artifact_dir(scale, stage)
    if force or not is_complete(directory, config):
        shutil.rmtree(directory)
        directory.mkdir(parents=True)
        build(directory)
        if not is_complete(directory, config):
            raise RuntimeError(f"stage {stage!r} at scale {scale!r} finished without writing its manifest")
    return directory
