import sys

from policy_engine.cli import main

sys.exit(main())
