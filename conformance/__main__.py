"""`python -m conformance`: the `conformance` command line; exits with its status."""

from .cli import main

raise SystemExit(main())
