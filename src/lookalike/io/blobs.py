"""Downloaded images on disk, kept by content: ``ROOT/<k[:2]>/<k>.<ext>`` for content key ``k``, written once,
atomically. A catalog item needs a path of its own, so where two items show the same picture (two products, say),
the second gets a hard link to it (a copy where the file system has none) under ``ROOT/items/``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from lookalike.io.files import atomic_write

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp", "WebP": ".webp",
              "HEIF": ".heic"}


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes, key: str, image_format: str) -> Path:
        """Keep the bytes (content key ``key``) unless they are kept already; returns their path. Written without
        fsync (see ``atomic_write``): a machine's crash can lose a kept image, never tear one, and
        :meth:`has` tells a lost one, which is then downloaded again."""
        path = self.root / key[:2] / f"{key}{EXTENSIONS.get(image_format, '.img')}"
        if not self.has(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, durable=False) as file:
                file.write(data)
        return path

    @staticmethod
    def has(path: Path) -> bool:
        """Whether a kept image is there and not empty (an empty one is what a crash before the flush leaves)."""
        try:
            return path.stat().st_size > 0
        except OSError:
            return False

    def item_path(self, stored: Path, sku: str, position: int) -> Path:
        """A path of its own for the ``position``-th image of product ``sku``, showing the stored image."""
        owner = hashlib.sha1(sku.encode(), usedforsecurity=False).hexdigest()
        path = self.root / "items" / owner[:2] / f"{owner}-{position}-{stored.stem[:16]}{stored.suffix}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(stored, tmp)
            except OSError:
                shutil.copyfile(stored, tmp)
            os.replace(tmp, path)
        return path

    def forget(self, paths: list[str], keep: set[str]) -> None:
        """Remove item paths no item shows any more (the stored images stay)."""
        items = self.root / "items"
        for name in paths:
            path = Path(name)
            if name not in keep and path.is_relative_to(items):
                with contextlib.suppress(OSError):
                    path.unlink()
