"""Repository entry for ``lomar-make-data`` (lomar_transfer/cli/make_synthetic_data.py, where the usage is)."""
from lomar_transfer.cli.make_synthetic_data import main

if __name__ == '__main__':
    main()
