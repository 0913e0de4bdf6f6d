"""otel-run: any command becomes one OpenTelemetry trace across its whole process tree.

The package is imported by the bootstrap of every traced Python process, so this
module defines constants only; nothing here may import anything.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
