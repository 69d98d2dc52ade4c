#!/usr/bin/env python3
"""Cost of a 4 KiB buffered pwrite as the page cache grows, without Tessera.

Writes 4200-byte records (a 4 KiB blob plus its header, as Tessera's PUT 4 KiB row does) into
64 MiB files, one after another, and prints the mean cost per write every 4 files together with
the kernel's Dirty counter. Optionally starts writeback every N MiB with sync_file_range, which
keeps dirty data small, and preallocates each file with fallocate (as Tessera's segments are).

    python3 bench/page-cache-growth.py                      # 48 files = 3 GiB, fallocate
    python3 bench/page-cache-growth.py --no-fallocate --sync-every-mib 4

On the 2-core CI VMs the cost jumps ~6x once ~2 GB of new page cache has been written, whatever
the options; bench/RESULTS.md section 3 explains why that matters for the PUT rows.
"""

import argparse
import ctypes
import os
import tempfile
import time

SYNC_FILE_RANGE_WRITE = 2


def dirty_mib():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("Dirty:"):
                return int(line.split()[1]) // 1024
    return -1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--record-bytes", type=int, default=4200)
    parser.add_argument("--no-fallocate", action="store_true")
    parser.add_argument("--sync-every-mib", type=int, default=0)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    file_bytes = args.file_mib << 20
    step = (args.record_bytes + 7) // 8 * 8
    record = os.urandom(args.record_bytes)
    sync_every = args.sync_every_mib << 20
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        written = 0
        for index in range(args.files):
            path = os.path.join(scratch, f"file-{index}")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            if not args.no_fallocate:
                os.posix_fallocate(fd, 0, file_bytes)
            offset, synced, writes = 4096, 4096, 0
            started = time.perf_counter()
            while offset + args.record_bytes < file_bytes:
                os.pwrite(fd, record, offset)
                offset += step
                writes += 1
                if sync_every and offset - synced >= sync_every:
                    libc.sync_file_range(
                        fd, ctypes.c_int64(synced), ctypes.c_int64(offset - synced),
                        SYNC_FILE_RANGE_WRITE)
                    synced = offset
            elapsed = time.perf_counter() - started
            os.close(fd)
            written += offset
            if index % 4 == 0:
                print(f"{written / 2**30:5.2f} GiB written: {elapsed * 1e6 / writes:6.2f} us per "
                      f"write, dirty {dirty_mib()} MiB", flush=True)


if __name__ == "__main__":
    main()
