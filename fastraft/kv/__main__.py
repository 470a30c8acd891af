"""``python -m fastraft.kv``: the ``fastraft-kv`` command (see ``fastraft.kv.cli``)."""

import sys

from .cli import main

sys.exit(main())
