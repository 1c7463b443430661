"""``python -m llm_assist``: the command-line interface (see cli/)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
