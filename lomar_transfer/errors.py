"""The errors a user can fix: each message names the cause and the fix.

``lomar-train`` / ``lomar-test`` / the converters print them as one line (``error: ...``) and exit
with status 1, without a traceback; under the stock OpenMMLab tools they end the traceback with
the same line.
"""


class UserError(Exception):
    """Bad input or a failed environment (data, checkpoint, disk, work dir), not a bug."""
