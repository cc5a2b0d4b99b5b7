"""kubectl-debugx: capture, trace and nodelogs for Kubernetes pods, leaving nothing behind."""

__version__ = "0.1.0"
