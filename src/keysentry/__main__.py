import sys

from keysentry.cli import main

sys.exit(main())
