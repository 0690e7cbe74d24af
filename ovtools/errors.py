"""Exception types raised by ovtools.

Every error a user can cause (bad file, bad option, missing weights) is one of
these, with a message that names the input and what is wrong with it.  They
subclass the built-in type a caller would expect (``ValueError``,
``FileNotFoundError``, ...) so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class OvtoolsError(Exception):
    """Base class of every error ovtools raises on purpose."""


class ConfigError(OvtoolsError, ValueError):
    """A YAML/JSON config (class space, template set, preset) is invalid.

    The message names the file and the key that is wrong.
    """


class ImageLoadError(OvtoolsError, ValueError):
    """An image file cannot be decoded (missing, empty, truncated, not an image)."""


class PointCloudError(OvtoolsError, ValueError):
    """A point-cloud file cannot be used (not a PLY, corrupt, empty, a single point); the message names it."""


class WeightsUnavailableError(OvtoolsError, RuntimeError):
    """Pretrained weights could not be found locally nor downloaded."""


class UnknownNameError(OvtoolsError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class EngineError(OvtoolsError, RuntimeError):
    """A batch engine could not run the job (e.g. Ray actors could not build the pipeline)."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """``"<Type>: <first line of the message>"`` of an exception, cut at ``limit`` characters; just the type
    name when the message is empty (``str(e).splitlines()[0]`` fails on those)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__
