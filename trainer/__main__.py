"""`python -m trainer VERB …`: the jetkit command line, for `torchrun … -m trainer train …`."""

import sys

from edge.cli import main

sys.exit(main())
