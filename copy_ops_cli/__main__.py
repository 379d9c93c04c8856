"""python -m copy_ops_cli: the same as the ``copy-ops`` console script."""

import sys

from copy_ops_cli.main import main

sys.exit(main())
