"""The daemon hands freed heap memory back to the OS (glibc malloc_trim), so RSS does not creep."""

from __future__ import annotations

import platform

import pytest

from gateway.app import _malloc_trim


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_callable() -> None:
    trim = _malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was released, 0: nothing to release
