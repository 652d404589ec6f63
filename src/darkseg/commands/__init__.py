"""Subcommands of the ``darkseg`` CLI, one module each.

A command module defines ``HELP`` (one line), ``ORDER`` (position in ``darkseg --help``),
``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports belong inside ``run``.
"""
