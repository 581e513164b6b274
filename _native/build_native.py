"""cffi builder for containerkit's one compiled module, ``containerkit._ck_native``.

Two things must be C:

* ``ck_spawn``: clone3 and, in the child, the container init's whole plan up to execve,
  as an array of ops (``struct ck_op``) that the parent prepared. Like CPython's
  ``_posixsubprocess``: the child runs only async-signal-safe C, allocates nothing,
  never enters Python, and reports a failing op over the sync socket.
* the few syscalls the parent needs and ``os`` lacks: ``ck_clone`` (clone3 returning in
  a *Python* child, with the interpreter's fork hooks), mount, umount2, and the clone3
  probe.

The module is built against the full (non-limited) C API because ``ck_clone`` calls
``PyOS_BeforeFork`` and friends.
"""

from cffi import FFI

# Shared by the cdef and the C source, so that Python and C agree by construction.
# Each op's fields, and what the child does with them, are documented at ck_run_op.
OPS_DECL = """
enum ck_opcode {
    CK_OP_RESET_SIGNALS = 1,
    CK_OP_STDIO = 2,
    CK_OP_WAIT_PARENT = 3,
    CK_OP_SETNS = 4,
    CK_OP_CLOSE_FDS = 5,
    CK_OP_UNSHARE = 6,
    CK_OP_WRITE_FILE = 7,
    CK_OP_SETHOSTNAME = 8,
    CK_OP_SETDOMAINNAME = 9,
    CK_OP_LOOPBACK_UP = 10,
    CK_OP_MOUNT = 11,
    CK_OP_BIND = 12,
    CK_OP_MKDIRS = 13,
    CK_OP_MKFILE = 14,
    CK_OP_MKNOD = 15,
    CK_OP_SYMLINK = 16,
    CK_OP_PIVOT_ROOT = 17,
    CK_OP_MASK = 18,
    CK_OP_READONLY = 19,
    CK_OP_CHDIR = 20,
    CK_OP_RLIMIT = 21,
    CK_OP_CAPBSET_DROP = 22,
    CK_OP_SET_USER = 23,
    CK_OP_CAPS = 24,
    CK_OP_NO_NEW_PRIVS = 25,
    CK_OP_CLOEXEC_FROM = 26,
    CK_OP_FIND_EXEC = 27,
    CK_OP_CREATED = 28,
    CK_OP_EXECVE = 29
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
"""

CDEF = OPS_DECL + """
long ck_spawn(unsigned long long clone_flags, int cgroup_fd, int *pidfd_out,
              int *into_cgroup_out, const struct ck_op *ops, int nops, int sync_fd);
long ck_clone(unsigned long long flags, int cgroup_fd, int *pidfd_out, int *into_cgroup_out);
int ck_clone3_into_cgroup(void);
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);
int umount2(const char *target, int flags);
"""

SOURCE = r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

""" + OPS_DECL + r"""

struct ck_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
             set_tid, set_tid_size, cgroup;
};

/* Fork-like clone (no CLONE_VM: the child gets a copy of this address space and
 * returns here on it). clone3 with CLONE_PIDFD, and CLONE_INTO_CGROUP when
 * cgroup_fd >= 0; clone(2) without the cgroup placement (*into_cgroup_out says so)
 * where the kernel has no clone3 or a clone3 without the cgroup field. */
static long ck_raw_clone(unsigned long long flags, int cgroup_fd, int *pidfd_out,
                         int *into_cgroup_out)
{
    struct ck_clone_args args;
    long pid;

    memset(&args, 0, sizeof(args));
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd_out;
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    *into_cgroup_out = cgroup_fd >= 0;
    pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0 && (errno == ENOSYS || (errno == E2BIG && cgroup_fd >= 0))) {
        *into_cgroup_out = 0;
        pid = syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD | SIGCHLD), 0L,
                      pidfd_out, 0L, 0L);
    }
    return pid;
}

/* 1 when clone3 takes CLONE_INTO_CGROUP (Linux 5.7+), else 0. Asks with an invalid
 * exit_signal so that no process is ever made: a kernel that knows the cgroup field
 * says EINVAL, one whose clone_args end before it E2BIG (the field is non-zero), one
 * without clone3 (or a seccomp filter hiding it) ENOSYS. */
int ck_clone3_into_cgroup(void)
{
    struct ck_clone_args args;
    int saved = errno;
    long rc;

    memset(&args, 0, sizeof(args));
    args.exit_signal = ~0ULL;
    args.cgroup = 1;
    rc = syscall(SYS_clone3, &args, sizeof(args));
    rc = rc < 0 && errno == EINVAL;
    errno = saved;
    return (int)rc;
}

/* For a child that runs Python (tests, helpers): like os.fork(), hold the GIL and run
 * the interpreter's fork hooks around the clone, so the child is safe while other
 * Python threads run. */
long ck_clone(unsigned long long flags, int cgroup_fd, int *pidfd_out, int *into_cgroup_out)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    long pid;
    int saved;

    PyOS_BeforeFork();
    pid = ck_raw_clone(flags, cgroup_fd, pidfd_out, into_cgroup_out);
    saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    errno = saved;
    return pid;
}

/* ---- the container init: from clone to execve, in C only --------------------------
 *
 * Everything below runs in the child of ck_spawn. It must stay async-signal-safe:
 * raw syscalls and the thin libc wrappers of syscalls only, no malloc, no stdio, no
 * locks, no Python. The child is a copy of a possibly multi-threaded parent, and any
 * lock another thread held at the clone (the GIL, malloc's arenas, libc's own) stays
 * held forever in the child. For the same reason set*id go through syscall(): libc's
 * wrappers broadcast the change to every thread it believes exists (the parent's). */

struct ck_child {
    const char *found;          /* CK_OP_FIND_EXEC's result, for CK_OP_EXECVE */
};

static size_t ck_append(char *buf, size_t at, size_t cap, const char *s, size_t n)
{
    if (n > cap - at)
        n = cap - at;
    memcpy(buf + at, s, n);
    return at + n;
}

/* The sync protocol's ERROR message (containerkit/native/sync.py), then _exit. */
static void __attribute__((noreturn))
ck_fail(int sync_fd, const char *name, int err, const char *detail)
{
    char msg[4096], num[24];
    size_t at = 0, dlen;
    int k = (int)sizeof(num);
    unsigned int e = err > 0 ? (unsigned int)err : EIO;

    if (name == NULL)
        name = "?";
    if (detail == NULL)
        detail = "";
    dlen = strlen(detail);
    do {
        num[--k] = (char)('0' + e % 10);
        e /= 10;
    } while (e);
    if (dlen > 3000)
        dlen = 3000;                    /* as sync.encode_error */
    at = ck_append(msg, at, sizeof(msg), "ERROR", 6);          /* with its NUL */
    at = ck_append(msg, at, sizeof(msg), name, strlen(name) + 1);
    at = ck_append(msg, at, sizeof(msg), num + k, sizeof(num) - (size_t)k);
    at = ck_append(msg, at, sizeof(msg), "", 1);
    at = ck_append(msg, at, sizeof(msg), detail, dlen);
    (void)!write(sync_fd, msg, at);   /* one SOCK_SEQPACKET message; nothing to do if lost */
    _exit(1);
}

/* Default dispositions and an empty mask, as a fresh execve should see them (execve
 * keeps ignored dispositions and the mask; Python ignores SIGPIPE and SIGXFSZ, and
 * ck_spawn blocked everything around the clone). SIGPIPE stays ignored until just
 * before execve: a write to a closed sync socket must fail with EPIPE, not kill. */
static int ck_reset_signals(void)
{
    struct sigaction dfl;
    sigset_t none;
    int sig;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        sigaction(sig, &dfl, NULL);   /* EINVAL for the libc-reserved ones: fine */
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return -1;
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Put fds[i] on i without clobbering one that is still needed: a source already on
 * 0..2 (but not on its own place) is first copied above 2. A negative fd keeps what
 * is inherited there. The copies are close-on-exec (and CK_OP_CLOSE_FDS closes them). */
static int ck_stdio(const long long *fds)
{
    int moved[3], k;

    for (k = 0; k < 3; k++) {
        moved[k] = (int)fds[k];
        if (moved[k] >= 0 && moved[k] < 3 && moved[k] != k) {
            moved[k] = fcntl(moved[k], F_DUPFD_CLOEXEC, 3);
            if (moved[k] < 0)
                return -1;
        }
    }
    for (k = 0; k < 3; k++) {
        if (moved[k] == k) {
            if (fcntl(k, F_SETFD, 0) < 0)       /* inherited by execve */
                return -1;
        } else if (moved[k] >= 0 && dup2(moved[k], k) < 0) {
            return -1;
        }
    }
    return 0;
}

static int ck_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(SYS_close_range, (unsigned long)first, (unsigned long)last,
                        (unsigned long)flags);
}

/* Close every fd >= 3 except ids[] (sorted): nothing of the caller's crosses over. */
static int ck_close_fds(const unsigned int *keep, int n)
{
    unsigned int first = 3;
    int k;

    for (k = 0; k < n; k++) {
        if (keep[k] < first)
            continue;
        if (keep[k] > first && ck_close_range(first, keep[k] - 1, 0) < 0)
            return -1;
        first = keep[k] + 1;
    }
    return ck_close_range(first, ~0U, 0);
}

static int ck_wait_parent(int sync_fd)
{
    char buf[64];
    ssize_t n;

    do
        n = read(sync_fd, buf, sizeof(buf));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n != 6 || memcmp(buf, "CGROUP", 6) != 0) {
        errno = EPROTO;                 /* not what the protocol table says */
        return -1;
    }
    return 0;
}

static int ck_write_file(const char *path, const char *text)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;
    int e;

    if (fd < 0)
        return -1;
    n = write(fd, text, len);
    e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    return 0;
}

/* Bring "lo" up in the new network namespace: two ioctls, no netlink. */
static int ck_loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc, e;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Flags of the mount under path that a bind remount would otherwise clear (statfs's
 * ST_* bits; statvfs(3) could read /proc/mounts and allocate). */
static int ck_kept_flags(const char *path, unsigned long *flags)
{
    static const struct { unsigned long st, ms; } map[] = {
        { ST_NOSUID, MS_NOSUID }, { ST_NODEV, MS_NODEV }, { ST_NOEXEC, MS_NOEXEC },
        { ST_NOATIME, MS_NOATIME }, { ST_NODIRATIME, MS_NODIRATIME },
        { ST_RELATIME, MS_RELATIME },
    };
    struct statfs st;
    size_t k;

    if (statfs(path, &st) < 0)
        return -1;
    *flags = 0;
    for (k = 0; k < sizeof(map) / sizeof(map[0]); k++)
        if ((unsigned long)st.f_flags & map[k].st)
            *flags |= map[k].ms;
    return 0;
}

/* Bind remount with extra flags (ro, nosuid, ...), keeping what the mount had. */
static int ck_remount(const char *target, unsigned long flags)
{
    unsigned long kept;

    if (ck_kept_flags(target, &kept) < 0)
        return -1;
    return mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags | kept, NULL);
}

/* A bind mount; flags such as ro need a second, remount call (one call cannot). */
static int ck_bind(const char *source, const char *target, unsigned long flags,
                   unsigned long remount, unsigned long propagation)
{
    if (mount(source, target, NULL, flags, NULL) < 0)
        return -1;
    if (remount && ck_remount(target, remount) < 0)
        return -1;
    if (propagation && mount(NULL, target, NULL, propagation, NULL) < 0)
        return -1;
    return 0;
}

static int ck_mount(const char *source, const char *target, const char *fstype,
                    unsigned long flags, const char *data, unsigned long propagation)
{
    if (mount(source, target, fstype, flags, data) < 0)
        return -1;
    if (propagation && mount(NULL, target, NULL, propagation, NULL) < 0)
        return -1;
    return 0;
}

/* mkdir -p with mode 0755. An existing path (even a file: the mount that follows says
 * what is wrong) is fine. One mkdir when the parent exists, the walk only if not. */
static int ck_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path), k;

    if (len == 0) {
        errno = ENOENT;
        return -1;
    }
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -1;
    if (len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (k = 1; k <= len; k++) {
        if (buf[k] != '/' && buf[k] != '\0')
            continue;
        buf[k] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        if (k < len)
            buf[k] = '/';
    }
    return 0;
}

/* A bind mount of a file needs a file to mount onto: make it (and its directory). */
static int ck_mkfile(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct stat st;
    int fd;

    if (slash != NULL && slash != path) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
        if (ck_mkdirs(dir) < 0)
            return -1;
    }
    if (lstat(path, &st) == 0)
        return 0;
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* A device node with the spec's owner and exact mode (the umask would narrow it). */
static int ck_mknod(const char *path, mode_t mode, dev_t dev, uid_t uid, gid_t gid)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return -1;
    if (mknod(path, mode, dev) < 0 || chown(path, uid, gid) < 0)
        return -1;
    return chmod(path, mode & 07777);
}

/* pivot_root(".", ".") then detach the old root, stacked on top: no put_old directory
 * is needed in the rootfs. */
static int ck_pivot_root(const char *rootfs)
{
    if (chdir(rootfs) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
        return -1;
    if (umount2(".", MNT_DETACH) < 0)
        return -1;
    return chdir("/");
}

/* maskedPaths: a directory under an empty read-only tmpfs, anything else under
 * /dev/null; a path that does not exist needs no mask. */
static int ck_mask(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode))
        return mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL);
    return mount("/dev/null", path, NULL, MS_BIND, NULL);
}

/* readonlyPaths (bind onto itself first; a missing path is skipped) and root.readonly
 * (already a mount of its own: remount only). */
static int ck_readonly(const char *path, int bind_first)
{
    if (bind_first && mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
        return errno == ENOENT ? 0 : -1;
    return ck_remount(path, MS_RDONLY);
}

static int ck_setrlimit(int resource, long long soft, long long hard)
{
    struct rlimit rl;

    rl.rlim_cur = (rlim_t)soft;       /* -1 (the spec's 2^64-1) is RLIM_INFINITY */
    rl.rlim_max = (rlim_t)hard;
    return setrlimit(resource, &rl);
}

/* prctl(3) reads its variadic arguments as unsigned long: pass exactly that. */
static int ck_prctl(int option, unsigned long arg2, unsigned long arg3)
{
    return prctl(option, arg2, arg3, 0UL, 0UL);
}

static int ck_capbset_drop(unsigned long long caps)
{
    int cap;

    for (cap = 0; cap < 64; cap++)
        if ((caps >> cap & 1) && ck_prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0) < 0)
            return -1;
    return 0;
}

/* Supplementary groups, then gid, then uid (after which no other id can change). A
 * non-root uid keeps the permitted set through setuid (PR_SET_KEEPCAPS), so that
 * CK_OP_CAPS can still set what the spec asks for. */
static int ck_set_user(uid_t uid, gid_t gid, int change_ids, const unsigned int *groups,
                       int ngroups)
{
    if (syscall(SYS_setgroups, (long)ngroups, groups) < 0)
        return -1;
    if (!change_ids)
        return 0;
    if (syscall(SYS_setgid, (long)gid) < 0)
        return -1;
    if (uid != 0 && ck_prctl(PR_SET_KEEPCAPS, 1, 0) < 0)
        return -1;
    return (int)syscall(SYS_setuid, (long)uid);
}

/* capset(2) with exact set semantics (version 3: two 32-bit words per set), then the
 * ambient caps, which the kernel allows only when permitted and inheritable. */
static int ck_caps(unsigned long long eff, unsigned long long perm,
                   unsigned long long inh, unsigned long long amb)
{
    struct { uint32_t version; int pid; } hdr = { 0x20080522, 0 };
    struct { uint32_t effective, permitted, inheritable; } data[2];
    int cap;

    data[0].effective = (uint32_t)eff;
    data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)perm;
    data[1].permitted = (uint32_t)(perm >> 32);
    data[0].inheritable = (uint32_t)inh;
    data[1].inheritable = (uint32_t)(inh >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -1;
    amb &= perm & inh;
    for (cap = 0; cap < 64; cap++)
        if ((amb >> cap & 1)
                && ck_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap) < 0)
            return -1;
    return 0;
}

/* The first candidate that is an executable regular file, as execvp would pick it;
 * otherwise the errno execvp would report (EACCES over ENOENT). */
static int ck_find_exec(const char *const *candidates, const char **found)
{
    struct stat st;
    int err = ENOENT;

    for (; *candidates != NULL; candidates++) {
        if (stat(*candidates, &st) < 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                err = errno;
            continue;
        }
        if (S_ISREG(st.st_mode) && access(*candidates, X_OK) == 0) {
            *found = *candidates;
            return 0;
        }
        err = EACCES;
    }
    errno = err;
    return -1;
}

/* Setup is done: tell the parent, then block until `start` writes to exec.fifo. */
static int ck_created(int sync_fd, int fifo_fd)
{
    char c;
    ssize_t n;

    if (write(sync_fd, "CREATED", 7) < 0)
        return -1;
    do
        n = read(fifo_fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

static int ck_execve(const char *path, const char *const *argv, const char *const *envp,
                     mode_t mask)
{
    if (path == NULL) {                 /* no CK_OP_FIND_EXEC before: a plan bug */
        errno = ENOEXEC;
        return -1;
    }
    umask(mask);
    signal(SIGPIPE, SIG_DFL);           /* ignored while the sync socket was in use */
    execve(path, (char *const *)argv, (char *const *)envp);
    return -1;
}

/* One op; -1 with errno set on failure. Fields per op (unused ones are zero/NULL):
 *   RESET_SIGNALS                       STDIO i[0..2] = fds for 0, 1, 2
 *   WAIT_PARENT i[0] = sync fd          SETNS i[0] = ns fd, i[1] = nstype
 *   CLOSE_FDS ids = sorted fds to keep  UNSHARE i[0] = flags
 *   WRITE_FILE s[0] = path, s[1] = text SETHOSTNAME, SETDOMAINNAME s[0]
 *   LOOPBACK_UP
 *   MOUNT s[0..3] = source, target, fstype, data; i[0] = flags, i[1] = propagation
 *   BIND s[0..1] = source, target; i[0] = flags, i[1] = remount flags, i[2] = propagation
 *   MKDIRS, MKFILE, MASK, CHDIR s[0]    PIVOT_ROOT s[0] = new root
 *   MKNOD s[0]; i[0..3] = mode, dev, uid, gid
 *   SYMLINK s[0] = target, s[1] = link  READONLY s[0]; i[0] = bind onto itself first
 *   RLIMIT i[0..2] = resource, soft, hard
 *   CAPBSET_DROP i[0] = caps (bit mask)
 *   SET_USER i[0..2] = uid, gid, change uid/gid; ids = supplementary gids
 *   CAPS i[0..3] = effective, permitted, inheritable, ambient (bit masks)
 *   NO_NEW_PRIVS                        CLOEXEC_FROM i[0] = first fd
 *   FIND_EXEC argv = candidate paths    CREATED i[0] = sync fd, i[1] = exec.fifo fd
 *   EXECVE argv, envp; i[0] = umask (the path is FIND_EXEC's) */
static int ck_run_op(const struct ck_op *op, struct ck_child *child)
{
    const char *const *s = op->s;
    const long long *i = op->i;

    switch (op->code) {
    case CK_OP_RESET_SIGNALS:  return ck_reset_signals();
    case CK_OP_STDIO:          return ck_stdio(i);
    case CK_OP_WAIT_PARENT:    return ck_wait_parent((int)i[0]);
    case CK_OP_SETNS:          return setns((int)i[0], (int)i[1]);
    case CK_OP_CLOSE_FDS:      return ck_close_fds(op->ids, op->nids);
    case CK_OP_UNSHARE:        return unshare((int)i[0]);
    case CK_OP_WRITE_FILE:     return ck_write_file(s[0], s[1]);
    case CK_OP_SETHOSTNAME:    return sethostname(s[0], strlen(s[0]));
    case CK_OP_SETDOMAINNAME:  return setdomainname(s[0], strlen(s[0]));
    case CK_OP_LOOPBACK_UP:    return ck_loopback_up();
    case CK_OP_MOUNT:
        return ck_mount(s[0], s[1], s[2], (unsigned long)i[0], s[3], (unsigned long)i[1]);
    case CK_OP_BIND:
        return ck_bind(s[0], s[1], (unsigned long)i[0], (unsigned long)i[1],
                       (unsigned long)i[2]);
    case CK_OP_MKDIRS:         return ck_mkdirs(s[0]);
    case CK_OP_MKFILE:         return ck_mkfile(s[0]);
    case CK_OP_MKNOD:
        return ck_mknod(s[0], (mode_t)i[0], (dev_t)i[1], (uid_t)i[2], (gid_t)i[3]);
    case CK_OP_SYMLINK:
        return symlink(s[0], s[1]) < 0 && errno != EEXIST ? -1 : 0;
    case CK_OP_PIVOT_ROOT:     return ck_pivot_root(s[0]);
    case CK_OP_MASK:           return ck_mask(s[0]);
    case CK_OP_READONLY:       return ck_readonly(s[0], i[0] != 0);
    case CK_OP_CHDIR:          return chdir(s[0]);
    case CK_OP_RLIMIT:         return ck_setrlimit((int)i[0], i[1], i[2]);
    case CK_OP_CAPBSET_DROP:   return ck_capbset_drop((unsigned long long)i[0]);
    case CK_OP_SET_USER:
        return ck_set_user((uid_t)i[0], (gid_t)i[1], i[2] != 0, op->ids, op->nids);
    case CK_OP_CAPS:
        return ck_caps((unsigned long long)i[0], (unsigned long long)i[1],
                       (unsigned long long)i[2], (unsigned long long)i[3]);
    case CK_OP_NO_NEW_PRIVS:   return ck_prctl(PR_SET_NO_NEW_PRIVS, 1, 0);
    case CK_OP_CLOEXEC_FROM:
        return ck_close_range((unsigned int)i[0], ~0U, CLOSE_RANGE_CLOEXEC);
    case CK_OP_FIND_EXEC:      return ck_find_exec(op->argv, &child->found);
    case CK_OP_CREATED:        return ck_created((int)i[0], (int)i[1]);
    case CK_OP_EXECVE:         return ck_execve(child->found, op->argv, op->envp, (mode_t)i[0]);
    }
    errno = EINVAL;                     /* an opcode this C does not know */
    return -1;
}

static void __attribute__((noreturn))
ck_child_main(const struct ck_op *ops, int nops, int sync_fd)
{
    struct ck_child child = { NULL };
    int k;

    for (k = 0; k < nops; k++)
        if (ck_run_op(&ops[k], &child) < 0)
            ck_fail(sync_fd, ops[k].name, errno, ops[k].detail);
    ck_fail(sync_fd, "exec", ENOEXEC, "plan ended without execve");
}

/* clone3 (see ck_raw_clone) and, in the child, run ops[0..nops) to execve or _exit(1);
 * the parent gets the pid (and *pidfd_out), or -1 with errno.
 *
 * Unlike ck_clone this takes neither the GIL nor the interpreter's fork hooks (cffi
 * releases the GIL around the call, other Python threads keep running): the child
 * never runs Python, calls nothing that takes a lock or allocates, and leaves by
 * execve or _exit, so no interpreter or libc state needs fixing up in it, and a lock
 * held by another thread at the clone cannot deadlock it. The ops and every string
 * they point to were built by the parent and are read-only here.
 *
 * All signals are blocked across the clone so that no handler of the parent's (e.g.
 * Python's, which writes to the wakeup fd it shares with the parent) runs in the
 * child before CK_OP_RESET_SIGNALS, the plan's first op, resets dispositions and
 * unblocks. The parent restores its own mask. */
long ck_spawn(unsigned long long clone_flags, int cgroup_fd, int *pidfd_out,
              int *into_cgroup_out, const struct ck_op *ops, int nops, int sync_fd)
{
    sigset_t all, old;
    long pid;
    int saved;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = ck_raw_clone(clone_flags, cgroup_fd, pidfd_out, into_cgroup_out);
    if (pid == 0)
        ck_child_main(ops, nops, sync_fd);
    saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return pid;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "containerkit._ck_native",
    SOURCE,
    define_macros=[("_CFFI_NO_LIMITED_API", None)],
    py_limited_api=False,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
