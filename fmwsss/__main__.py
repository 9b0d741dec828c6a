"""``python -m fmwsss``: the ``fmwsss`` command where no console script is installed (the GPU suite's machine
has no venv; it puts this checkout on ``PYTHONPATH``)."""
import sys

from fmwsss.cli import main

sys.exit(main())
