"""Repository entry for ``lomar-visualize-reconstruction`` (lomar_transfer/cli/, usage there)."""
from lomar_transfer.cli.visualize_reconstruction import main

if __name__ == '__main__':
    main()
