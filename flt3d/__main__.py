"""``python -m flt3d``: the ``flt3d`` command, run as a module."""

import sys

from flt3d.cli import main

if __name__ == "__main__":
    sys.exit(main())
