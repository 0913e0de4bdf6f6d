"""``otel-vm``: the benchmark VM on Azure (issue 15).

The data flow of one ``create``: flags and environment → :class:`~._plan.Settings` →
:func:`~._plan.plan` (the ARM resources, pure) with :func:`~._cloudinit.render` (the VM's
cloud-init) → :class:`~._azure.Azure` (the SDKs, pollers and errors) → :mod:`._remote` (SSH:
readiness, run, fetch into the local store, tunnel).
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> int:
    """The ``otel-vm`` console script."""
    from otel_run.vm._cli import main as run

    return run()
