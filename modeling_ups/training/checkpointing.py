"""Crash-safe training checkpoints.

A checkpoint is written into ``<dir>/step_<N>.partial`` and renamed to ``step_<N>`` only after every file is on
disk and a ``COMPLETE`` marker (holding the step) has been written and fsynced. A kill at any moment therefore
leaves either the previous complete checkpoint or a ``.partial`` folder that is never taken for a checkpoint.
Resuming picks the newest folder that has a valid marker; incomplete or damaged ones are reported by name.
"""

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Optional

logger = logging.getLogger(__name__)

MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def _fsync_dir(path: Path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointManager:
    """Writes, lists and prunes checkpoints under ``root``.

    Args:
        root: folder holding ``step_<N>`` checkpoints.
        keep_last: number of complete checkpoints to keep (older ones are deleted after a successful save).
    """

    def __init__(self, root, keep_last: int = 2):
        self.root = Path(root)
        self.keep_last = keep_last

    def partial_dir(self, step: int) -> Path:
        return self.root / f"step_{step}.partial"

    def begin(self, step: int) -> Path:
        """Create an empty ``step_<step>.partial`` folder to write a checkpoint into (main process only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.partial_dir(step)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
        return partial

    def commit(self, step: int, extra: Optional[dict] = None) -> Path:
        """Mark ``step_<step>.partial`` complete (marker written and fsynced last) and rename it to ``step_<step>``."""
        partial, final = self.partial_dir(step), self.root / f"step_{step}"
        for p in partial.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        marker = {"step": step, "files": sorted(p.name for p in partial.iterdir()), **(extra or {})}
        with open(partial / MARKER, "w") as f:
            json.dump(marker, f)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync_dir(self.root)
        self._prune()
        return final

    def save(self, step: int, write_fn: Callable[[Path], None], extra: Optional[dict] = None) -> Path:
        """Single-process convenience: ``begin``, ``write_fn(folder)``, ``commit``."""
        write_fn(self.begin(step))
        return self.commit(step, extra)

    def is_complete(self, folder: Path) -> bool:
        marker = Path(folder) / MARKER
        if not marker.is_file():
            return False
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        return all((Path(folder) / name).exists() for name in info.get("files", []))

    def checkpoints(self, warn: bool = True):
        """Complete checkpoints, oldest first, as (step, folder); warns about every damaged one."""
        found = []
        if not self.root.is_dir():
            return found
        for p in self.root.iterdir():
            m = _STEP_DIR.match(p.name)
            if p.is_dir() and p.name.endswith(".partial"):
                if warn:
                    logger.warning(f"Ignoring interrupted checkpoint {p} (its write never completed)")
            elif m and p.is_dir():
                if self.is_complete(p):
                    found.append((int(m.group(1)), p))
                elif warn:
                    logger.warning(f"Ignoring incomplete checkpoint {p} (missing or damaged {MARKER} marker)")
        return sorted(found)

    def latest(self) -> Optional[Path]:
        ckpts = self.checkpoints()
        return ckpts[-1][1] if ckpts else None

    def resolve(self, spec) -> Optional[Path]:
        """``spec`` is ``"latest"``, a ``step_<N>`` folder, or a run folder holding ``checkpoints/``."""
        if spec in (None, "", False):
            return None
        if spec == "latest":
            return self.latest()
        path = Path(spec)
        if (path / "checkpoints").is_dir():
            return CheckpointManager(path / "checkpoints").latest()
        if self.is_complete(path):
            return path
        fallback = CheckpointManager(path.parent).latest()
        logger.warning(f"Checkpoint {path} is incomplete or damaged; using {fallback} instead")
        return fallback

    @staticmethod
    def step_of(folder: Path) -> int:
        return int(json.loads((Path(folder) / MARKER).read_text())["step"])

    def _prune(self):
        ckpts = self.checkpoints()
        for _, folder in ckpts[: max(0, len(ckpts) - self.keep_last)]:
            shutil.rmtree(folder, ignore_errors=True)
