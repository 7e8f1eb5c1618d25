import sys

from triton_llm.cli import main

sys.exit(main())
