#!/usr/bin/python3
"""Runs a command under a seccomp allow-list, as systemd's SystemCallFilter= does.

    seccomp_exec.py ALLOWED_FILE ERRNO_NAME -- COMMAND [ARG...]

ALLOWED_FILE names the allowed system calls, one per line (the unit's filter expanded by
tests/systemd_unit.rs with `systemd-analyze syscall-filter`). Every other call of the native
architecture fails with ERRNO_NAME (the unit's SystemCallErrorNumber=); calls of other
architectures kill the process (SystemCallArchitectures=native). Names that are no system call
on this architecture are skipped, as systemd skips them. Needs Debian's python3-seccomp.
"""
import errno
import os
import sys

import seccomp


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__)
    allowed_file, errno_name, command = sys.argv[1], sys.argv[2], sys.argv[4:]
    # NO_NEW_PRIVS is set on load (libseccomp's default), as the unit's NoNewPrivileges=yes.
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, errno_name)))
    allowed, skipped = 0, []
    with open(allowed_file, encoding="ascii") as names:
        for name in names.read().split():
            try:
                syscall_filter.add_rule(seccomp.ALLOW, name)
                allowed += 1
            except (ValueError, RuntimeError, OSError):
                skipped.append(name)
    print(f"seccomp_exec: {allowed} system calls allowed, {len(skipped)} not on this "
          f"architecture", file=sys.stderr)
    syscall_filter.load()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
