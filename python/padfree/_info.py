"""Runtime facts: CPU features, the selected ISA, OpenMP threads."""

from __future__ import annotations

from . import _core

__all__ = ["cpu_info"]


def cpu_info() -> dict:
    """Describe what padfree detected and uses on this machine.

    Returns:
        A dict with ``isa`` (the kernels in use: ``"scalar"``, ``"avx2"`` or ``"avx512"``),
        ``best_isa``, ``supported_isas``, ``features`` (CPUID flags, each a bool, already
        combined with what the OS saves), ``num_threads`` (OpenMP's default thread count)
        and ``openmp_version``.

    Example:
        >>> import padfree
        >>> padfree.cpu_info()["isa"] in ("scalar", "avx2", "avx512")
        True
    """
    return dict(_core.cpu_info())
