# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""_Handle, the base of the objects that own a C handle tied to a Context, and its _Cell."""
import ctypes


class _Cell:
    """The C pointer of one handle and its free function (None for a borrowed handle)."""
    __slots__ = ("ptr", "free")

    def __init__(self, ptr, free):
        self.ptr, self.free = ptr, free

    def release(self):
        ptr, self.ptr = self.ptr, None
        if ptr and self.free is not None:
            self.free(ptr)


class _Handle:
    """A library handle tied to its Context: freed with it at the latest."""
    _free_fn = None

    def _attach(self, ctx, ptr):
        self.ctx = ctx
        self._cell = _Cell(ptr, type(self)._free_fn)
        ctx._live[id(self._cell)] = self._cell

    @property
    def _ptr(self):
        cell = self.__dict__.get("_cell")
        return cell.ptr if cell is not None else None

    @property
    def ptr(self):
        if not self._ptr:
            raise ValueError(f"this {type(self).__name__} is closed (its Context was closed)")
        return self._ptr

    def _release(self):
        cell = self.__dict__.get("_cell")
        if cell is not None and cell.ptr:
            cell.release()
            ctx = self.__dict__.get("ctx")
            if ctx is not None and cell.free is not None:
                ctx._live.pop(id(cell), None)

    @classmethod
    def _borrow(cls, ctx, ptr):
        """A view of a handle the library owns, valid only during a callback."""
        obj = cls.__new__(cls)
        obj.ctx, obj._cell = ctx, _Cell(ctypes.c_void_p(ptr), None)
        return obj

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass
