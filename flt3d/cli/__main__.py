"""``python -m flt3d.cli``: the ``flt3d`` command, run as a module."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
