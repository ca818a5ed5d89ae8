"""Repository entry for ``lomar-visualize-attention`` (lomar_transfer/cli/, usage there)."""
from lomar_transfer.cli.visualize_attention import main

if __name__ == '__main__':
    main()
