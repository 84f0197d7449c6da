"""The package version (one place; read by the kernel cache keys and the CLI)."""

__version__ = "0.1.0"
