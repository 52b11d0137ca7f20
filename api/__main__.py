"""``python -m api`` is the same as the ``offerhub`` command."""

from api.cli import main

raise SystemExit(main())
