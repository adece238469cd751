"""Pretrained networks by name (see :mod:`landmark_finder.backbones.base`)."""

from landmark_finder.backbones.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    available,
    file_sha256,
    load,
    register,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "available",
    "file_sha256",
    "load",
    "register",
]
