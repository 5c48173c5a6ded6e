# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""AqError and _check, which turns a negative status into an AqError."""
import ctypes

from ._lib import lib
from ._scalars import _c_int
from .constants import _STATUS_NAMES


class AqError(Exception):
    """A libaqinit failure: .status (negative int), .name ("AQ_ERR_SHAPE"), .message (the detailed
    message of the failing call, else aq_strerror's description) and .description (aq_strerror)."""

    def __init__(self, status, message=""):
        self.status = status = _c_int(status, ctypes.c_int, "status")
        self.name = _STATUS_NAMES.get(status, "AQ_ERR_%d" % -status)
        text = lib.aq_strerror(status).decode()
        self.description = text.split(": ", 1)[1] if text.startswith(self.name + ": ") else text
        self.message = message or self.description
        super().__init__(f"{self.name}: {self.message}")


def _check(status, ctx=None):
    """Raise AqError for a negative status. The context's last message is used only if it belongs
    to this failure (same status), so a message left by an earlier failure is never reported."""
    if status < 0:
        message = ""
        if ctx is not None and getattr(ctx, "_ptr", None):
            last, last_status = ctx._last_error()
            if last_status == status:
                message = last
        raise AqError(status, message)
    return status
