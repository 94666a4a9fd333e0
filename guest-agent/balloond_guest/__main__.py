import sys

from balloond_guest.cli import main

sys.exit(main())
