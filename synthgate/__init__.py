"""synthgate: a pytest quality gate for releases of synthetic chest X-rays."""

__version__ = "0.1.0"
