"""A name → entry registry with entry-point plug-ins, shared by heads and proposal sources.

timm/open_clip style: registering a name twice is an error; an unknown name raises
:class:`~ovtools.errors.UnknownNameError` listing the valid names.  Another package
adds entries without editing ovtools by declaring an entry point in the registry's
group (``ovtools.heads``, ``ovtools.proposals``)::

    # the plug-in's pyproject.toml
    [project.entry-points."ovtools.heads"]
    toy = "toy_package.head:SPEC"

The group is read once, the first time the registry is asked for a name or the list
of names.  An entry point's object is registered under the entry point's name unless
importing it already registered that name.  A plug-in that fails to import is
skipped with one warning naming it; the built-ins keep working.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .errors import UnknownNameError


class Registry:
    """Entries by name, plus the plug-ins of an entry-point group.

    Args:
        kind: what the entries are, used in error messages (``"head"``, ``"proposal source"``).
        group: entry-point group read for plug-ins (``None``: no plug-ins).
        check: called with ``(name, entry)`` before an entry is added; raises ``TypeError`` /
            ``ValueError`` for an entry of the wrong kind.
    """

    def __init__(self, kind: str, group: str | None = None,
                 check: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind
        self.group = group
        self._check = check
        self._entries: dict[str, Any] = {}
        self._plugins_loaded = group is None

    def add(self, name: str, entry: Any) -> Any:
        """Add ``entry`` under ``name`` (case-sensitive) and return it.

        Raises:
            ValueError: ``name`` is already registered.
            TypeError / ValueError: ``entry`` fails the registry's check.
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
        if self._check is not None:
            self._check(name, entry)
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> Any:
        """Remove and return the entry under ``name`` (tests, plug-in reloads).

        Raises:
            UnknownNameError: ``name`` is not registered.
        """
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {self.names()}")
        return self._entries.pop(name)

    def register(self, name: str) -> Callable:
        """Class decorator adding a factory under ``name``; returns the class unchanged.

        Raises:
            ValueError: ``name`` is already registered.
        """

        def deco(factory):
            return self.add(name, factory)

        return deco

    def load_plugins(self) -> list[str]:
        """Read the entry-point group (again) and add entries not registered yet.

        Returns:
            Names added by this call.
        """
        self._plugins_loaded = True
        if self.group is None:
            return []
        added = []
        for ep in entry_points(group=self.group):
            if ep.name in self._entries:
                continue
            try:
                obj = ep.load()
                if ep.name not in self._entries:  # importing it may have registered it already
                    self.add(ep.name, obj)
            except Exception as e:  # a broken plug-in must not break ovtools
                warnings.warn(f"{self.group} plug-in {ep.name!r} ({ep.value}) skipped: {e}", stacklevel=2)
                continue
            added.append(ep.name)
        return added

    def _ensure_plugins(self) -> None:
        if not self._plugins_loaded:
            self.load_plugins()

    def names(self) -> list[str]:
        """Sorted registered names (plug-ins included)."""
        self._ensure_plugins()
        return sorted(self._entries)

    def get(self, name: str) -> Any:
        """The entry registered under ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists the valid names.
        """
        if name not in self._entries:
            self._ensure_plugins()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {self.names()}")
        return self._entries[name]

    def create(self, name: str, *args: Any, **kwargs: Any):
        """Call the factory registered under ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists the valid names.
        """
        return self.get(name)(*args, **kwargs)
