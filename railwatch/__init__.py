"""railwatch: count rail cars in satellite imagery of border rail crossings.

Importing railwatch is cheap: torch, ultralytics and onnxruntime load only when a detector
is built.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
