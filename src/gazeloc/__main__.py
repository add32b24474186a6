"""``python -m gazeloc`` runs the command line (same as the ``gazeloc`` script)."""

from gazeloc.cli import main

raise SystemExit(main())
