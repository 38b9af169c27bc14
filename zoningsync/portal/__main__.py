"""`python -m zoningsync.portal`: serve a simulated county on 127.0.0.1."""

import sys

from zoningsync.portal.server import main

sys.exit(main())
