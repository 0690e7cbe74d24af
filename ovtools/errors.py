"""Exception types raised by ovtools.

Every error a user can cause (bad file, bad option, missing weights) is one of
these, with a message that names the input and what is wrong with it.  They
subclass the built-in type a caller would expect (``ValueError``,
``FileNotFoundError``, ...) so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType


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


class MissingDependencyError(OvtoolsError, ImportError):
    """An optional package (an extra such as ``ovtools[3d]``) is not installed, or is installed but cannot load
    (e.g. a system library it links against is missing); the message says what to install, on one line."""


# shared libraries that pip wheels of the extras link against but do not ship → Debian/Ubuntu package
SYSTEM_PACKAGES = {
    "libusb-1.0.so": "libusb-1.0-0", "libGL.so": "libgl1", "libEGL.so": "libegl1", "libgomp.so": "libgomp1",
    "libX11.so": "libx11-6", "libXext.so": "libxext6", "libglib-2.0.so": "libglib2.0-0",
}


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


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional package, or raise :class:`MissingDependencyError` with a one-line fix.

    Args:
        module: the package to import, e.g. ``"open3d"``.
        extra: the ovtools extra that installs it, e.g. ``"3d"``.
        purpose: what needs it, to start the message, e.g. ``"reading scan.pcd"``.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: ``module`` is not installed (the message gives the ``pip install`` line),
            or is installed but fails to load (the message gives the loader's first line and, for a
            missing shared library, the system package that provides it).

    Example:
        >>> import_extra("json", "3d", "reading").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] == module.split(".")[0]:
            raise MissingDependencyError(
                f'{purpose} needs {module}, which is not installed: pip install "ovtools[{extra}]"') from e
        cause = e
    except (ImportError, OSError) as e:  # installed, but its compiled part cannot load
        cause = e
    message = first_line(cause).split(": ", 1)[-1]
    lib = re.search(r"(lib[\w+-]+(?:\.[\w+-]+)*?\.so)(?:\.[\d.]+)?\b", message)
    if lib and lib.group(1) in SYSTEM_PACKAGES:
        fix = f"install the system library (Debian/Ubuntu: apt-get install {SYSTEM_PACKAGES[lib.group(1)]})"
    elif lib:
        fix = f"install the system package that provides {lib.group(0)}"
    else:
        fix = f'reinstall it: pip install --force-reinstall "ovtools[{extra}]"'
    raise MissingDependencyError(f"{purpose} needs {module}, which is installed but cannot load ({message}): {fix}") \
        from cause
