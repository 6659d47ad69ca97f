"""ZeroGPU on Hugging Face Spaces: `gpu` wraps a handler that needs the GPU; elsewhere it is a no-op."""

from __future__ import annotations

from collections.abc import Callable

try:
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn: Callable) -> Callable:
        """No ZeroGPU here: run fn as is."""
        return fn
