"""Repository entry for ``lomar-convert`` (lomar_transfer/cli/to_lomar_vit.py, where the usage
is)."""
from lomar_transfer.cli.to_lomar_vit import main

if __name__ == '__main__':
    main()
