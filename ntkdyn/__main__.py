"""``python -m ntkdyn ...`` is the ``ntkdyn`` command line."""
import sys

from ntkdyn.figures.cli import main

sys.exit(main())
