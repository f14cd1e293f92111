"""The command line: argparse set-up and printing only; the work is done by the layers below.

The entry point is :func:`simlab.cli.main.main` (the ``simlab`` script, ``python -m simlab``).
Layer 9: may import every layer.
"""
