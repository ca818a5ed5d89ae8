"""Repository entry for ``lomar-train`` (lomar_transfer/cli/train.py, where the usage is)."""
from lomar_transfer.cli.train import main

if __name__ == '__main__':
    main()
