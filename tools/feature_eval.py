"""Repository entry for ``lomar-feature-eval`` (lomar_transfer/cli/feature_eval.py, where the usage is)."""
from lomar_transfer.cli.feature_eval import main

if __name__ == '__main__':
    main()
