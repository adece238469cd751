"""Choosing a component by name: one small registry used for every such choice.

Backbones, training losses, local feature methods and search structures are each picked by a
name a user types (``--backbone``, ``--loss``, ``--local-features``) or an index records.
Each kind keeps a :class:`Registry` of name -> factory, so a new choice is one decorated
function, and an unknown name fails the same way everywhere: one line naming the kind, the
name and the accepted names. The registry holds factories only (nothing heavy is imported to
list the names), and this module imports nothing from the package, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


def unknown_name(kind: str, name: str, choices: list[str] | tuple[str, ...], more: str = "") -> str:
    """The one-line message for a name no registry knows, e.g. ``unknown loss 'x'; choose one of
    arcface, softmax``; ``more`` names accepted forms that are not listed (``or hf:<path>``)."""
    return f"unknown {kind} {name!r}; choose one of {', '.join(choices)}{more}"


class Registry(Generic[F]):
    """Names -> factories of one kind of component, in registration order.

    ``error`` is the exception class an unknown name raises (a ``ValueError`` by default, so a
    bad option value reads as one).
    """

    def __init__(self, kind: str, error: type[Exception] = ValueError) -> None:
        self.kind = kind
        self.error = error
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: the decorated function is the factory called ``name``."""

        def deco(fn: F) -> F:
            self._factories[name] = fn
            return fn

        return deco

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def check(self, name: str) -> str:
        """``name`` if it is registered, else the kind's error with the accepted names."""
        if name not in self._factories:
            raise self.error(unknown_name(self.kind, name, self.names()))
        return name

    def get(self, name: str) -> F:
        """The factory called ``name`` (raises like :meth:`check`)."""
        return self._factories[self.check(name)]
