"""Entry point of the frozen app: the same ``main`` as the ``pointillist`` console script."""
import sys

from desktop.cli import main

sys.exit(main())
