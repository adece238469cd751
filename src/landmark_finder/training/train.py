"""The training loop: metric learning of the descriptor head, with the usual safety nets.

Two modes:

* ``fast`` (default, CPU-friendly): the backbone stays frozen; every photo's views are described
  once (and cached on disk, :mod:`.features`), and only the projection head is trained on those
  cached features — seconds per epoch.
* ``full``: the last ``unfreeze`` stages of the backbone are trained too (at a tenth of the
  head's learning rate, batch-norm statistics frozen), on freshly augmented square crops. Much
  slower on a CPU; it starts from the same whitening-initialised head.

Every epoch: validation on a near-duplicate-aware held-out split (retrieval mAP / top-1 of the
held-out photos against the training photos — the metric that matters for recognition —, plus
loss and accuracy), reduce-LR-on-plateau and early stopping on validation mAP, ``history.csv`` and
``curves.png`` rewritten, the best model saved to ``model.safetensors`` and a resumable
``checkpoint.safetensors`` (weights, optimizer, scheduler, random state, history). Ctrl-C saves
the checkpoint before stopping; ``resume=True`` continues from it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from landmark_finder.training.curves import EpochStats, write_csv, write_png
from landmark_finder.training.data import (
    AugmentConfig,
    BalancedSampler,
    Collection,
    augment,
    read_collection,
    split_train_val,
)
from landmark_finder.training.heads import (
    LOSSES,
    DescriptorNetwork,
    HeadConfig,
    ProjectionHead,
    make_loss,
)
from landmark_finder.training.model import save_model, save_tensors

Progress = Callable[[int, int, str], None]
CHECKPOINT = "checkpoint.safetensors"
HISTORY = "history.csv"
CURVES = "curves.png"
MODES = ("fast", "full")
#: Settings a resumed run may change (the rest must match the checkpoint).
RESUMABLE_CHANGES = ("epochs", "patience", "threads", "cache")
#: Full mode: training photos per landmark used as the gallery of the validation retrieval.
VAL_GALLERY_PER_CLASS = 10


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the checkpoint was saved; ``--resume`` continues."""


@dataclass
class TrainConfig:
    dataset: str
    out: str
    backbone: str = "efficientnet-lite2"
    mode: str = "fast"
    loss: str = "arcface"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dim: int = 512
    hidden: int = 0
    size: int = 352
    gem_p: float = 3.0
    views: int = 8  # fast mode: 1 clean + views-1 augmented views per photo
    val_fraction: float = 0.15
    val_landmarks: int = 0  # > 0: validate on this many whole landmarks, left out of training
    patience: int = 8  # early stopping, epochs without validation improvement
    lr_patience: int = 2
    lr_factor: float = 0.3
    min_lr: float = 1e-6
    unfreeze: int = 2  # full mode: trainable last blocks of the backbone
    backbone_lr: float = 0.1  # full mode: backbone lr = lr * backbone_lr
    margin: float = 0.3
    scale: float = 30.0
    subcenters: int = 3
    init: str = "whitening"  # "whitening" | "random"
    landmarks: list[str] | None = None
    seed: int = 0
    cache: str | None = None
    threads: int | None = None

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose fast or full")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.init not in ("whitening", "random"):
            raise ValueError(f"unknown init {self.init!r}; choose whitening or random")
        if self.backbone.startswith("model:"):
            raise ValueError("train from a pretrained backbone, not from a trained model")
        for name in ("epochs", "batch_size", "dim", "size", "views"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise ValueError("the learning rate must be positive")
        if self.val_landmarks < 0:
            raise ValueError("val_landmarks must be 0 or more")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    out: Path
    history: list[EpochStats]
    best_epoch: int
    best_val_map: float
    epochs_run: int
    stopped_early: bool
    seconds: float  # training time, summed over resumed runs (feature caching included)
    n_train: int
    n_val: int
    classes: list[str]
    warnings: list[str] = field(default_factory=list)


# --- helpers ---------------------------------------------------------------------------------


def _retrieval(
    q: torch.Tensor,
    q_lab: np.ndarray,
    g: torch.Tensor,
    g_lab: np.ndarray,
    leave_one_out: bool = False,
) -> tuple[float, float]:
    """(mAP, top-1) of queries ``q`` ranking gallery ``g`` by cosine similarity; with
    ``leave_one_out`` (``g`` is ``q``) each photo ranks the others."""
    if len(q) < 1 + leave_one_out or len(g) == 0:
        return math.nan, math.nan
    sims = (F.normalize(q, dim=-1) @ F.normalize(g, dim=-1).T).numpy()
    if leave_one_out:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    if leave_one_out:
        order = order[:, :-1]  # the photo itself, ranked last
    rel = g_lab[order] == q_lab[:, None]
    top1 = float(rel[:, 0].mean())
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    n_rel = np.maximum(rel.sum(1), 1)
    ap = (prec * rel).sum(1) / n_rel
    return float(ap.mean()), top1


def held_out_landmarks(col: Collection, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) with ``n`` whole landmarks held out for validation.

    Validating on landmarks the head never saw measures what a user adding a new landmark gets;
    a per-photo split only measures the trained landmarks. The landmarks are chosen by a seeded
    hash of their ids, so the choice is stable when others are added.
    """
    import hashlib

    if n >= len(col.classes) - 1:
        raise ValueError(
            f"cannot hold out {n} of {len(col.classes)} landmarks: at least 2 must "
            "stay for training"
        )
    key = [hashlib.sha256(f"{seed}:{c}".encode()).hexdigest() for c in col.classes]
    held = set(np.argsort(key)[:n].tolist())
    is_val = np.array([lab in held for lab in col.labels])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def trainable_tail(module: nn.Module, n: int) -> list[nn.Parameter]:
    """Parameters of the last ``n`` blocks of the backbone and of everything after them.

    The block list is the longest ``ModuleList``/``Sequential`` in the network (EfficientNet's
    ``_blocks``, MobileNet's ``features``, a ViT's ``encoder.layer``); modules registered after
    it (head convolution, final norm) belong to the tail too.
    """
    best_name, best = "", None
    for name, m in module.named_modules():
        if isinstance(m, (nn.ModuleList, nn.Sequential)) and (best is None or len(m) > len(best)):
            best_name, best = name, m
    if best is None or len(best) < 2:
        raise ValueError("cannot find the backbone's blocks to unfreeze; use --mode fast")
    n = max(1, min(n, len(best)))
    prefix = f"{best_name}.{len(best) - n}." if best_name else f"{len(best) - n}."
    params, on = [], False
    for name, p in module.named_parameters():
        on = on or name.startswith(prefix)
        if on:
            params.append(p)
    return params


def _square_tensor(img: Image.Image, size: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    a = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), np.float32)
    return ((a.transpose(2, 0, 1) / 255.0) - mean) / std


def _photo_tensor(
    img: Image.Image, size: int, mean: np.ndarray, std: np.ndarray, multiple: int
) -> torch.Tensor:
    """Aspect-preserving resize to long side ``size``, as the extractor does at index time."""
    w, h = img.size
    s = size / max(w, h)
    nw, nh = (max(multiple, int(round(v * s / multiple)) * multiple) for v in (w, h))
    a = np.asarray(img.resize((nw, nh), Image.Resampling.BICUBIC), np.float32)
    return torch.from_numpy(((a.transpose(2, 0, 1) / 255.0) - mean) / std)[None]


# --- the trainer -----------------------------------------------------------------------------


class Trainer:
    """Holds the state of one training run; :func:`train` is the entry point."""

    def __init__(
        self,
        cfg: TrainConfig,
        progress: Progress | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.progress = progress or (lambda d, t, w: None)
        self.on_epoch = on_epoch or (lambda s: None)
        self.warnings: list[str] = []
        self.elapsed = 0.0
        # The fast mode's matrices are small: one thread is several times faster than two
        # fighting over a busy CPU (measured 6 ms against 100 ms per step). ``threads`` is for
        # the backbone (feature caching, full mode).
        torch.set_num_threads(
            1 if cfg.mode == "fast" else (cfg.threads or min(2, torch.get_num_threads()))
        )

    # -- data ------------------------------------------------------------------------------

    def prepare(self, split: tuple[list[str], list[str]] | None = None) -> None:
        from landmark_finder.core.descriptors import Extractor, Preprocessing
        from landmark_finder.training.features import default_cache, describe_views

        cfg = self.cfg
        col = read_collection(Path(cfg.dataset), cfg.landmarks)
        self.warnings += col.warnings
        self.extractor = Extractor.create(
            cfg.backbone, Preprocessing(size=cfg.size, gem_p=cfg.gem_p), threads=cfg.threads
        )
        cache = Path(cfg.cache) if cfg.cache else default_cache()
        n_views = cfg.views if cfg.mode == "fast" else 1
        feats, kept, errors = describe_views(
            self.extractor, col.photos, n_views, AugmentConfig(), cfg.seed, cache, self.progress
        )
        self.warnings += errors
        col = col.subset(kept)
        self.collection: Collection = col
        self.features = torch.from_numpy(feats)  # (N, V, D) frozen-backbone views
        if split is None:
            tr, va = (
                held_out_landmarks(col, cfg.val_landmarks, cfg.seed)
                if cfg.val_landmarks
                else split_train_val(col, cfg.val_fraction, cfg.seed)
            )
        else:  # resuming: exactly the photos of the interrupted run
            pos = {str(p.path): i for i, p in enumerate(col.photos)}
            tr = np.array([pos[p] for p in split[0] if p in pos], np.int64)
            va = np.array([pos[p] for p in split[1] if p in pos], np.int64)
        self.train_idx, self.val_idx = tr, va
        # Loss labels 0..C-1 over the trained landmarks; -1 for held-out ones.
        trained = np.unique(col.labels[tr])
        if len(trained) < 2:
            raise ValueError("training needs photos of at least 2 landmarks")
        remap = np.full(len(col.classes), -1, np.int64)
        remap[trained] = np.arange(len(trained))
        self.labels = remap[col.labels]
        self.classes = [col.classes[c] for c in trained]
        self.val_labels = col.labels  # retrieval ground truth, held-out landmarks included
        self.disjoint = bool(len(va)) and bool((self.labels[va] < 0).any())

    # -- model -----------------------------------------------------------------------------

    def build(self) -> None:
        from landmark_finder import backbones

        cfg = self.cfg
        self.base = backbones.load(cfg.backbone)
        head = ProjectionHead(HeadConfig(self.extractor.dim, cfg.dim, cfg.hidden, cfg.gem_p))
        self.net = DescriptorNetwork(self.base.module, self.base.output, cfg.gem_p, head)
        for p in self.net.backbone.parameters():
            p.requires_grad_(False)
        self.tail: list[nn.Parameter] = []
        if cfg.mode == "full":
            self.tail = trainable_tail(self.net.backbone, cfg.unfreeze)
            for p in self.tail:
                p.requires_grad_(True)
        self.loss = make_loss(
            cfg.loss, cfg.dim, len(self.classes), cfg.scale, cfg.margin, cfg.subcenters
        )
        groups = [{"params": list(head.parameters()) + list(self.loss.parameters()), "lr": cfg.lr}]
        if self.tail:
            groups.append({"params": self.tail, "lr": cfg.lr * cfg.backbone_lr})
        self.opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="max", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr
        )
        self.rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)

    def initialise(self) -> None:
        """Whitening start for the projection, class-mean start for the margin loss."""
        cfg = self.cfg
        x = self.features[self.train_idx]  # (n, V, D)
        lab = self.labels[self.train_idx]
        if cfg.init == "whitening":
            flat = x.reshape(-1, x.shape[-1]).numpy()
            if not self.net.head.init_from_whitening(flat, np.repeat(lab, x.shape[1])):
                self.warnings.append(
                    "whitening start not possible (too few photos, "
                    "or dim above the backbone's); the head starts at random"
                )
        with torch.no_grad():
            emb = self.net.head(x[:, 0])
        self.loss.init_centres(emb, torch.from_numpy(lab))

    # -- epochs ----------------------------------------------------------------------------

    def _batch_inputs(self, idx: np.ndarray) -> torch.Tensor:
        """Head input for the fast mode, network output for the full mode."""
        if self.cfg.mode == "fast":
            views = self.rng.integers(0, self.features.shape[1], len(idx))
            return self.net.head(self.features[idx, views])
        mean = np.asarray(self.base.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(self.base.std, np.float32).reshape(3, 1, 1)
        from landmark_finder.core.images import load_image

        batch = []
        for i in idx:
            img = load_image(self.collection.photos[i].path, max_side=int(self.cfg.size * 1.5))
            batch.append(_square_tensor(augment(img, self.rng), self.cfg.size, mean, std))
        return self.net(torch.from_numpy(np.stack(batch)))

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.cfg
        self.net.head.train()
        self.net.backbone.eval()  # frozen BN statistics (tiny CPU batches), no drop-connect
        self.loss.train()
        n = len(self.train_idx) * (cfg.views if cfg.mode == "fast" else 1)
        sampler = BalancedSampler(self.labels[self.train_idx], cfg.batch_size, self.rng)
        batches = sampler.batches(n)
        what = f"epoch {epoch}/{cfg.epochs}"
        tot_loss = tot_correct = tot = 0.0
        self.progress(0, len(batches), what)
        for b, rows in enumerate(batches, 1):
            idx = self.train_idx[rows]
            y = torch.from_numpy(self.labels[idx])
            emb = self._batch_inputs(idx)
            loss, logits = self.loss(emb, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            tot_loss += float(loss.detach()) * len(idx)
            tot_correct += float((logits.argmax(1) == y).sum())
            tot += len(idx)
            self.progress(b, len(batches), what)
        return tot_loss / tot, tot_correct / tot

    @torch.no_grad()
    def _describe_clean(self, rows: np.ndarray) -> torch.Tensor:
        if self.cfg.mode == "fast" or len(rows) == 0:
            return self.net.head(self.features[rows, 0])
        from landmark_finder.core.images import load_image

        mean = np.asarray(self.base.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(self.base.std, np.float32).reshape(3, 1, 1)
        out = []
        for i in rows:
            img = load_image(self.collection.photos[i].path, max_side=self.cfg.size)
            out.append(
                self.net(_photo_tensor(img, self.cfg.size, mean, std, self.base.size_multiple))
            )
            self.progress(len(out), len(rows), "validating")
        return torch.cat(out)

    @torch.no_grad()
    def validate(self) -> tuple[float, float, float, float]:
        """(val loss, val accuracy, val mAP, val top-1)."""
        self.net.eval()
        self.loss.eval()
        if len(self.val_idx) == 0:
            return math.nan, math.nan, math.nan, math.nan
        gal = self.train_idx
        if self.cfg.mode == "full":  # a fixed, smaller gallery: describing costs a forward pass
            keep = []
            for c in np.unique(self.labels[gal]):
                keep += list(gal[self.labels[gal] == c][:VAL_GALLERY_PER_CLASS])
            gal = np.array(sorted(keep), np.int64)
        q = self._describe_clean(self.val_idx)
        if self.disjoint:  # landmarks never trained on: each photo against the others
            m, t1 = _retrieval(
                q,
                self.val_labels[self.val_idx],
                q,
                self.val_labels[self.val_idx],
                leave_one_out=True,
            )
            return math.nan, math.nan, m, t1
        g = self._describe_clean(gal)
        y = torch.from_numpy(self.labels[self.val_idx])
        loss, logits = self.loss(q, y)
        acc = float((logits.argmax(1) == y).float().mean())
        m, t1 = _retrieval(q, self.val_labels[self.val_idx], g, self.val_labels[gal])
        return float(loss), acc, m, t1

    # -- persistence -----------------------------------------------------------------------

    def model_config(self, best_epoch: int, best: float) -> dict:
        cfg = self.cfg
        return {
            "base_backbone": cfg.backbone,
            "base_weights_hash": self.base.weights_hash,
            "head": self.net.head.cfg.to_dict(),
            "input_size": cfg.size,
            "mean": list(self.base.mean),
            "std": list(self.base.std),
            "landmarks": self.classes,
            "trained": {
                "dataset": str(Path(cfg.dataset).resolve()),
                "mode": cfg.mode,
                "loss": cfg.loss,
                "epoch": best_epoch,
                "val_map": None if math.isnan(best) else round(best, 4),
                "n_train": int(len(self.train_idx)),
                "n_val": int(len(self.val_idx)),
                "seconds": round(self.elapsed, 1),
            },
        }

    def save_checkpoint(
        self, epoch: int, best: float, best_epoch: int, bad: int, history: list[EpochStats]
    ) -> None:
        tensors = {f"head.{k}": v for k, v in self.net.head.state_dict().items()}
        tensors.update({f"loss.{k}": v for k, v in self.loss.state_dict().items()})
        if self.cfg.mode == "full":
            tensors.update({f"backbone.{k}": v for k, v in self.net.backbone.state_dict().items()})
        opt = self.opt.state_dict()
        scalars: dict = {}
        for pid, st in opt["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{pid}.{k}"] = v
                else:
                    scalars.setdefault(str(pid), {})[k] = v
        tensors["rng.torch"] = torch.get_rng_state()
        state = {
            "config": asdict(self.cfg),
            "epoch": epoch,
            "best": best,
            "best_epoch": best_epoch,
            "bad_epochs": bad,
            "elapsed": self.elapsed,
            "classes": self.classes,
            "param_groups": opt["param_groups"],
            "optim_scalars": scalars,
            "scheduler": self.sched.state_dict(),
            "rng": self.rng.bit_generator.state,
            "split": [
                [str(self.collection.photos[i].path) for i in self.train_idx],
                [str(self.collection.photos[i].path) for i in self.val_idx],
            ],
            "history": [h.to_dict() for h in history],
        }
        save_tensors(self.out / CHECKPOINT, tensors, {"state": json.dumps(state)})

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        def sub(prefix: str) -> dict:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.net.head.load_state_dict(sub("head."))
        self.loss.load_state_dict(sub("loss."))
        if self.cfg.mode == "full":
            self.net.backbone.load_state_dict(sub("backbone."))
        opt_state: dict = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = v
        for pid, d in state.get("optim_scalars", {}).items():
            opt_state.setdefault(int(pid), {}).update(d)
        self.opt.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
        self.sched.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(tensors["rng.torch"])
        self.elapsed = float(state.get("elapsed", 0.0))


def read_checkpoint(out: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, state) of ``OUT/checkpoint.safetensors``; ValueError if absent or unreadable."""
    from safetensors import SafetensorError, safe_open

    path = Path(out) / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint to resume from")
    try:
        with safe_open(str(path), framework="pt") as f:
            state = json.loads((f.metadata() or {})["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: unreadable checkpoint ({e})") from None
    return tensors, state


def checkpoint_config(out: str | Path) -> TrainConfig:
    """The configuration a checkpoint was trained with (to resume without repeating options)."""
    return TrainConfig.from_dict(read_checkpoint(out)[1]["config"])


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: Progress | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train (or, with ``resume``, continue training) and write the model to ``cfg.out``.

    Raises :class:`TrainingInterrupted` on Ctrl-C, after saving a resumable checkpoint.
    """
    t0 = time.perf_counter()
    out = Path(cfg.out)
    tensors, state = read_checkpoint(out) if resume else ({}, {})
    if resume:
        old = TrainConfig.from_dict(state["config"])
        diff = [
            f.name
            for f in fields(TrainConfig)
            if f.name not in RESUMABLE_CHANGES and getattr(old, f.name) != getattr(cfg, f.name)
        ]
        if diff:
            raise ValueError(
                f"cannot resume with different settings ({', '.join(diff)}); "
                "resume with the original ones or train into a new folder"
            )
    elif (out / CHECKPOINT).exists():
        raise ValueError(
            f"{out}: holds a training run already; use --resume to continue it, or another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    tr = Trainer(cfg, progress, on_epoch)
    tr.prepare(tuple(state["split"]) if resume else None)
    tr.build()
    history: list[EpochStats] = []
    if resume:
        tr.restore(tensors, state)
        start, best, best_epoch, bad = (
            state["epoch"] + 1,
            state["best"],
            state["best_epoch"],
            state["bad_epochs"],
        )
        history = [EpochStats.from_dict(h) for h in state["history"]]
    else:
        tr.initialise()
        vl, va, vm, vt = tr.validate()
        history.append(EpochStats(0, math.nan, math.nan, vl, va, vm, vt, cfg.lr, 0.0))
        best, best_epoch, bad, start = (vm if not math.isnan(vm) else -math.inf), 0, 0, 1
        tr.elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        save_model(out, tr.net, tr.model_config(0, best), cfg.mode == "full")
        tr.save_checkpoint(0, best, 0, 0, history)
        _write_curves(out, history, cfg)
        tr.on_epoch(history[-1])
    stopped_early = False
    saved = (start - 1, best, best_epoch, bad)  # what the last checkpoint holds
    try:
        for epoch in range(start, cfg.epochs + 1):
            if bad >= cfg.patience:
                stopped_early = True
                break
            te = time.perf_counter()
            loss, acc = tr.train_epoch(epoch)
            vl, va, vm, vt = tr.validate()
            monitor = vm if not math.isnan(vm) else -loss
            lr = tr.opt.param_groups[0]["lr"]
            tr.sched.step(monitor)
            stats = EpochStats(epoch, loss, acc, vl, va, vm, vt, lr, time.perf_counter() - te)
            tr.elapsed += time.perf_counter() - t0
            t0 = time.perf_counter()
            if monitor > best + 1e-4:
                save_model(out, tr.net, tr.model_config(epoch, monitor), cfg.mode == "full")
                best, best_epoch, bad = monitor, epoch, 0
            else:
                bad += 1
            history.append(stats)
            tr.save_checkpoint(epoch, best, best_epoch, bad, history)
            saved = (epoch, best, best_epoch, bad)
            _write_curves(out, history, cfg)
            tr.on_epoch(stats)
    except KeyboardInterrupt:
        # The weights are mid-epoch; that epoch is redone on resume, starting from them.
        tr.elapsed += time.perf_counter() - t0
        done = [h for h in history if h.epoch <= saved[0]]
        tr.save_checkpoint(*saved, done)
        raise TrainingInterrupted(
            f"interrupted; checkpoint saved in {out / CHECKPOINT}, continue with --resume"
        ) from None
    _finish_config(out, tr, len(history) - 1, stopped_early)
    return TrainResult(
        out,
        history,
        best_epoch,
        best,
        len(history) - 1,
        stopped_early,
        tr.elapsed,
        len(tr.train_idx),
        len(tr.val_idx),
        tr.classes,
        tr.warnings,
    )


def _finish_config(out: Path, tr: Trainer, epochs_run: int, stopped_early: bool) -> None:
    """Add the whole run's summary (total time, epochs) to the saved model's config.json."""
    from landmark_finder.training.model import CONFIG, write_atomic

    path = out / CONFIG
    cfg = json.loads(path.read_text("utf-8"))
    cfg["trained"].update(
        seconds=round(tr.elapsed, 1), epochs_run=epochs_run, stopped_early=stopped_early
    )
    write_atomic(path, json.dumps(cfg, indent=2, ensure_ascii=False).encode())


def _write_curves(out: Path, history: list[EpochStats], cfg: TrainConfig) -> None:
    write_csv(out / HISTORY, history)
    write_png(out / CURVES, history, f"{cfg.backbone} · {cfg.loss} · {cfg.mode} mode")
