import sys

from fedsecure.cli import main

sys.exit(main())
