"""A name → factory registry, shared by heads and proposal sources (timm/open_clip style).

Registering a name twice is an error; an unknown name raises
:class:`~ovtools.errors.UnknownNameError` listing the valid names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import UnknownNameError


class Registry:
    """Factories by name.

    Args:
        kind: what the entries are, used in error messages (``"head"``, ``"proposal source"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable:
        """Class decorator adding a factory under ``name`` (case-sensitive); returns the class unchanged.

        Raises:
            ValueError: ``name`` is already registered.
        """

        def deco(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
            self._entries[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def create(self, name: str, *args: Any, **kwargs: Any):
        """Call the factory registered under ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists the valid names.
        """
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {self.names()}")
        return self._entries[name](*args, **kwargs)
