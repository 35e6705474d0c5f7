#!/usr/bin/env python3
"""Runs a command under a seccomp filter that refuses new namespaces, as
Docker's default profile does for a container without CAP_SYS_ADMIN:
unshare(2) and setns(2) fail with EPERM, clone(2) asking for any
CLONE_NEW* flag fails with EPERM, clone3(2) with ENOSYS (so that callers
fall back to clone). Everything else is allowed. x86_64 only.

usage: no_namespaces_seccomp.py COMMAND [ARGS...]
"""

import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL = 0x00000000
EPERM, ENOSYS = 1, 38
NR_CLONE, NR_UNSHARE, NR_SETNS, NR_CLONE3 = 56, 272, 308, 435
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06


def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


prog = b"".join([
    ins(LD_W_ABS, 0, 0, 4),                      # arch
    ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
    ins(RET_K, 0, 0, SECCOMP_RET_KILL),
    ins(LD_W_ABS, 0, 0, 0),                      # syscall number
    ins(JEQ_K, 0, 1, NR_UNSHARE),
    ins(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
    ins(JEQ_K, 0, 1, NR_SETNS),
    ins(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
    ins(JEQ_K, 0, 1, NR_CLONE3),
    ins(RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS),
    ins(JEQ_K, 0, 3, NR_CLONE),
    ins(LD_W_ABS, 0, 0, 16),                     # clone's flags (low 32 bits)
    ins(JSET_K, 0, 1, CLONE_NEW_ANY),
    ins(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
    ins(RET_K, 0, 0, SECCOMP_RET_ALLOW),
])


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit("no_new_privs: " + os.strerror(ctypes.get_errno()))
    fprog = SockFprog(len(prog) // 8, prog)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.cast(ctypes.pointer(fprog), ctypes.c_void_p), 0, 0) != 0:
        sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
