"""The errors a user can fix: each message names the cause and the fix.

``lomar-train`` / ``lomar-test`` / the converters print them as one line (``error: ...``) and exit
with status 1, without a traceback; under the stock OpenMMLab tools they end the traceback with
the same line.
"""
from contextlib import contextmanager


class UserError(Exception):
    """Bad input or a failed environment (data, checkpoint, disk, work dir), not a bug."""


@contextmanager
def one_line_errors():
    """Around a command's work (or decorating its ``main``): a :class:`UserError` ends it with
    ``error: ...`` and exit status 1, without a traceback."""
    try:
        yield
    except UserError as e:
        raise SystemExit(f'error: {e}') from None
