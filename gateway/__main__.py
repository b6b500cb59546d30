"""`python -m gateway` is the same as the `cognate` command."""

from gateway.cli import main

raise SystemExit(main())
