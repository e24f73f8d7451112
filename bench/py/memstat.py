"""Per-process memory and page-cache helpers shared by the driver and the Python peers.

Peak memory of one load: the kernel's high-water mark of this process's resident set
(VmHWM), reset to the current RSS just before the load by writing 5 to
/proc/self/clear_refs, minus the RSS at that moment. That is the memory the load itself
added at its peak, whatever the process held before (Python and torch alone are hundreds
of MB). bench/timed_op.cc does the same in C++.
"""
import os
import re


def _status_kib(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))


def start_peak():
    """Resets the high-water mark; returns the resident bytes now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") << 10


def peak_since(start_rss):
    """Bytes the process's peak resident set grew by since start_peak()."""
    return (_status_kib("VmHWM") << 10) - start_rss


def evict(path):
    """Drops the file's pages from the page cache (a cold read next). Dirty pages are not
    dropped, so the file is flushed first."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path):
    """Fraction of the file's pages in the page cache (mincore over a mapping): checks that
    an eviction took."""
    import ctypes
    import mmap
    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec) / pages
