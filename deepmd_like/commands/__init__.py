"""Subcommands of ``dpl``: one module each, with ``register(subparsers)``."""
