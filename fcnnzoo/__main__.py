"""Run the command line interface as ``python -m fcnnzoo``."""

from fcnnzoo.cli import main

raise SystemExit(main())
