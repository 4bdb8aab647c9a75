import sys

from policy_engine.admin.cli import main

sys.exit(main())
