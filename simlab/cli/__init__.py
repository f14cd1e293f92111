"""The command line: argparse set-up and printing only; the work is done by the layers below.

Layer 9: may import every layer.
"""

from simlab.cli.main import main

__all__ = ["main"]
