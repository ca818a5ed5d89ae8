"""Repository entry for ``lomar-benchmark`` (lomar_transfer/cli/benchmark.py, where the usage is)."""
from lomar_transfer.cli.benchmark import main

if __name__ == '__main__':
    main()
