import sys

from birnn.cli import main

sys.exit(main())
