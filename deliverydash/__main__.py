"""`python -m deliverydash`: the same as the `deliverydash` command."""

from deliverydash.cli import main

raise SystemExit(main())
