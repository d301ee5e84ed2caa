import sys

from archstat.cli import main

sys.exit(main())
