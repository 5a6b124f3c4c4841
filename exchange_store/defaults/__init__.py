"""The shipped configuration (``etc/``), installed with the package.

``exchange-store init DIR`` writes it out; commands run on it when no ``etc/`` is found. It is
a copy of the repository's ``etc/`` (a test keeps the two identical).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_ETC"]

DEFAULT_ETC = Path(__file__).resolve().parent / "etc"
"""The packaged etc directory (read-only in an installed package; relative paths in it are taken
from the current directory)."""
