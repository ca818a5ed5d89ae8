"""Repository entry for ``lomar-export-timm`` (lomar_transfer/cli/to_timm.py, where the usage
is)."""
from lomar_transfer.cli.to_timm import main

if __name__ == '__main__':
    main()
