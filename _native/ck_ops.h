/* The ops of the container init's plan: read by the cffi cdef (build_native.py strips
 * the preprocessor lines) and by the C that runs them (child.c), so that Python and C
 * agree by construction. Each op's fields, and what the child does with them, are
 * documented at ck_run_op. */
#ifndef CK_OPS_H
#define CK_OPS_H

enum ck_opcode {
    CK_OP_RESET_SIGNALS = 1,
    CK_OP_STDIO = 2,
    CK_OP_SETNS = 4,
    CK_OP_CLOSE_FDS = 5,
    CK_OP_UNSHARE = 6,
    CK_OP_WRITE_FILE = 7,
    CK_OP_SETHOSTNAME = 8,
    CK_OP_SETDOMAINNAME = 9,
    CK_OP_LOOPBACK_UP = 10,
    CK_OP_MOUNT = 11,
    CK_OP_PIVOT_ROOT = 17,
    CK_OP_CHDIR = 20,
    CK_OP_RLIMIT = 21,
    CK_OP_CAPBSET_DROP = 22,
    CK_OP_SET_USER = 23,
    CK_OP_CAPS = 24,
    CK_OP_NO_NEW_PRIVS = 25,
    CK_OP_CLOEXEC_FROM = 26,
    CK_OP_FIND_EXEC = 27,
    CK_OP_CREATED = 28,
    CK_OP_EXECVE = 29,
    CK_OP_SECCOMP = 30,
    CK_OP_PERSONALITY = 31,
    CK_OP_IOPRIO = 32,
    CK_OP_SCHED = 33,
    CK_OP_SYNC = 34,
    CK_OP_HOOK = 35,
    CK_OP_BECOME_ROOT = 36,
    CK_OP_OPEN_ROOT = 37,
    CK_OP_MOUNT_AT = 38,
    CK_OP_MKNOD_AT = 39,
    CK_OP_SYMLINK_AT = 40,
    CK_OP_MASK_AT = 41,
    CK_OP_READONLY_AT = 42,
    CK_OP_MOVE_ROOT = 43,
    CK_OP_KEYRING = 44,
    CK_OP_PTY = 45,
    CK_OP_CONSOLE = 46,
    CK_OP_SEND_PTY = 47,
    CK_OP_SETCTTY = 48,
    CK_OP_INHERIT_FDS = 49,
    CK_OP_FORK_INIT = 50,
    CK_OP_MEMPOLICY = 51,
    CK_OP_PRCTL = 52,
    CK_OP_SETSID = 53,
    CK_OP_AFFINITY = 54,
    CK_OP_STDIO_OWNER = 55,
    CK_OP_REEXEC = 56
};

struct ck_op {
    int code;                   /* enum ck_opcode */
    const char *name;           /* reported with errno and detail when the op fails */
    const char *detail;
    const char *s[4];           /* paths and strings (NULL where unused) */
    long long i[4];             /* flags, fds, ids, masks */
    const unsigned int *ids;    /* fds to keep, or supplementary gids */
    int nids;
    const char *const *argv;    /* NULL-terminated: exec candidates, or execve's argv */
    const char *const *envp;    /* NULL-terminated: execve's environment */
};

#endif
