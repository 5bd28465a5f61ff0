import sys

from keysentry.hook import main

sys.exit(main())
