"""``python -m edge_memory doctor URL``: see :mod:`edge_memory.doctor`."""

import sys

from edge_memory.doctor import main

sys.exit(main())
