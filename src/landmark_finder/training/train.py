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
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from landmark_finder.core.progress import Progress
from landmark_finder.training.config import RESUMABLE_CHANGES, TrainConfig, TrainingInterrupted
from landmark_finder.training.curves import EpochStats, write_csv, write_png
from landmark_finder.training.model import save_model
from landmark_finder.training.trainer import CHECKPOINT, CURVES, HISTORY, Trainer


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
