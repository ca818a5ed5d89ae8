"""Repository entry for ``lomar-test`` (lomar_transfer/cli/test.py, where the usage is)."""
from lomar_transfer.cli.test import main

if __name__ == '__main__':
    main()
