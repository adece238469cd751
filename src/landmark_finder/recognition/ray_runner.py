"""Describe photos on a Ray cluster: Ray Data ``map_batches`` over ONNX Runtime actors.

The same per-photo work as :mod:`~.runner` (decode → descriptor → keypoints, in the same fixed
chunks, each by one single-threaded ONNX Runtime session), so a build on a cluster gives the
index a local build gives. Each Ray actor rebuilds the extractor once from the ONNX model, which
travels through Ray's object store: worker nodes need the photos (shared storage mounted at the
same path, or object storage mounted with e.g. s3fs/gcsfuse) but not the model cache. Results
come back as ``.npy`` bytes (read with ``allow_pickle=False``) and are yielded in input order;
the caller writes them as index segments exactly as after a local run.

``address`` None starts a local Ray instance (every core of this machine); otherwise it is
what ``ray.init`` takes: ``auto`` on a cluster node, ``ray://head:10001`` from outside.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from landmark_finder.i18n import N_
from landmark_finder.recognition.runner import CHUNK, DescribeSpec, PhotoResult
from landmark_finder.verify.keypoints import LocalFeatures


def _npy(arr: np.ndarray | None) -> bytes:
    if arr is None:
        return b""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr))
    return buf.getvalue()


def _arr(data: bytes) -> np.ndarray | None:
    return np.load(io.BytesIO(data), allow_pickle=False) if data else None


class _Describer:
    """A Ray Data actor: one extractor, many chunks (one chunk per row)."""

    def __init__(self, spec: DescribeSpec, model: bytes):
        from landmark_finder.recognition import runner

        if not Path(spec.onnx_path).is_file():  # another machine: the model came with us
            f = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False)
            f.write(model)
            f.close()
            spec = dataclasses.replace(spec, onnx_path=f.name)
        runner._init(spec)
        self._run = runner._run_chunk

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {k: [] for k in ("index", "error", "descriptor", "xy", "desc")}
        for first, paths in zip(batch["first"], batch["paths"], strict=True):
            chunk = [(int(first) + j, str(p)) for j, p in enumerate(str(paths).split("\n"))]
            for r in self._run(chunk):
                out["index"].append(r.index)
                out["error"].append(r.error or "")
                out["descriptor"].append(_npy(r.descriptor))
                out["xy"].append(_npy(r.local.xy if r.local is not None else None))
                out["desc"].append(_npy(r.local.desc if r.local is not None else None))
        return {
            "index": np.array(out["index"], np.int64),
            **{k: np.array(v, dtype=object) for k, v in out.items() if k != "index"},
        }


def describe_photos_ray(
    paths: Iterable[str | Path],
    spec: DescribeSpec,
    address: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    what: str = N_("describing photos on Ray"),
) -> Iterator[PhotoResult]:
    """Like :func:`~.runner.describe_photos`, on Ray; yields results in input order."""
    try:
        import ray
    except ImportError:
        msg = "describing on Ray needs Ray: pip install 'landmark-finder[cluster]'"
        raise ValueError(msg) from None

    paths = [str(p) for p in paths]
    if not paths:
        return
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # unreachable address, a node that fails to start, ...
            where = f"at {address}" if address else "(local instance)"
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"cannot start or reach Ray {where}: {msg}") from None
    # One row per fixed chunk (the photos a local run batches together): same results.
    rows = [
        {"first": s, "paths": "\n".join(paths[s : s + CHUNK])} for s in range(0, len(paths), CHUNK)
    ]
    model = Path(spec.onnx_path).read_bytes()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * cpus))
    out = ds.map_batches(
        _Describer,
        fn_constructor_args=(spec, model),
        batch_size=1,
        batch_format="numpy",
        concurrency=(1, min(cpus, len(rows))),
        num_cpus=1,
    )
    got: dict[int, PhotoResult] = {}
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        for j, i in enumerate(batch["index"]):
            xy, desc = _arr(batch["xy"][j]), _arr(batch["desc"][j])
            got[int(i)] = PhotoResult(
                int(i),
                Path(paths[int(i)]),
                _arr(batch["descriptor"][j]),
                LocalFeatures(xy, desc) if xy is not None else None,
                batch["error"][j] or None,
            )
            if progress:
                progress(len(got), len(paths), what)
    for i in range(len(paths)):
        yield got.get(i) or PhotoResult(i, Path(paths[i]), error=f"{paths[i]}: not described")
