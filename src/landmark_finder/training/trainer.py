"""One training run's state and steps: data preparation, the network, epochs, validation and
checkpoints (the loop that drives them is :func:`landmark_finder.training.train.train`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from landmark_finder.core.progress import Progress
from landmark_finder.i18n import N_
from landmark_finder.training.config import TrainConfig
from landmark_finder.training.curves import EpochStats
from landmark_finder.training.data import (
    AugmentConfig,
    BalancedSampler,
    Collection,
    augment,
    read_collection,
    split_train_val,
)
from landmark_finder.training.heads import (
    DescriptorNetwork,
    HeadConfig,
    ProjectionHead,
    make_loss,
)
from landmark_finder.training.model import save_tensors
from landmark_finder.training.validation import held_out_landmarks, retrieval_scores

CHECKPOINT = "checkpoint.safetensors"
HISTORY = "history.csv"
CURVES = "curves.png"
#: Full mode: training photos per landmark used as the gallery of the validation retrieval.
VAL_GALLERY_PER_CLASS = 10


# --- helpers ---------------------------------------------------------------------------------


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
            self.progress(len(out), len(rows), N_("validating"))
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
            m, t1 = retrieval_scores(
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
        m, t1 = retrieval_scores(q, self.val_labels[self.val_idx], g, self.val_labels[gal])
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
