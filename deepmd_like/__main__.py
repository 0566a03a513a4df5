import sys

from deepmd_like.cli import main

sys.exit(main())
