"""Small pool shards for tests and benches: webdataset tars laid out as img2dataset writes them
(`000000042.jpg` + `.json` + `.txt`) and parquet files (image bytes or URLs), plus ways to break them."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Sequence

from PIL import Image

from relcurate.testing.models import noise_images


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_wds_shard(path: str | Path, images: Sequence[Image.Image], *, first_key: int = 0,
                    url_base: str = "https://example.invalid/img", extra: dict[int, bytes] | None = None) -> list[str]:
    """One img2dataset-style shard; returns its keys. `extra[k]` replaces image k's bytes (to plant
    an undecodable image)."""
    keys = []
    with tarfile.open(path, "w") as tar:
        for k, im in enumerate(images):
            key = f"{first_key + k:09d}"
            data = (extra or {}).get(k) or jpeg_bytes(im)
            meta = {"url": f"{url_base}/{key}.jpg", "key": key, "caption": f"caption {key}",
                    "width": im.width, "height": im.height, "sha256": hashlib.sha256(data).hexdigest()}
            _add(tar, f"{key}.jpg", data)
            _add(tar, f"{key}.json", json.dumps(meta).encode())
            _add(tar, f"{key}.txt", meta["caption"].encode())
            keys.append(key)
    return keys


def write_parquet_shard(path: str | Path, images: Sequence[Image.Image] | None = None, *,
                        urls: Sequence[str] | None = None, first_key: int = 0) -> list[str]:
    """img2dataset parquet output (a `jpg` bytes column) when `images`, else a URL list."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(images) if images is not None else len(urls or [])
    keys = [f"{first_key + k:09d}" for k in range(n)]
    cols = {"key": keys, "url": list(urls) if urls else [f"https://example.invalid/p/{k}.jpg" for k in keys],
            "caption": [f"caption {k}" for k in keys]}
    if images is not None:
        cols["jpg"] = pa.array([jpeg_bytes(im) for im in images], type=pa.binary())
    pq.write_table(pa.table(cols), path, row_group_size=max(1, n // 2 or 1))
    return keys


def write_pool(folder: str | Path, *, n_tar: int = 3, n_parquet: int = 1, per_shard: int = 5, seed: int = 3) -> list[Path]:
    """A few healthy shards (tars then parquet-with-bytes) of noise images; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = noise_images((n_tar + n_parquet) * per_shard, seed=seed)
    paths = []
    for s in range(n_tar + n_parquet):
        chunk = images[s * per_shard:(s + 1) * per_shard]
        if s < n_tar:
            p = folder / f"{s:05d}.tar"
            write_wds_shard(p, chunk, first_key=s * 10_000)
        else:
            p = folder / f"{s:05d}.parquet"
            write_parquet_shard(p, chunk, first_key=s * 10_000)
        paths.append(p)
    return paths


def truncate(path: str | Path, keep_fraction: float = 0.6) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep_fraction)])
