/* The container init's op interpreter, from the clone to execve: the C that the child
 * of ck_spawn runs (no Python there). Compiled twice: into the cffi module
 * (build_native.py), where the child runs the plan's first ops on a copy or a share of
 * the caller's process, and into ck-init (init.c), the small static program the child
 * re-executes into (CK_OP_REEXEC) for the rest, so that from then on nothing of the
 * caller's process, its executable least of all, is left in the container's init
 * (SECURITY.md: CVE-2019-5736). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#include <sys/mman.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <time.h>
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
#define CK_STR_(x) #x
#define CK_STR(x) CK_STR_(x)

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#define CK_KEYCTL_JOIN_SESSION_KEYRING 1
#define CK_KEYCTL_SETPERM 5
#define CK_KEYCTL_DESCRIBE 6

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif
#include "ck_ops.h"

struct ck_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
             set_tid, set_tid_size, cgroup;
};

/* ---- the container init: from clone to execve, in C only --------------------------
 *
 * Everything below runs in the child of ck_spawn, which is one of two kinds:
 *
 * * on x86_64, a CLONE_VM child (see ck_spawn): it runs in the parent's address space,
 *   on a stack of its own, concurrently with the parent's threads. It must not touch
 *   any state of the parent's: no libc wrapper (errno and the cancellation state are in
 *   the thread's TLS), no malloc, no stdio, no lock, no Python. Every syscall goes
 *   through ck_sys (inline asm returning -errno); the only libc calls left are
 *   memcpy/memset/memcmp/strlen/strrchr (pure, and bound at load time: -z now, so no
 *   lazy binding runs in the child). The stack protector's canary is read from a TCB
 *   of the child's own (CLONE_SETTLS), so the child never reads the parent thread's
 *   TLS, which may be gone by the time the child runs.
 * * elsewhere, or when that clone fails, a fork-like copy of a possibly multi-threaded
 *   parent: any lock another thread held at the clone (the GIL, malloc's arenas, libc's
 *   own) stays held forever in it. The same code is safe there too.
 *
 * Helpers return 0 (or a count) on success and -errno on failure; errno is never read
 * or written. set*id go through ck_sys: libc's wrappers broadcast the change to every
 * thread they believe exists (the parent's). */

#if defined(__x86_64__)
#define CK_SHARED_VM 1
static inline long ck_raw_syscall6(long n, long a1, long a2, long a3, long a4, long a5,
                                   long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;

    __asm__ volatile ("syscall"
                      : "=a"(ret)
                      : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                      : "rcx", "r11", "memory");
    return ret;
}
#else
#define CK_SHARED_VM 0
/* Only ever in a fork-like child (its own copy of errno): libc's syscall(). */
static long ck_raw_syscall6(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    long rc = syscall(n, a1, a2, a3, a4, a5, a6);
    return rc == -1 ? -(long)errno : rc;
}
#endif

#define ck_sys(n, a, b, c, d, e) \
    ck_raw_syscall6((long)(n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0L)

struct ck_child {
    const char *found;          /* CK_OP_FIND_EXEC's result, for CK_OP_EXECVE */
    char report[1024];          /* a failed hook's message (CK_EHOOK), for ck_fail */
    int rootfd;                 /* the container's root (O_PATH) once known, else -1 */
    char why[256];              /* the kernel's reason for a failed op, if it gave one */
    int pty_master;             /* CK_OP_PTY's fds, for the console ops (-1: none) */
    int pty_peer;
    int devnull;                /* the root's /dev/null (O_PATH, checked) once a masked
                                 * file needed it, for the next ones (-1: not yet) */
};

/* A failed hook: not an errno; the ERROR message's detail is the whole message. */
#define CK_EHOOK 1000

static void __attribute__((noreturn)) ck_exit(int code)
{
    for (;;)
        ck_sys(SYS_exit_group, code, 0, 0, 0, 0);
}

static long ck_write(int fd, const void *buf, size_t n)
{
    return ck_sys(SYS_write, fd, buf, n, 0, 0);
}

static long ck_read(int fd, void *buf, size_t n)
{
    long rc;

    do
        rc = ck_sys(SYS_read, fd, buf, n, 0, 0);
    while (rc == -EINTR);
    return rc;
}

static int ck_close(int fd)
{
    return (int)ck_sys(SYS_close, fd, 0, 0, 0, 0);
}

static int ck_open(const char *path, int flags, int mode)
{
    return (int)ck_sys(SYS_openat, AT_FDCWD, path, flags, mode, 0);
}

static int ck_mount_raw(const char *source, const char *target, const char *fstype,
                        unsigned long flags, const void *data)
{
    return (int)ck_sys(SYS_mount, source, target, fstype, flags, data);
}

static int ck_chdir(const char *path)
{
    return (int)ck_sys(SYS_chdir, path, 0, 0, 0, 0);
}

/* stat, lstat (AT_SYMLINK_NOFOLLOW): the kernel's structs are glibc's on
 * x86_64; elsewhere (a fork-like child only) libc knows the layouts. */
#if CK_SHARED_VM
static int ck_stat(const char *path, struct stat *st, int flags)
{
    return (int)ck_sys(SYS_newfstatat, AT_FDCWD, path, st, flags, 0);
}

/* The kernel's struct sigaction on x86_64 (rt_sigaction takes sizeof(mask) = 8). */
struct ck_ksigaction {
    unsigned long handler, flags, restorer, mask;
};

static int ck_sigaction(int sig, unsigned long handler)
{
    struct ck_ksigaction act;

    memset(&act, 0, sizeof(act));
    act.handler = handler;
    return (int)ck_sys(SYS_rt_sigaction, sig, &act, NULL, sizeof(act.mask), 0);
}

static int ck_unblock_all(void)
{
    unsigned long none = 0;

    return (int)ck_sys(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none), 0);
}
#else
static int ck_stat(const char *path, struct stat *st, int flags)
{
    return fstatat(AT_FDCWD, path, st, flags) < 0 ? -errno : 0;
}

static int ck_sigaction(int sig, unsigned long handler)
{
    struct sigaction act;

    memset(&act, 0, sizeof(act));
    act.sa_handler = (void (*)(int))handler;
    return sigaction(sig, &act, NULL) < 0 ? -errno : 0;
}

static int ck_unblock_all(void)
{
    sigset_t none;

    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL) < 0 ? -errno : 0;
}
#endif

static size_t ck_append(char *buf, size_t at, size_t cap, const char *s, size_t n)
{
    if (n > cap - at)
        n = cap - at;
    memcpy(buf + at, s, n);
    return at + n;
}

/* The sync protocol's ERROR message (containerkit/native/sync.py), then exit(1); also
 * on also_fd when >= 0 (exec.fifo: a `start` in another process reads it there). */
static void __attribute__((noreturn))
ck_fail(int sync_fd, int also_fd, const char *name, int err, const char *detail)
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
    (void)ck_write(sync_fd, msg, at);   /* one SOCK_SEQPACKET message; nothing to do if lost */
    if (also_fd >= 0)
        (void)ck_write(also_fd, msg, at);
    ck_exit(1);
}

/* Default dispositions and an empty mask, as a fresh execve should see them (execve
 * keeps ignored dispositions and the mask; Python ignores SIGPIPE and SIGXFSZ, and
 * ck_spawn blocked everything around the clone). SIGPIPE stays ignored until just
 * before execve: a write to a closed sync socket must fail with EPIPE, not kill. */
static int ck_reset_signals(void)
{
    int sig, rc;

    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        (void)ck_sigaction(sig, (unsigned long)SIG_DFL);   /* EINVAL for some: fine */
    }
    rc = ck_sigaction(SIGPIPE, (unsigned long)SIG_IGN);
    if (rc < 0)
        return rc;
    return ck_unblock_all();
}

/* Put fds[i] on i without clobbering one that is still needed: a source already on
 * 0..2 (but not on its own place) is first copied above 2. A negative fd keeps what
 * is inherited there. The copies are close-on-exec (and CK_OP_CLOSE_FDS closes them). */
static int ck_stdio(const long long *fds)
{
    int moved[3], k, rc;

    for (k = 0; k < 3; k++) {
        moved[k] = (int)fds[k];
        if (moved[k] >= 0 && moved[k] < 3 && moved[k] != k) {
            moved[k] = (int)ck_sys(SYS_fcntl, moved[k], F_DUPFD_CLOEXEC, 3, 0, 0);
            if (moved[k] < 0)
                return moved[k];
        }
    }
    for (k = 0; k < 3; k++) {
        if (moved[k] == k) {
            rc = (int)ck_sys(SYS_fcntl, k, F_SETFD, 0, 0, 0);   /* inherited by execve */
            if (rc < 0)
                return rc;
        } else if (moved[k] >= 0) {
            rc = (int)ck_sys(SYS_dup3, moved[k], k, 0, 0, 0);   /* as dup2: moved[k] != k */
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int ck_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)ck_sys(SYS_close_range, first, last, flags, 0, 0);
}

/* Close every fd >= 3 except ids[] (sorted): nothing of the caller's crosses over. */
static int ck_close_fds(const unsigned int *keep, int n)
{
    unsigned int first = 3;
    int k, rc;

    for (k = 0; k < n; k++) {
        if (keep[k] < first)
            continue;
        if (keep[k] > first && (rc = ck_close_range(first, keep[k] - 1, 0)) < 0)
            return rc;
        first = keep[k] + 1;
    }
    return ck_close_range(first, ~0U, 0);
}

/* In a new user namespace whose maps the parent just wrote: become its root (uid and
 * gid 0 inside, i.e. the mapped host ids), so that files are made as the mapped ids
 * and not as the unmapped creator. The creator of a user namespace holds every
 * capability in it, and going from an unmapped id to the namespace's root keeps them. */
static int ck_become_root(void)
{
    int rc = (int)ck_sys(SYS_setresgid, 0, 0, 0, 0, 0);

    if (rc == 0)
        rc = (int)ck_sys(SYS_setresuid, 0, 0, 0, 0, 0);
    return rc;
}

/* Bring "lo" up in the new network namespace: two ioctls, no netlink. */
static int ck_loopback_up(void)
{
    struct ifreq ifr;
    int fd = (int)ck_sys(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0, 0, 0);
    int rc;

    if (fd < 0)
        return fd;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    rc = (int)ck_sys(SYS_ioctl, fd, SIOCGIFFLAGS, &ifr, 0, 0);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = (int)ck_sys(SYS_ioctl, fd, SIOCSIFFLAGS, &ifr, 0, 0);
    }
    ck_close(fd);
    return rc;
}

static int ck_mount(const char *source, const char *target, const char *fstype,
                    unsigned long flags, const char *data, unsigned long propagation)
{
    int rc = ck_mount_raw(source, target, fstype, flags, data);

    if (rc == 0 && propagation)
        rc = ck_mount_raw(NULL, target, NULL, propagation, NULL);
    return rc;
}

/* pivot_root(".", ".") then detach the old root, stacked on top: no put_old directory
 * is needed in the rootfs. */
static int ck_pivot_root(const char *rootfs)
{
    int rc = ck_chdir(rootfs);

    if (rc == 0)
        rc = (int)ck_sys(SYS_pivot_root, ".", ".", 0, 0, 0);
    if (rc == 0)
        rc = (int)ck_sys(SYS_umount2, ".", MNT_DETACH, 0, 0, 0);
    if (rc == 0)
        rc = ck_chdir("/");
    return rc;
}

static int ck_setrlimit(int resource, long long soft, long long hard)
{
    struct { uint64_t cur, max; } rl;   /* the kernel's struct rlimit64 */

    rl.cur = (uint64_t)soft;            /* -1 (the spec's 2^64-1) is RLIM64_INFINITY */
    rl.max = (uint64_t)hard;
    return (int)ck_sys(SYS_prlimit64, 0, resource, &rl, NULL, 0);
}

static int ck_prctl(int option, unsigned long arg2, unsigned long arg3)
{
    return (int)ck_sys(SYS_prctl, option, arg2, arg3, 0UL, 0UL);
}

static int ck_capbset_drop(unsigned long long caps)
{
    int cap, rc;

    for (cap = 0; cap < 64; cap++)
        if ((caps >> cap & 1)
                && (rc = ck_prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0)) < 0)
            return rc;
    return 0;
}

/* Supplementary groups, then gid, then uid (after which no other id can change). A
 * non-root uid keeps the permitted set through setuid (PR_SET_KEEPCAPS), so that
 * CK_OP_CAPS can still set what the spec asks for. */
static int ck_set_user(uid_t uid, gid_t gid, int change_ids, int keep_groups,
                       const unsigned int *groups, int ngroups)
{
    /* keep_groups: a user namespace whose setgroups is "deny" (an unprivileged
     * parent's) refuses even an empty list; the init has none there anyway */
    int rc = keep_groups ? 0 : (int)ck_sys(SYS_setgroups, ngroups, groups, 0, 0, 0);

    if (rc < 0 || !change_ids)
        return rc;
    if ((rc = (int)ck_sys(SYS_setgid, gid, 0, 0, 0, 0)) < 0)
        return rc;
    if (uid != 0 && (rc = ck_prctl(PR_SET_KEEPCAPS, 1, 0)) < 0)
        return rc;
    return (int)ck_sys(SYS_setuid, uid, 0, 0, 0, 0);
}

/* capset(2) with exact set semantics (version 3: two 32-bit words per set), then the
 * ambient caps, which the kernel allows only when permitted and inheritable. */
static int ck_caps(unsigned long long eff, unsigned long long perm,
                   unsigned long long inh, unsigned long long amb)
{
    struct { uint32_t version; int pid; } hdr = { 0x20080522, 0 };
    struct { uint32_t effective, permitted, inheritable; } data[2];
    int cap, rc;

    data[0].effective = (uint32_t)eff;
    data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)perm;
    data[1].permitted = (uint32_t)(perm >> 32);
    data[0].inheritable = (uint32_t)inh;
    data[1].inheritable = (uint32_t)(inh >> 32);
    if ((rc = (int)ck_sys(SYS_capset, &hdr, data, 0, 0, 0)) < 0)
        return rc;
    amb &= perm & inh;
    for (cap = 0; cap < 64; cap++)
        if ((amb >> cap & 1)
                && (rc = ck_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE,
                                  (unsigned long)cap)) < 0)
            return rc;
    return 0;
}

/* The first candidate that is an executable regular file, as execvp would pick it;
 * otherwise the errno execvp would report (EACCES over ENOENT). */
static int ck_find_exec(const char *const *candidates, const char **found)
{
    struct stat st;
    int err = -ENOENT, rc;

    for (; *candidates != NULL; candidates++) {
        rc = ck_stat(*candidates, &st, 0);
        if (rc < 0) {
            if (rc != -ENOENT && rc != -ENOTDIR)
                err = rc;
            continue;
        }
        if (S_ISREG(st.st_mode)
                && ck_sys(SYS_faccessat, AT_FDCWD, *candidates, X_OK, 0, 0) == 0) {
            *found = *candidates;
            return 0;
        }
        err = -EACCES;
    }
    return err;
}

/* Setup is done: tell the parent, then block until `start` writes to exec.fifo. */
static int ck_created(int sync_fd, int fifo_fd)
{
    char c;
    long n = ck_write(sync_fd, "CREATED", 7);

    if (n < 0)
        return (int)n;
    n = ck_read(fifo_fd, &c, 1);
    return n < 0 ? (int)n : 0;
}

static int ck_execve(const char *path, const char *const *argv, const char *const *envp,
                     mode_t mask)
{
    if (path == NULL)                   /* no CK_OP_FIND_EXEC before: a plan bug */
        return -ENOEXEC;
    ck_sys(SYS_umask, mask, 0, 0, 0, 0);
    /* ignored while the sync socket was in use */
    (void)ck_sigaction(SIGPIPE, (unsigned long)SIG_DFL);
    return (int)ck_sys(SYS_execve, path, argv, envp, 0, 0);
}

/* One op; 0, or -errno on failure. Fields per op (unused ones are zero/NULL):
 *   RESET_SIGNALS                       STDIO i[0..2] = fds for 0, 1, 2
 *   BECOME_ROOT                         SETNS i[0] = ns fd, i[1] = nstype
 *   FORK_INIT i[0] = clone flags, i[1] = sync fd
 *   CLOSE_FDS ids = sorted fds to keep  UNSHARE i[0] = flags
 *   WRITE_FILE i[0] = the host's /proc; s[0] = path in it, s[1] = text (ck_write_proc)
 *   SETHOSTNAME, SETDOMAINNAME s[0]
 *   LOOPBACK_UP
 *   MOUNT s[0..3] = source, target, fstype, data; i[0] = flags, i[1] = propagation
 *   PIVOT_ROOT s[0] = new root (and child->rootfd reopened as "/")
 *   RLIMIT i[0..2] = resource, soft, hard
 *   CAPBSET_DROP i[0] = caps (bit mask)
 *   SET_USER i[0..3] = uid, gid, change uid/gid, skip setgroups; ids = supplementary gids
 *   CAPS i[0..3] = effective, permitted, inheritable, ambient (bit masks)
 *   NO_NEW_PRIVS                        CLOEXEC_FROM i[0] = first fd
 *   FIND_EXEC argv = candidate paths    CREATED i[0] = sync fd, i[1] = exec.fifo fd
 *   EXECVE argv, envp; i[0] = umask (the path is FIND_EXEC's)
 *   SYNC i[0] = sync fd; s[0] = message to send (or NULL), s[1] = answer to wait for
 *   HOOK s[0] = path, s[1] = cwd; argv, envp; i[0] = state fd, i[1] = timeout ms,
 *        i[2] = extra fd for the ERROR message or -1 (see ck_hook)
 *   MEMPOLICY i[0] = mode | flags; ids = nodemask as 32-bit words
 * Container paths, resolved inside child->rootfd (see ck_resolve):
 *   OPEN_ROOT s[0] = host path of the root
 *   MOVE_ROOT s[0] = rootfs (--no-pivot); argv = host proc/sysfs mounts to detach
 *   MOUNT_AT s[0..3] = source, destination, fstype (NULL: bind), data; i[0] = CK_MNT_*,
 *     i[1] = detached tree made by the parent (-1: none); ids = attr_set, attr_clr,
 *     recursive attr_set, recursive attr_clr (MOUNT_ATTR_*), then propagations (MS_*)
 *   MKNOD_AT s[0], s[1] = directory, name; i[0..3] = mode, dev, uid, gid
 *   SYMLINK_AT s[0] = target, s[1], s[2] = directory, name
 *   MASK_AT s[0]                        READONLY_AT s[0]; i[0] = bind onto itself first
 *   CHDIR s[0] (inside the root once OPEN_ROOT ran)
 *   KEYRING s[0] = name; i[0] = permission bits to add
 *   PTY s[0] = ptmx path; i[0..2] = rows, cols, owner uid (-1: keep)
 *   CONSOLE s[0] = /dev/console path    SEND_PTY i[0] = sync fd
 *   SETCTTY                             INHERIT_FDS i[0] = first fd, i[1] = count
 *   SETSID                              STDIO_OWNER i[0] = uid
 *   REEXEC i[0] = ck-init's sealed memfd; ids = fds to keep (run by ck_child_main:
 *          see ck_reexec) */
/* sched_setattr(2) for process.scheduler: i = policy, flags, nice, priority; ids =
 * runtime, deadline, period as (low, high) 32-bit pairs (SCHED_DEADLINE only). */
static int ck_sched(const long long *i, const unsigned int *ids, int nids)
{
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t priority;
        uint64_t runtime, deadline, period;
    } attr;
    int k;
    uint64_t dl[3] = { 0, 0, 0 };

    for (k = 0; k + 1 < nids && k < 6; k += 2)
        dl[k / 2] = (uint64_t)ids[k] | ((uint64_t)ids[k + 1] << 32);
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.policy = (uint32_t)i[0];
    attr.flags = (uint64_t)i[1];
    attr.nice = (int32_t)i[2];
    attr.priority = (uint32_t)i[3];
    attr.runtime = dl[0];
    attr.deadline = dl[1];
    attr.period = dl[2];
    return (int)ck_sys(SYS_sched_setattr, 0, &attr, 0, 0, 0);
}

/* Install the seccomp filter the parent compiled with libseccomp (a classic BPF
 * program, sent as 32-bit words: two per struct sock_filter). seccomp(2) directly:
 * nothing of libseccomp runs in the child. */
static int ck_sync(int sync_fd, const char *send, const char *expect);

/* set_mempolicy(2): words = the nodemask as 32-bit words, lowest first. maxnode is one
 * more than the bits passed (the kernel reads maxnode - 1 bits). */
/* words (32-bit, lowest first) as the kernel's bitmap of longs in mask (size bytes);
 * -EINVAL when they do not fit. */
static int ck_words_to_mask(unsigned long *mask, size_t size, const unsigned int *words,
                            int nwords)
{
    int k;

    if ((size_t)nwords * 32 > size * 8)
        return -EINVAL;
    memset(mask, 0, size);
    for (k = 0; k < nwords; k++)
        mask[k * 32 / (8 * sizeof(long))] |=
            (unsigned long)words[k] << (k * 32 % (8 * sizeof(long)));
    return 0;
}

static int ck_mempolicy(int mode, const unsigned int *words, int nwords)
{
    unsigned long mask[32];
    int rc;

    if (nwords == 0)
        return (int)ck_sys(SYS_set_mempolicy, mode, NULL, 0, 0, 0);
    if ((rc = ck_words_to_mask(mask, sizeof(mask), words, nwords)) < 0)
        return rc;
    return (int)ck_sys(SYS_set_mempolicy, mode, mask, (unsigned long)nwords * 32 + 1, 0, 0);
}

/* sched_setaffinity(0) to the CPUs of words (32-bit, lowest first): an exec'd process's
 * execCPUAffinity. */
static int ck_affinity(const unsigned int *words, int nwords)
{
    unsigned long mask[64];
    int rc;

    if (nwords <= 0)
        return -EINVAL;
    if ((rc = ck_words_to_mask(mask, sizeof(mask), words, nwords)) < 0)
        return rc;
    return (int)ck_sys(SYS_sched_setaffinity, 0, sizeof(mask), mask, 0, 0);
}

/* One sync message (sync.py's table) with fd attached (SCM_RIGHTS). */
static int ck_send_fd(int sync_fd, const char *text, int fd)
{
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg;
    struct iovec iov;
    struct cmsghdr *cmsg;

    memset(&msg, 0, sizeof(msg));
    memset(&control, 0, sizeof(control));
    iov.iov_base = (void *)text;
    iov.iov_len = strlen(text);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    return (int)ck_sys(SYS_sendmsg, sync_fd, &msg, MSG_NOSIGNAL, 0, 0);
}

/* With SECCOMP_FILTER_FLAG_NEW_LISTENER seccomp(2) returns the notify fd: it goes to
 * the parent as "SECCOMP" with SCM_RIGHTS on sync_fd, and the init waits for CONTINUE
 * (the agent must hold the fd before the init makes a notified call). */
static int ck_seccomp(unsigned int flags, const unsigned int *words, int nwords, int sync_fd)
{
    struct { unsigned short len; const void *filter; } prog = {
        (unsigned short)(nwords / 2), words };
    int fd, rc;

    fd = (int)ck_sys(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, flags, &prog, 0, 0);
    if (fd < 0 || !(flags & 8 /* SECCOMP_FILTER_FLAG_NEW_LISTENER */))
        return fd < 0 ? fd : 0;
    rc = ck_send_fd(sync_fd, "SECCOMP", fd);
    ck_close(fd);
    if (rc < 0)
        return rc;
    return ck_sync(sync_fd, NULL, "CONTINUE");
}


/* Send s[0] (unless NULL) on the sync socket, then block until the parent answers
 * exactly s[1] (the protocol table's stop points, e.g. HOOKS / CONTINUE). */
static int ck_sync(int sync_fd, const char *send, const char *expect)
{
    char buf[64];
    size_t want = strlen(expect);
    long n;

    if (send != NULL && (n = ck_write(sync_fd, send, strlen(send))) < 0)
        return (int)n;
    n = ck_read(sync_fd, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    if ((size_t)n != want || memcmp(buf, expect, want) != 0)
        return -EPROTO;                 /* EOF (the parent gave up) or off-protocol */
    return 0;
}

static size_t ck_append_uint(char *buf, size_t at, size_t cap, unsigned long long v)
{
    char num[24];
    int k = (int)sizeof(num);

    do {
        num[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return ck_append(buf, at, cap, num + k, sizeof(num) - (size_t)k);
}

static long long ck_now_ms(void)
{
    struct { long long sec, nsec; } ts;

    if (ck_sys(SYS_clock_gettime, CLOCK_MONOTONIC, &ts, 0, 0, 0) < 0)
        return 0;
    return ts.sec * 1000 + ts.nsec / 1000000;
}

/* The grandchild: state on stdin, output into the pipe, cwd, then execve. Exec
 * failures go back as an int on errfd (close-on-exec: nothing arrives on success). */
static void __attribute__((noreturn))
ck_hook_exec(const struct ck_op *op, int state_fd, int outw, int errfd)
{
    long rc;

    if ((rc = ck_sys(SYS_dup3, state_fd, 0, 0, 0, 0)) < 0
            || (rc = ck_sys(SYS_dup3, outw, 1, 0, 0, 0)) < 0
            || (rc = ck_sys(SYS_dup3, outw, 2, 0, 0, 0)) < 0)
        goto fail;
    if (errfd != 3) {
        if ((rc = ck_sys(SYS_dup3, errfd, 3, O_CLOEXEC, 0, 0)) < 0)
            goto fail;
        errfd = 3;
    }
    (void)ck_close_range(4, ~0U, 0);
    (void)ck_sys(SYS_setpgid, 0, 0, 0, 0, 0);  /* a timeout kills what it started too */
    if (op->s[1] != NULL && (rc = ck_chdir(op->s[1])) < 0)
        goto fail;
    (void)ck_sigaction(SIGPIPE, (unsigned long)SIG_DFL);
    rc = ck_sys(SYS_execve, op->s[0], op->argv, op->envp, 0, 0);
fail:
    {
        int err = (int)-rc;
        (void)ck_write(errfd, &err, sizeof(err));
    }
    ck_exit(127);
}

/* The last non-empty line of what a hook wrote (tail[0..n) is its last bytes). */
static size_t ck_last_line(const char *tail, size_t n, const char **line)
{
    size_t end = n, start;

    while (end > 0 && (tail[end - 1] == '\n' || tail[end - 1] == '\r' || tail[end - 1] == ' '))
        end--;
    start = end;
    while (start > 0 && tail[start - 1] != '\n')
        start--;
    *line = tail + start;
    return end - start;
}

/* Run one OCI hook from the init (createContainer, startContainer) as runc does: fork,
 * exec with the state on stdin, wait, kill at the timeout. s[0] = path, s[1] = cwd or
 * NULL; argv, envp; i[0] = the state file (a memfd the parent filled, read from 0),
 * i[1] = timeout in ms (0: none), i[2] = an extra fd that also gets the ERROR message
 * (exec.fifo, for a `start` in another process), or -1. A failure fills child->report
 * with "path: why" and returns -CK_EHOOK (or -errno when the init's own calls fail). */
static int ck_hook(const struct ck_op *op, struct ck_child *child)
{
    int pipefd[2], errpipe[2], pidfd = -1, status = 0, err = 0, rc;
    struct pollfd pfd[2];
    char tail[512], chunk[512];
    size_t tlen = 0, at = 0, cap = sizeof(child->report), n;
    long long deadline = op->i[1] > 0 ? ck_now_ms() + op->i[1] : 0, left;
    long pid, got;
    const char *line;
    int timed_out = 0;

    if ((rc = (int)ck_sys(SYS_pipe2, pipefd, O_CLOEXEC, 0, 0, 0)) < 0)
        return rc;
    if ((rc = (int)ck_sys(SYS_pipe2, errpipe, O_CLOEXEC, 0, 0, 0)) < 0) {
        ck_close(pipefd[0]);
        ck_close(pipefd[1]);
        return rc;
    }
    (void)ck_sys(SYS_lseek, (int)op->i[0], 0, SEEK_SET, 0, 0);
    pid = ck_sys(SYS_clone, SIGCHLD | CLONE_PIDFD, 0, &pidfd, 0, 0);
    if (pid == 0)
        ck_hook_exec(op, (int)op->i[0], pipefd[1], errpipe[1]);
    ck_close(pipefd[1]);
    ck_close(errpipe[1]);
    if (pid < 0) {
        ck_close(pipefd[0]);
        ck_close(errpipe[0]);
        return (int)pid;
    }
    got = ck_read(errpipe[0], &err, sizeof(err));    /* 0: it exec'd */
    ck_close(errpipe[0]);
    (void)ck_sys(SYS_fcntl, pipefd[0], F_SETFL, O_NONBLOCK, 0, 0);
    pfd[0].fd = pidfd;
    pfd[0].events = POLLIN;
    pfd[1].fd = got == (long)sizeof(err) ? -1 : pipefd[0];
    pfd[1].events = POLLIN;
    while (got != (long)sizeof(err)) {
        left = -1;
        if (deadline) {
            left = deadline - ck_now_ms();
            if (left <= 0) {
                timed_out = 1;
                break;
            }
        }
        {
            struct { long long sec, nsec; } ts = { left / 1000, (left % 1000) * 1000000 };
            rc = (int)ck_sys(SYS_ppoll, pfd, 2, left < 0 ? NULL : (void *)&ts, NULL, 0);
        }
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            break;
        if (pfd[1].fd >= 0 && pfd[1].revents) {
            long m = ck_read(pipefd[0], chunk, sizeof(chunk));
            if (m <= 0 && m != -EAGAIN)
                pfd[1].fd = -1;         /* EOF: the hook (and its children) closed it */
            for (long j = 0; j < m; j++) {      /* keep the last bytes */
                if (tlen == sizeof(tail)) {
                    memmove(tail, tail + 1, sizeof(tail) - 1);
                    tlen--;
                }
                tail[tlen++] = chunk[j];
            }
        }
        if (pfd[0].revents)
            break;                      /* the hook exited */
    }
    if (timed_out) {
        (void)ck_sys(SYS_kill, -pid, SIGKILL, 0, 0, 0);      /* its process group */
        (void)ck_sys(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0, 0);
    }
    do
        got = ck_sys(SYS_wait4, pid, &status, 0, NULL, 0);
    while (got == -EINTR);
    for (;;) {                          /* what it wrote just before exiting */
        long m = ck_read(pipefd[0], chunk, sizeof(chunk));
        if (m <= 0)
            break;
        for (long j = 0; j < m; j++) {
            if (tlen == sizeof(tail)) {
                memmove(tail, tail + 1, sizeof(tail) - 1);
                tlen--;
            }
            tail[tlen++] = chunk[j];
        }
    }
    ck_close(pipefd[0]);
    ck_close(pidfd);
    if (err == 0 && !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    at = ck_append(child->report, at, cap, op->s[0], strlen(op->s[0]));
    if (err != 0) {
        return -err;                    /* exec failed: the parent names the errno */
    } else if (timed_out) {
        at = ck_append(child->report, at, cap, ": timed out after ", 18);
        at = ck_append_uint(child->report, at, cap, (unsigned long long)(op->i[1] / 1000));
        at = ck_append(child->report, at, cap, "s", 1);
    } else if (WIFSIGNALED(status)) {
        at = ck_append(child->report, at, cap, ": killed by signal ", 19);
        at = ck_append_uint(child->report, at, cap, (unsigned long long)WTERMSIG(status));
    } else {
        at = ck_append(child->report, at, cap, ": exited with status ", 21);
        at = ck_append_uint(child->report, at, cap, (unsigned long long)WEXITSTATUS(status));
        n = ck_last_line(tail, tlen, &line);
        if (n > 0) {
            at = ck_append(child->report, at, cap, ": ", 2);
            at = ck_append(child->report, at, cap, line, n);
        }
    }
    if (at == cap)
        at--;
    child->report[at] = '\0';
    return -CK_EHOOK;
}

/* ---- paths inside the rootfs, and mounts on them --------------------------------------
 *
 * Every container path (mount destination, device node, masked or read-only path, cwd)
 * is resolved here, in the child, against an O_PATH fd of the container's root
 * (child->rootfd: CK_OP_OPEN_ROOT after the rootfs bind, "/" again after pivot_root)
 * with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): an absolute symlink restarts at
 * that root, ".." never climbs above it, /proc magic links are refused. What is missing
 * is made one component at a time, relative to the fd of its resolved parent. The
 * mount then goes onto the fd itself (move_mount with MOVE_MOUNT_T_EMPTY_PATH): nothing
 * is looked up by path twice, so a symlink swapped in between cannot redirect it. */

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define CK_RESOLVE_NO_XDEV 0x01ULL
#define CK_RESOLVE_NO_MAGICLINKS 0x02ULL
#define CK_RESOLVE_NO_SYMLINKS 0x04ULL
#define CK_RESOLVE_BENEATH 0x08ULL
#define CK_RESOLVE_IN_ROOT 0x10ULL
#define CK_IN_ROOT (CK_RESOLVE_IN_ROOT | CK_RESOLVE_NO_MAGICLINKS)
#define CK_OPEN_TREE_CLONE 1U
#define CK_AT_EMPTY_PATH 0x1000U
#define CK_AT_RECURSIVE 0x8000U
#define CK_MOVE_MOUNT_F_EMPTY_PATH 0x04U
#define CK_MOVE_MOUNT_T_EMPTY_PATH 0x40U
#define CK_FSCONFIG_SET_FLAG 0U
#define CK_FSCONFIG_SET_STRING 1U
#define CK_FSCONFIG_CMD_CREATE 6U
#define CK_MOUNT_ATTR_RDONLY 0x01ULL
/* CK_OP_MOUNT_AT's i[0] */
#define CK_MNT_REC 1            /* open_tree(AT_RECURSIVE): rbind */
#define CK_MNT_FILE 2           /* the destination is a file (made empty if missing) */
#define CK_MNT_TMPCOPYUP 4      /* copy what the destination holds into the new mount */
#define CK_MNT_ON_PROC 16       /* may go onto procfs (checked in the parent: lxcfs files) */
#define CK_MNT_REMOUNT 32       /* change the attributes of the mount already there */
#define CK_PROC_SUPER_MAGIC 0x9fa0
#define CK_MK_NONE 0
#define CK_MK_DIR 1
#define CK_MK_FILE 2
#define CK_MAX_LINKS 40
#define CK_COPY_DEPTH 24

struct ck_open_how {
    uint64_t flags, mode, resolve;
};

struct ck_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

#if CK_SHARED_VM
static int ck_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    return (int)ck_sys(SYS_newfstatat, dirfd, path, st, flags, 0);
}
#else
static int ck_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    return fstatat(dirfd, path, st, flags) < 0 ? -errno : 0;
}
#endif

/* runc's fixStdioPermissions, before the process becomes `uid`: 0, 1 and 2 (the
 * caller's pipes, say) are owned by it, so that it can open /dev/stdout (a magic link:
 * the inode's permissions count). Not /dev/null, not what already is; EINVAL (uid not
 * mapped here), EPERM (owner not mapped) and EROFS leave the fd as it is, as in runc. */
static int ck_stdio_owner(unsigned int uid)
{
    struct stat st;
    int fd, rc;

    for (fd = 0; fd <= 2; fd++) {
        if ((rc = ck_fstatat(fd, "", &st, AT_EMPTY_PATH)) < 0) {
            if (rc == -EBADF)
                continue;
            return rc;
        }
        if (st.st_uid == uid || (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)))
            continue;
        rc = (int)ck_sys(SYS_fchown, fd, uid, (unsigned int)-1, 0, 0);
        if (rc < 0 && rc != -EINVAL && rc != -EPERM && rc != -EROFS)
            return rc;
    }
    return 0;
}

/* openat2; EAGAIN (a rename or mount raced a scoped lookup, which the kernel then
 * refuses to trust) is retried a few times, as openat2(2) suggests. */
static int ck_openat2(int dirfd, const char *path, unsigned long long flags,
                      unsigned long long resolve)
{
    struct ck_open_how how;
    int tries = 0, fd;

    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.resolve = resolve;
    do
        fd = (int)ck_sys(SYS_openat2, dirfd, path, &how, sizeof(how), 0);
    while (fd == -EAGAIN && ++tries < 64);
    return fd;
}

/* CK_OP_WRITE_FILE: one write(2) of text to the procfs file at path, relative to procfd,
 * the host's /proc that the parent opened and checked (never the container's, whose
 * image may have put a symlink at /proc/sys/net/ipv4/ip_forward leading to a host-wide
 * file through another proc mount: CVE-2025-52881). No symlink, magic link or mount
 * crossing is followed, and the file must be on procfs. A path starting "self/" is
 * this process's directory: procfs's own "self" link, read, not followed. (Sysctls
 * under sys/ are the namespaces' of the opener, not the mount's.) */
static int ck_write_proc(int procfd, const char *path, const char *text)
{
    const unsigned long long how = CK_RESOLVE_BENEATH | CK_RESOLVE_NO_SYMLINKS
                                   | CK_RESOLVE_NO_MAGICLINKS | CK_RESOLVE_NO_XDEV;
    char buf[512];
    struct statfs sfs;
    size_t len = strlen(text), at;
    long n;
    int fd, rc;

    if (strncmp(path, "self/", 5) == 0) {
        n = ck_sys(SYS_readlinkat, procfd, "self", buf, sizeof(buf) - 1, 0);
        if (n < 0)
            return (int)n;
        at = (size_t)n;
        at = ck_append(buf, at, sizeof(buf) - 1, path + 4, strlen(path + 4));
        buf[at] = '\0';
        path = buf;
    }
    fd = ck_openat2(procfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, how);
    if (fd < 0)
        return fd;
    rc = (int)ck_sys(SYS_fstatfs, fd, &sfs, 0, 0, 0);
    if (rc == 0 && sfs.f_type != CK_PROC_SUPER_MAGIC)
        rc = -EXDEV;
    if (rc == 0) {
        n = ck_write(fd, text, len);
        rc = n < 0 ? (int)n : 0;
    }
    ck_close(fd);
    return rc;
}

static int ck_setattr(int fd, unsigned int at_flags, unsigned long long set,
                      unsigned long long clr, unsigned long long propagation, int userns)
{
    struct ck_mount_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.attr_set = set;
    attr.attr_clr = clr;
    attr.propagation = propagation;
    attr.userns_fd = userns >= 0 ? (uint64_t)userns : 0;
    return (int)ck_sys(SYS_mount_setattr, fd, "", CK_AT_EMPTY_PATH | at_flags, &attr,
                       sizeof(attr));
}

static int ck_move_mount(int tree, int target)
{
    return (int)ck_sys(SYS_move_mount, tree, "", target, "",
                       CK_MOVE_MOUNT_F_EMPTY_PATH | CK_MOVE_MOUNT_T_EMPTY_PATH);
}

/* Why the kernel refused a filesystem's options, from the fs context's log. */
static void ck_fs_log(int fsfd, struct ck_child *child)
{
    long n = ck_read(fsfd, child->why, sizeof(child->why) - 1);

    long k;

    if (n < 2)
        n = 0;
    while (n > 0 && child->why[n - 1] == '\n')
        n--;
    child->why[n] = '\0';
    if (n > 2 && child->why[1] == ' ')          /* "e tmpfs: Bad value for 'size'" */
        for (k = 0; k + 2 <= n; k++)
            child->why[k] = child->why[k + 2];
}

/* An O_PATH fd of `path` resolved inside the root (see above), or -errno. With `make`,
 * missing directories are made (0755), and with CK_MK_FILE the last component as an
 * empty file (0644). A dangling symlink on the way is followed as the kernel would,
 * inside the root, and what it names is made. */
static int ck_resolve(int rootfd, const char *path, int make)
{
    char buf[PATH_MAX], link[PATH_MAX], next[PATH_MAX];
    size_t len = strlen(path), at, start, end, n;
    int links = 0, parent, fd, rc, last;
    long got;
    char saved;

    if (rootfd < 0)
        return -EBADF;
    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
again:
    fd = ck_openat2(rootfd, buf, O_PATH | O_CLOEXEC, CK_IN_ROOT);
    if (fd != -ENOENT || make == CK_MK_NONE)
        return fd;
    parent = ck_openat2(rootfd, "/", O_PATH | O_CLOEXEC, CK_IN_ROOT);
    at = 0;
    while (parent >= 0) {
        while (buf[at] == '/')
            at++;
        if (buf[at] == '\0')
            return parent;
        start = at;
        for (end = start; buf[end] != '\0' && buf[end] != '/'; end++)
            ;
        for (n = end; buf[n] == '/'; n++)
            ;
        last = buf[n] == '\0';
        saved = buf[end];
        buf[end] = '\0';
        fd = ck_openat2(rootfd, buf, O_PATH | O_CLOEXEC, CK_IN_ROOT);
        if (fd == -ENOENT) {
            if (last && make == CK_MK_FILE)
                rc = (int)ck_sys(SYS_mknodat, parent, buf + start, S_IFREG | 0644, 0, 0);
            else
                rc = (int)ck_sys(SYS_mkdirat, parent, buf + start, 0755, 0, 0);
            if (rc < 0 && rc != -EEXIST) {
                ck_close(parent);
                return rc;
            }
            fd = ck_openat2(rootfd, buf, O_PATH | O_CLOEXEC, CK_IN_ROOT);
        }
        if (fd == -ENOENT) {            /* a dangling symlink: go where it points */
            got = ck_sys(SYS_readlinkat, parent, buf + start, link, sizeof(link) - 1, 0);
            ck_close(parent);
            if (++links > CK_MAX_LINKS)
                return -ELOOP;
            buf[end] = saved;
            if (got == -EINVAL || got == -ENOENT)
                goto again;             /* no longer a symlink (or gone): start over */
            if (got < 0)
                return (int)got;
            link[got] = '\0';
            n = 0;
            if (link[0] != '/')         /* relative to the symlink's directory */
                n = ck_append(next, n, sizeof(next), buf, start);
            n = ck_append(next, n, sizeof(next), link, (size_t)got);
            n = ck_append(next, n, sizeof(next), "/", 1);
            n = ck_append(next, n, sizeof(next), buf + end, strlen(buf + end) + 1);
            if (n >= sizeof(next) || next[n - 1] != '\0')
                return -ENAMETOOLONG;
            memcpy(buf, next, n);
            goto again;
        }
        buf[end] = saved;
        ck_close(parent);
        parent = fd;
        at = end;
    }
    return parent;
}

/* The symlink `name` of dir made again in dst. Not inlined: its PATH_MAX buffer would
 * otherwise sit in every frame of ck_copy_tree's recursion, and CK_COPY_DEPTH of those
 * overflowed the child's fixed stack (CK_STACK_SIZE). */
static __attribute__((noinline)) int ck_copy_link(int dir, int dst, const char *name)
{
    char target[PATH_MAX];
    long got = ck_sys(SYS_readlinkat, dir, name, target, sizeof(target) - 1, 0);

    if (got < 0)
        return (int)got;
    target[got] = '\0';
    return (int)ck_sys(SYS_symlinkat, target, dst, name, 0, 0);
}

/* Copy the tree under src (a directory fd) into dst: modes, owners, symlinks as
 * symlinks, device nodes and fifos as nodes; nothing is followed. For tmpcopyup. */
static int ck_copy_tree(int src, int dst, int depth)
{
    char dents[1024];
    struct stat st;
    int dir, rc = 0, in, out, sub_src, sub_dst;
    long n, k, got;

    if (depth > CK_COPY_DEPTH)
        return -ELOOP;
    dir = ck_openat2(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, CK_RESOLVE_BENEATH);
    if (dir < 0)
        return dir;
    while (rc == 0 && (n = ck_sys(SYS_getdents64, dir, dents, sizeof(dents), 0, 0)) > 0) {
        for (k = 0; rc == 0 && k < n; ) {
            unsigned short reclen = *(unsigned short *)(dents + k + 16);
            const char *name = dents + k + 19;

            k += reclen;
            if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
                continue;
            if ((rc = ck_fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW)) < 0)
                break;
            if (S_ISDIR(st.st_mode)) {
                rc = (int)ck_sys(SYS_mkdirat, dst, name, st.st_mode & 07777, 0, 0);
                if (rc < 0 && rc != -EEXIST)
                    break;
                sub_src = ck_openat2(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                                     CK_RESOLVE_BENEATH | CK_RESOLVE_NO_SYMLINKS);
                sub_dst = ck_openat2(dst, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                                     CK_RESOLVE_BENEATH | CK_RESOLVE_NO_SYMLINKS);
                rc = sub_src < 0 ? sub_src : sub_dst < 0 ? sub_dst : 0;
                if (rc == 0)
                    rc = ck_copy_tree(sub_src, sub_dst, depth + 1);
                if (sub_src >= 0)
                    ck_close(sub_src);
                if (sub_dst >= 0)
                    ck_close(sub_dst);
            } else if (S_ISREG(st.st_mode)) {
                in = (int)ck_sys(SYS_openat, dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, 0);
                if (in < 0) {
                    rc = in;
                    break;
                }
                out = (int)ck_sys(SYS_openat, dst, name,
                                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                  st.st_mode & 07777, 0);
                rc = out;
                while (out >= 0 && (got = ck_sys(SYS_sendfile, out, in, NULL, 1 << 20, 0)) != 0)
                    if (got < 0) {
                        rc = (int)got;
                        break;
                    }
                ck_close(in);
                if (out >= 0)
                    ck_close(out);
                if (rc < 0)
                    break;
                rc = 0;
            } else if (S_ISLNK(st.st_mode)) {
                rc = ck_copy_link(dir, dst, name);
            } else {
                rc = (int)ck_sys(SYS_mknodat, dst, name, st.st_mode, (unsigned int)st.st_rdev, 0);
            }
            if (rc == 0)
                rc = (int)ck_sys(SYS_fchownat, dst, name, st.st_uid, st.st_gid,
                                 AT_SYMLINK_NOFOLLOW);
        }
    }
    if (rc == 0 && n < 0)
        rc = (int)n;
    ck_close(dir);
    return rc;
}

/* A new filesystem (fsopen, one fsconfig per comma-separated option, fsmount): a
 * detached mount's fd, or -errno with the kernel's reason in child->why. */
static int ck_new_fs(const char *fstype, const char *source, const char *data,
                     struct ck_child *child)
{
    char opts[4096];
    size_t len = data != NULL ? strlen(data) : 0, k, start;
    int fsfd, rc = 0, mfd;

    if (len >= sizeof(opts))
        return -E2BIG;
    fsfd = (int)ck_sys(SYS_fsopen, fstype, 1 /* FSOPEN_CLOEXEC */, 0, 0, 0);
    if (fsfd < 0)
        return fsfd;
    if (source != NULL && source[0] != '\0')
        rc = (int)ck_sys(SYS_fsconfig, fsfd, CK_FSCONFIG_SET_STRING, "source", source, 0);
    if (len)
        memcpy(opts, data, len + 1);
    for (start = 0, k = 0; rc == 0 && len && k <= len; k++) {
        char *eq;

        if (opts[k] != ',' && opts[k] != '\0')
            continue;
        opts[k] = '\0';
        if (k > start) {
            eq = NULL;
            for (size_t j = start; j < k; j++)
                if (opts[j] == '=') {
                    eq = opts + j;
                    break;
                }
            if (eq != NULL) {
                *eq = '\0';
                rc = (int)ck_sys(SYS_fsconfig, fsfd, CK_FSCONFIG_SET_STRING, opts + start,
                                 eq + 1, 0);
            } else {
                rc = (int)ck_sys(SYS_fsconfig, fsfd, CK_FSCONFIG_SET_FLAG, opts + start,
                                 NULL, 0);
            }
        }
        start = k + 1;
    }
    if (rc == 0)
        rc = (int)ck_sys(SYS_fsconfig, fsfd, CK_FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    if (rc < 0) {
        ck_fs_log(fsfd, child);
        ck_close(fsfd);
        return rc;
    }
    mfd = (int)ck_sys(SYS_fsmount, fsfd, 1 /* FSMOUNT_CLOEXEC */, 0, 0, 0);
    ck_close(fsfd);
    return mfd;
}

/* A mount in the root (CK_OP_MOUNT_AT): a bind (fstype NULL: open_tree clone of the
 * host's source), a new filesystem, or a detached tree the parent made (an idmapped
 * bind: a user namespace could not set the idmap); then the tmpcopyup
 * content, the attributes (r* ones on the whole tree first, then the top mount's:
 * mount_setattr changes only what is named, so flags locked on a bind's source stay),
 * then attached on the resolved destination and given its propagation. */
static int ck_mount_at(const struct ck_op *op, struct ck_child *child)
{
    const char *source = op->s[0], *dest = op->s[1], *fstype = op->s[2];
    long long kind = op->i[0];
    int given = (int)op->i[1];          /* a detached tree the parent made (idmapped) */
    const unsigned int *a = op->ids;
    int target, tree, rc, k;

    if (op->nids < 4)
        return -EINVAL;
    if (kind & CK_MNT_REMOUNT) {
        target = ck_resolve(child->rootfd, dest, CK_MK_NONE);
        if (target < 0)
            return target;
        rc = 0;
        if (a[2] || a[3])
            rc = ck_setattr(target, CK_AT_RECURSIVE, a[2], a[3], 0, -1);
        if (rc == 0 && (a[0] || a[1]))
            rc = ck_setattr(target, 0, a[0], a[1], 0, -1);
        for (k = 4; rc == 0 && k < op->nids; k++)
            rc = ck_setattr(target, a[k] & MS_REC ? CK_AT_RECURSIVE : 0, 0, 0, a[k] & ~MS_REC,
                            -1);
        ck_close(target);
        return rc;
    }
    target = ck_resolve(child->rootfd, dest, kind & CK_MNT_FILE ? CK_MK_FILE : CK_MK_DIR);
    if (target < 0)
        return target;
    if (!(kind & CK_MNT_ON_PROC)) {     /* a symlink may lead into /proc: runc's rule */
        struct statfs sfs;

        rc = (int)ck_sys(SYS_fstatfs, target, &sfs, 0, 0, 0);
        if (rc == 0 && sfs.f_type == CK_PROC_SUPER_MAGIC) {
            const char why[] = "the destination is inside /proc";

            memcpy(child->why, why, sizeof(why));
            rc = -EPERM;
        }
        if (rc < 0) {
            ck_close(target);
            return rc;
        }
    }
    if (given >= 0)
        tree = given;
    else if (fstype == NULL)
        tree = (int)ck_sys(SYS_open_tree, AT_FDCWD, source, CK_OPEN_TREE_CLONE | O_CLOEXEC
                           | (kind & CK_MNT_REC ? CK_AT_RECURSIVE : 0), 0, 0);
    else
        tree = ck_new_fs(fstype, source, op->s[3], child);
    if (tree < 0) {
        ck_close(target);
        return tree;
    }
    rc = 0;
    if (kind & CK_MNT_TMPCOPYUP) {
        long old = ck_sys(SYS_umask, 0, 0, 0, 0, 0);    /* the copies keep their modes */

        rc = ck_copy_tree(target, tree, 0);
        ck_sys(SYS_umask, old, 0, 0, 0, 0);
    }
    if (rc == 0 && (a[2] || a[3]))
        rc = ck_setattr(tree, CK_AT_RECURSIVE, a[2], a[3], 0, -1);
    if (rc == 0 && (a[0] || a[1]))
        rc = ck_setattr(tree, 0, a[0], a[1], 0, -1);
    if (rc == 0)
        rc = ck_move_mount(tree, target);
    for (k = 4; rc == 0 && k < op->nids; k++)      /* MS_SHARED... [| MS_REC] */
        rc = ck_setattr(tree, a[k] & MS_REC ? CK_AT_RECURSIVE : 0, 0, 0, a[k] & ~MS_REC, -1);
    ck_close(tree);
    ck_close(target);
    return rc;
}

/* The directory fd of a node's parent, made if missing. */
static int ck_parent_at(struct ck_child *child, const char *dir)
{
    int fd = ck_resolve(child->rootfd, dir, CK_MK_DIR);
    struct stat st;
    int rc;

    if (fd >= 0 && (rc = ck_fstatat(fd, "", &st, AT_EMPTY_PATH)) < 0) {
        ck_close(fd);
        return rc;
    }
    if (fd >= 0 && !S_ISDIR(st.st_mode)) {
        ck_close(fd);
        return -ENOTDIR;
    }
    return fd;
}

/* A device node dir/name with the exact mode (umask 0) and owner; whatever was there,
 * even a symlink, is replaced, never followed. */
static int ck_mknod_at(struct ck_child *child, const char *dir, const char *name,
                       mode_t mode, dev_t dev, uid_t uid, gid_t gid)
{
    int parent, rc;
    long old;

    if ((dev_t)(unsigned int)dev != dev)
        return -EINVAL;
    if ((parent = ck_parent_at(child, dir)) < 0)
        return parent;
    rc = (int)ck_sys(SYS_unlinkat, parent, name, 0, 0, 0);
    if (rc == 0 || rc == -ENOENT) {
        old = ck_sys(SYS_umask, 0, 0, 0, 0, 0);
        rc = (int)ck_sys(SYS_mknodat, parent, name, mode, (unsigned int)dev, 0);
        ck_sys(SYS_umask, old, 0, 0, 0, 0);
    }
    if (rc == 0)
        rc = (int)ck_sys(SYS_fchownat, parent, name, uid, gid, AT_SYMLINK_NOFOLLOW);
    ck_close(parent);
    return rc;
}

static int ck_symlink_at(struct ck_child *child, const char *target, const char *dir,
                         const char *name)
{
    int parent = ck_parent_at(child, dir), rc;

    if (parent < 0)
        return parent;
    rc = (int)ck_sys(SYS_symlinkat, target, parent, name, 0, 0);
    ck_close(parent);
    return rc == -EEXIST ? 0 : rc;
}

/* maskedPaths: a directory under an empty read-only tmpfs, anything else under the
 * container's /dev/null (which must be the null device); missing: nothing to mask. */
static int ck_mask_at(struct ck_child *child, const char *path)
{
    struct stat st;
    int fd = ck_resolve(child->rootfd, path, CK_MK_NONE), tree, null, rc;

    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    if ((rc = ck_fstatat(fd, "", &st, AT_EMPTY_PATH)) < 0) {
        ck_close(fd);
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        tree = ck_new_fs("tmpfs", "tmpfs", NULL, child);
        if (tree >= 0 && (rc = ck_setattr(tree, 0, CK_MOUNT_ATTR_RDONLY, 0, 0, -1)) < 0) {
            ck_close(tree);
            tree = rc;
        }
    } else if (child->devnull >= 0) {
        tree = (int)ck_sys(SYS_open_tree, child->devnull, "",
                           CK_OPEN_TREE_CLONE | O_CLOEXEC | CK_AT_EMPTY_PATH, 0, 0);
    } else {
        null = ck_resolve(child->rootfd, "/dev/null", CK_MK_NONE);
        if (null >= 0 && (rc = ck_fstatat(null, "", &st, AT_EMPTY_PATH)) < 0) {
            ck_close(null);
            null = rc;
        } else if (null >= 0 && (!S_ISCHR(st.st_mode) || st.st_rdev != (dev_t)makedev(1, 3))) {
            ck_close(null);
            null = -ENODEV;             /* /dev/null is not the null device */
        }
        if (null == -ENOENT || null == -ENODEV) {
            const char no[] = "the container has no /dev/null to mask it with";
            const char not[] = "the container's /dev/null is not the null device";

            if (null == -ENOENT)
                memcpy(child->why, no, sizeof(no));
            else
                memcpy(child->why, not, sizeof(not));
        }
        tree = null < 0 ? null : (int)ck_sys(SYS_open_tree, null, "",
                                             CK_OPEN_TREE_CLONE | O_CLOEXEC | CK_AT_EMPTY_PATH,
                                             0, 0);
        if (null >= 0)
            child->devnull = null;      /* (O_CLOEXEC: gone at the execve) */
    }
    rc = tree < 0 ? tree : ck_move_mount(tree, fd);
    if (tree >= 0)
        ck_close(tree);
    ck_close(fd);
    return rc;
}

/* readonlyPaths (bind_first: a read-only recursive bind of the path onto itself; a
 * missing path is skipped) and root.readonly (the root's own mount made read-only). */
static int ck_readonly_at(struct ck_child *child, const char *path, int bind_first)
{
    int fd = ck_resolve(child->rootfd, path, CK_MK_NONE), tree, rc;

    if (fd < 0)
        return fd == -ENOENT && bind_first ? 0 : fd;
    if (!bind_first) {
        rc = ck_setattr(fd, 0, CK_MOUNT_ATTR_RDONLY, 0, 0, -1);
        ck_close(fd);
        return rc;
    }
    tree = (int)ck_sys(SYS_open_tree, fd, "",
                       CK_OPEN_TREE_CLONE | O_CLOEXEC | CK_AT_EMPTY_PATH | CK_AT_RECURSIVE, 0, 0);
    rc = tree;
    if (tree >= 0)
        rc = ck_setattr(tree, CK_AT_RECURSIVE, CK_MOUNT_ATTR_RDONLY, 0, 0, -1);
    if (rc >= 0)
        rc = ck_move_mount(tree, fd);
    if (tree >= 0)
        ck_close(tree);
    ck_close(fd);
    return rc < 0 ? rc : 0;
}

/* The container's root as child->rootfd (O_PATH; "/" after pivot_root or chroot). */
static int ck_open_root(struct ck_child *child, const char *path)
{
    int fd = ck_openat2(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);

    if (fd == -ENOSYS) {                /* no openat2 (Linux < 5.6): no safe resolution */
        const char why[] = "openat2 is missing: Linux 5.6 or later is needed";

        memcpy(child->why, why, sizeof(why));
        return fd;
    }
    if (fd < 0)
        return fd;
    if (child->rootfd >= 0)
        ck_close(child->rootfd);
    child->rootfd = fd;
    if (child->devnull >= 0) {          /* another root, another /dev/null */
        ck_close(child->devnull);
        child->devnull = -1;
    }
    return 0;
}

/* --no-pivot: move the rootfs mount onto / and chroot into it (runc's msMoveRoot), for
 * roots that pivot_root refuses (an initramfs). First the host's full procfs and sysfs
 * mounts (hide[], from the parent's mountinfo) are detached from this namespace, or
 * covered with a tmpfs where that is refused: they would stay reachable otherwise. */
static int ck_move_root(struct ck_child *child, const char *rootfs,
                        const char *const *hide)
{
    int rc;

    for (; hide != NULL && *hide != NULL; hide++) {
        rc = ck_mount_raw(NULL, *hide, NULL, MS_SLAVE | MS_REC, NULL);
        if (rc == -ENOENT)
            continue;
        if (rc == 0)
            rc = (int)ck_sys(SYS_umount2, *hide, MNT_DETACH, 0, 0, 0);
        if (rc == -EINVAL || rc == -EPERM)
            rc = ck_mount_raw("tmpfs", *hide, "tmpfs", MS_RDONLY, NULL);
        if (rc < 0)
            return rc;
    }
    rc = ck_chdir(rootfs);
    if (rc == 0)
        rc = ck_mount_raw(rootfs, "/", NULL, MS_MOVE, NULL);
    if (rc == 0)
        rc = (int)ck_sys(SYS_chroot, ".", 0, 0, 0, 0);
    if (rc == 0)
        rc = ck_chdir("/");
    if (rc == 0)
        rc = ck_open_root(child, "/");
    return rc;
}

/* process.cwd: resolved inside the root like every other container path. */
static int ck_chdir_at(struct ck_child *child, const char *path)
{
    int fd, rc;

    if (child->rootfd < 0)
        return ck_chdir(path);
    fd = ck_resolve(child->rootfd, path, CK_MK_NONE);
    if (fd < 0)
        return fd;
    rc = (int)ck_sys(SYS_fchdir, fd, 0, 0, 0, 0);
    ck_close(fd);
    return rc;
}

/* The session keyring named `name` (runc's "_ses.<id>": the host's session keyring is
 * not inherited; made when none of that name is searchable), then its permissions | add
 * (read back with KEYCTL_DESCRIBE, "type;uid;gid;perm;description", perm in hex; add 0:
 * join only, an exec'd process). A kernel without keyrings is fine. */
static int ck_keyring(const char *name, unsigned int add)
{
    char desc[4096 + 128];              /* a description is up to 4095 bytes */
    long id, n, k;
    unsigned int perm = 0;
    int field = 0;

    id = ck_sys(SYS_keyctl, CK_KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
    if (id == -ENOSYS)
        return 0;
    if (id < 0 || add == 0)
        return id < 0 ? (int)id : 0;
    n = ck_sys(SYS_keyctl, CK_KEYCTL_DESCRIBE, id, desc, sizeof(desc), 0);
    if (n < 0)
        return (int)n;
    if (n > (long)sizeof(desc))
        return -ENAMETOOLONG;           /* the kernel copied nothing: do not parse it */
    for (k = 0; k < n && desc[k] != '\0'; k++) {
        char c = desc[k];
        if (c == ';') {
            if (++field > 3)
                break;
        } else if (field == 3) {
            if (c >= '0' && c <= '9')
                perm = perm << 4 | (unsigned int)(c - '0');
            else if (c >= 'a' && c <= 'f')
                perm = perm << 4 | (unsigned int)(c - 'a' + 10);
            else
                return -EPROTO;
        }
    }
    if (field < 4)
        return -EPROTO;
    return (int)ck_sys(SYS_keyctl, CK_KEYCTL_SETPERM, id, perm | add, 0, 0);
}

/* A pty of the container's own devpts: open ptmx, unlock, the peer by TIOCGPTPEER (no
 * path lookup of /dev/pts/N), the window size when both are given, the peer owned by
 * uid (>= 0) so that a non-root user can use its terminal. Both fds close-on-exec. */
static int ck_pty(struct ck_child *child, const char *ptmx, unsigned short rows,
                  unsigned short cols, long long uid)
{
    struct winsize ws;
    int zero = 0, master, peer, rc;

    master = ck_open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
    if (master < 0)
        return master;
    rc = (int)ck_sys(SYS_ioctl, master, TIOCSPTLCK, &zero, 0, 0);
    peer = rc < 0 ? rc : (int)ck_sys(SYS_ioctl, master, TIOCGPTPEER,
                                     O_RDWR | O_NOCTTY | O_CLOEXEC, 0, 0);
    if (peer < 0) {
        ck_close(master);
        return peer;
    }
    rc = 0;
    if (rows && cols) {
        memset(&ws, 0, sizeof(ws));
        ws.ws_row = rows;
        ws.ws_col = cols;
        rc = (int)ck_sys(SYS_ioctl, peer, TIOCSWINSZ, &ws, 0, 0);
    }
    if (rc == 0 && uid >= 0)
        rc = (int)ck_sys(SYS_fchown, peer, (uid_t)uid, (gid_t)-1, 0, 0);
    if (rc < 0) {
        ck_close(peer);
        ck_close(master);
        return rc;
    }
    child->pty_master = master;
    child->pty_peer = peer;
    return 0;
}

/* /dev/console: an empty file (made if missing), the pty's peer bound onto it by fd
 * (open_tree of the peer, move_mount onto the target's fd: no path is looked up). The
 * target is resolved in the root refusing any symlink: the image's /dev/console as a
 * symlink to /proc/sys/kernel/core_pattern put the pty over that (runc's
 * CVE-2025-52565), before the read-only and masked paths are applied. */
static int ck_console(struct ck_child *child, const char *path)
{
    const unsigned long long how = CK_IN_ROOT | CK_RESOLVE_NO_SYMLINKS;
    struct statfs sfs;
    int target, tree, rc;

    if (child->pty_peer < 0)
        return -EBADF;                  /* no CK_OP_PTY before: a plan bug */
    target = ck_openat2(child->rootfd, path, O_PATH | O_CLOEXEC, how);
    if (target == -ENOENT) {
        target = ck_resolve(child->rootfd, path, CK_MK_FILE);
        if (target >= 0)
            ck_close(target);
        target = ck_openat2(child->rootfd, path, O_PATH | O_CLOEXEC, how);
    }
    if (target == -ELOOP) {
        const char why[] = "a symlink in the container's path, refused";

        memcpy(child->why, why, sizeof(why));
    }
    if (target < 0)
        return target;
    rc = (int)ck_sys(SYS_fstatfs, target, &sfs, 0, 0, 0);
    if (rc == 0 && sfs.f_type == CK_PROC_SUPER_MAGIC) {
        const char why[] = "the destination is inside /proc";

        memcpy(child->why, why, sizeof(why));
        rc = -EPERM;
    }
    tree = rc < 0 ? rc : (int)ck_sys(SYS_open_tree, child->pty_peer, "",
                                     CK_OPEN_TREE_CLONE | O_CLOEXEC | CK_AT_EMPTY_PATH, 0, 0);
    rc = tree < 0 ? tree : ck_move_mount(tree, target);
    if (tree >= 0)
        ck_close(tree);
    ck_close(target);
    return rc;
}

/* The sync protocol's CONSOLE message with the pty master (SCM_RIGHTS); then the
 * init has no more use for the master. */
static int ck_send_pty(struct ck_child *child, int sync_fd)
{
    int rc;

    if (child->pty_master < 0)
        return -EBADF;
    if ((rc = ck_send_fd(sync_fd, "CONSOLE", child->pty_master)) < 0)
        return rc;
    ck_close(child->pty_master);
    child->pty_master = -1;
    return 0;
}

/* The pty's peer onto 0, 1 and 2, and TIOCSCTTY: the terminal controls the session
 * the SETSID op made (both plans put it before). */
static int ck_setctty(struct ck_child *child)
{
    int k, rc, peer = child->pty_peer;

    if (peer < 0)
        return -EBADF;
    for (k = 0; k < 3; k++)
        if (peer != k && (rc = (int)ck_sys(SYS_dup3, peer, k, 0, 0, 0)) < 0)
            return rc;
    if (peer > 2)
        ck_close(peer);
    child->pty_peer = -1;
    return (int)ck_sys(SYS_ioctl, 0, TIOCSCTTY, 0, 0, 0);
}

/* Fds first..first+n-1 inherited by execve (--preserve-fds): clear close-on-exec. */
static int ck_inherit_fds(int first, int n)
{
    int k, rc;

    for (k = first; k < first + n; k++)
        if ((rc = (int)ck_sys(SYS_fcntl, k, F_SETFD, 0, 0, 0)) < 0)
            return rc;
    return 0;
}

/* Fork the container's init from this first child, which joined namespaces by path
 * and/or made a user namespace (whose maps are written): the init's new pid, mount...
 * namespaces are then owned by that user namespace, and it is pid 1 of its own pid
 * namespace, which an unshare(CLONE_NEWPID) cannot give the caller itself. CLONE_PARENT
 * makes the init the spawning process's child (which reaps it); this child reports
 * "INIT <pid>" and exits, the init returns 0 and runs the plan's next ops. Only in a
 * fork-like child (ck_vm_ok): the init runs on a copy of this stack. */
static int ck_fork_init(unsigned long long flags, int sync_fd)
{
    struct ck_clone_args args;
    char msg[32];
    int gate[2], rc;
    size_t at;
    long pid;

    /* the init reads EOF on gate[0] once this child is gone, so INIT is on the socket
     * before anything the init sends there */
    if ((rc = (int)ck_sys(SYS_pipe2, gate, O_CLOEXEC, 0, 0, 0)) < 0)
        return rc;
    memset(&args, 0, sizeof(args));
    args.flags = flags | CLONE_PARENT;  /* exit_signal: must be 0 with CLONE_PARENT */
    pid = ck_sys(SYS_clone3, &args, sizeof(args), 0, 0, 0);
    if (pid == 0) {                     /* the init: goes on once this child exited */
        ck_close(gate[1]);
        rc = (int)ck_read(gate[0], msg, sizeof(msg));
        ck_close(gate[0]);
        return rc < 0 ? rc : 0;
    }
    if (pid < 0) {
        ck_close(gate[0]);
        ck_close(gate[1]);
        return (int)pid;
    }
    at = ck_append(msg, 0, sizeof(msg), "INIT ", 5);
    at = ck_append_uint(msg, at, sizeof(msg), (unsigned long long)pid);
    if (ck_write(sync_fd, msg, at) < 0) {
        ck_sys(SYS_kill, pid, SIGKILL, 0, 0, 0);
        ck_exit(1);
    }
    ck_exit(0);
}

/* ---- the plan as one block: for the shared-memory child's region, and for ck-init ----
 */

struct ck_start {
    const struct ck_op *ops;
    int nops;
    int sync_fd;
};

/* Bump allocation in the region; with base == NULL only counts. */
struct ck_cursor {
    char *base;
    size_t at;
};

static void *ck_take(struct ck_cursor *c, size_t n, size_t align)
{
    void *p;

    c->at = (c->at + align - 1) & ~(align - 1);
    p = c->base ? c->base + c->at : NULL;
    c->at += n;
    return p;
}

static const char *ck_copy_str(struct ck_cursor *c, const char *s)
{
    size_t n;
    char *p;

    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    p = ck_take(c, n, 1);
    if (p)
        memcpy(p, s, n);
    return p;
}

static const char *const *ck_copy_strv(struct ck_cursor *c, const char *const *v)
{
    size_t n = 0, k;
    const char **p;

    if (v == NULL)
        return NULL;
    while (v[n] != NULL)
        n++;
    p = ck_take(c, (n + 1) * sizeof(*p), sizeof(*p));
    for (k = 0; k < n; k++) {
        const char *s = ck_copy_str(c, v[k]);
        if (p)
            p[k] = s;
    }
    if (p)
        p[n] = NULL;
    return (const char *const *)p;
}

/* The start block and a deep copy of ops[] at c (sizes only when c->base is NULL). */
static struct ck_start *ck_copy_plan(struct ck_cursor *c, const struct ck_op *ops,
                                     int nops, int sync_fd)
{
    struct ck_start *start = ck_take(c, sizeof(*start), 16);
    struct ck_op *copy = ck_take(c, (size_t)nops * sizeof(*copy), 16);
    int k, j;

    for (k = 0; k < nops; k++) {
        const struct ck_op *op = &ops[k];
        struct ck_op tmp = *op;
        unsigned int *ids = NULL;

        tmp.name = ck_copy_str(c, op->name);
        tmp.detail = ck_copy_str(c, op->detail);
        for (j = 0; j < 4; j++)
            tmp.s[j] = ck_copy_str(c, op->s[j]);
        if (op->ids != NULL && op->nids > 0) {
            ids = ck_take(c, (size_t)op->nids * sizeof(*ids), sizeof(*ids));
            if (ids)
                memcpy(ids, op->ids, (size_t)op->nids * sizeof(*ids));
        }
        tmp.ids = op->ids != NULL && op->nids > 0 ? ids : op->ids;
        tmp.argv = ck_copy_strv(c, op->argv);
        tmp.envp = ck_copy_strv(c, op->envp);
        if (copy)
            copy[k] = tmp;
    }
    if (start) {
        start->ops = copy;
        start->nops = nops;
        start->sync_fd = sync_fd;
    }
    return start;
}

/* Every pointer of a plan block moved by delta: ck-init maps the block wherever its
 * address space has room, not where the child that wrote it had it. */
#define CK_MOVED(p, delta) ((p) == NULL ? NULL : (void *)((char *)(p) + (delta)))

static void ck_rebase_plan(struct ck_start *start, long delta)
{
    struct ck_op *ops = CK_MOVED((struct ck_op *)start->ops, delta);
    const char **v;
    int k, j;

    start->ops = ops;
    for (k = 0; k < start->nops; k++) {
        struct ck_op *op = &ops[k];

        op->name = CK_MOVED(op->name, delta);
        op->detail = CK_MOVED(op->detail, delta);
        for (j = 0; j < 4; j++)
            op->s[j] = CK_MOVED(op->s[j], delta);
        op->ids = op->nids > 0 ? CK_MOVED(op->ids, delta) : NULL;
        op->argv = CK_MOVED(op->argv, delta);
        for (v = (const char **)op->argv; v != NULL && *v != NULL; v++)
            *v = CK_MOVED(*v, delta);
        op->envp = CK_MOVED(op->envp, delta);
        for (v = (const char **)op->envp; v != NULL && *v != NULL; v++)
            *v = CK_MOVED(*v, delta);
    }
}

#define CK_INIT_ARGV0 "containerkit-init"

/* CK_OP_REEXEC: the rest of the plan goes on in ck-init. Until here the child runs on
 * a copy (or a share) of the caller's process, and /proc/self/exe is the caller's
 * executable: the host's Python. Were the container's program a script starting with
 * "#!/proc/self/exe", the kernel would run that executable as the container's pid 1,
 * and a process of the container could then open it through /proc/<pid>/exe and,
 * once nothing runs it, write it (CVE-2019-5736). So the child executes ck-init from
 * op->i[0], a sealed memfd (ck_init_image: its content can never change, whoever
 * opens it), handing over the rest of the plan in a memfd of its own: the ops after
 * this one, deep-copied as one block (ck_copy_plan), and the address they were copied
 * at. op->ids are the fds the rest of the plan uses (made inheritable here; the
 * CLOEXEC_FROM op before execve marks them close-on-exec again).
 *
 * It comes after the user namespace is entered and its root taken (an execve by an
 * unmapped uid would drop the capabilities the init still needs there), and before
 * anything runs from the container's root (hooks, the program) or the filter is
 * loaded. The child must not hold state ck-init would lack (the root fd, a pty).
 * Returns only on failure. */
static int ck_reexec(const struct ck_op *op, const struct ck_op *rest, int nrest,
                     int sync_fd, const struct ck_child *child)
{
    struct ck_cursor count = { NULL, 0 }, cur;
    char fd_text[24], base_text[24];
    const char *argv[4];
    const char *envp[1] = { NULL };
    size_t size;
    long base;
    int plan, k, rc;

    if (child->rootfd >= 0 || child->pty_master >= 0 || child->found != NULL
            || child->devnull >= 0)
        return -EINVAL;                 /* a plan bug: ck-init would not have it */
    ck_copy_plan(&count, rest, nrest, sync_fd);
    size = (count.at + 4095) & ~(size_t)4095;
    plan = (int)ck_sys(SYS_memfd_create, "containerkit-plan", MFD_CLOEXEC | MFD_ALLOW_SEALING,
                       0, 0, 0);
    if (plan < 0)
        return plan;
    rc = (int)ck_sys(SYS_ftruncate, plan, size, 0, 0, 0);
    if (rc < 0)
        goto out;
    base = ck_raw_syscall6(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE, MAP_SHARED,
                           plan, 0);
    if (base < 0 && base > -4096) {
        rc = (int)base;
        goto out;
    }
    cur.base = (char *)base;
    cur.at = 0;
    ck_copy_plan(&cur, rest, nrest, sync_fd);
    /* the shared-memory child's mm is the caller's: leave no mapping behind in it */
    ck_sys(SYS_munmap, base, size, 0, 0, 0);
    /* fixed for good: ck-init maps it privately, and a process that gets hold of it
     * (/proc/<pid>/map_files, with CAP_SYS_ADMIN) must not rewrite the ops it has not
     * read yet (a filter, a mask, a path) */
    rc = (int)ck_sys(SYS_fcntl, plan, F_ADD_SEALS,
                     F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, 0, 0);
    if (rc < 0)
        goto out;
    for (k = 0; k < op->nids; k++)
        if ((rc = (int)ck_sys(SYS_fcntl, op->ids[k], F_SETFD, 0, 0, 0)) < 0)
            goto out;
    if ((rc = (int)ck_sys(SYS_fcntl, plan, F_SETFD, 0, 0, 0)) < 0)
        goto out;
    fd_text[ck_append_uint(fd_text, 0, sizeof(fd_text) - 1, (unsigned long long)plan)] = 0;
    base_text[ck_append_uint(base_text, 0, sizeof(base_text) - 1,
                             (unsigned long long)base)] = 0;
    argv[0] = CK_INIT_ARGV0;
    argv[1] = fd_text;
    argv[2] = base_text;
    argv[3] = NULL;
    rc = (int)ck_sys(SYS_execveat, (int)op->i[0], "", argv, envp, AT_EMPTY_PATH);
out:
    ck_close(plan);
    return rc;
}


static int ck_run_op(const struct ck_op *op, struct ck_child *child)
{
    const char *const *s = op->s;
    const long long *i = op->i;
    int rc;

    switch (op->code) {
    case CK_OP_RESET_SIGNALS:  return ck_reset_signals();
    case CK_OP_STDIO:          return ck_stdio(i);
    case CK_OP_BECOME_ROOT:    return ck_become_root();
    case CK_OP_FORK_INIT:      return ck_fork_init((unsigned long long)i[0], (int)i[1]);
    case CK_OP_SETNS:          return (int)ck_sys(SYS_setns, (int)i[0], (int)i[1], 0, 0, 0);
    case CK_OP_CLOSE_FDS:      return ck_close_fds(op->ids, op->nids);
    case CK_OP_UNSHARE:        return (int)ck_sys(SYS_unshare, (int)i[0], 0, 0, 0, 0);
    case CK_OP_WRITE_FILE:     return ck_write_proc((int)i[0], s[0], s[1]);
    case CK_OP_SETHOSTNAME:    return (int)ck_sys(SYS_sethostname, s[0], strlen(s[0]), 0, 0, 0);
    case CK_OP_SETDOMAINNAME:
        return (int)ck_sys(SYS_setdomainname, s[0], strlen(s[0]), 0, 0, 0);
    case CK_OP_LOOPBACK_UP:    return ck_loopback_up();
    case CK_OP_MOUNT:
        return ck_mount(s[0], s[1], s[2], (unsigned long)i[0], s[3], (unsigned long)i[1]);
    case CK_OP_PIVOT_ROOT:
        rc = ck_pivot_root(s[0]);
        return rc < 0 || child->rootfd < 0 ? rc : ck_open_root(child, "/");
    case CK_OP_CHDIR:          return ck_chdir_at(child, s[0]);
    case CK_OP_RLIMIT:         return ck_setrlimit((int)i[0], i[1], i[2]);
    case CK_OP_CAPBSET_DROP:   return ck_capbset_drop((unsigned long long)i[0]);
    case CK_OP_SET_USER:
        return ck_set_user((uid_t)i[0], (gid_t)i[1], i[2] != 0, i[3] != 0, op->ids,
                           op->nids);
    case CK_OP_CAPS:
        return ck_caps((unsigned long long)i[0], (unsigned long long)i[1],
                       (unsigned long long)i[2], (unsigned long long)i[3]);
    case CK_OP_NO_NEW_PRIVS:   return ck_prctl(PR_SET_NO_NEW_PRIVS, 1, 0);
    case CK_OP_CLOEXEC_FROM:
        return ck_close_range((unsigned int)i[0], ~0U, CLOSE_RANGE_CLOEXEC);
    case CK_OP_FIND_EXEC:      return ck_find_exec(op->argv, &child->found);
    case CK_OP_CREATED:        return ck_created((int)i[0], (int)i[1]);
    case CK_OP_EXECVE:         return ck_execve(child->found, op->argv, op->envp, (mode_t)i[0]);
    case CK_OP_SECCOMP:
        return ck_seccomp((unsigned int)i[0], op->ids, op->nids, (int)i[1]);
    case CK_OP_PERSONALITY:
        return (int)ck_sys(SYS_personality, (unsigned long)i[0], 0, 0, 0, 0);
    case CK_OP_IOPRIO:         /* IOPRIO_WHO_PROCESS, this process */
        return (int)ck_sys(SYS_ioprio_set, 1, 0, (int)i[0], 0, 0);
    case CK_OP_SCHED:          return ck_sched(i, op->ids, op->nids);
    case CK_OP_KEYRING:        return ck_keyring(s[0], (unsigned int)i[0]);
    case CK_OP_PTY:
        return ck_pty(child, s[0], (unsigned short)i[0], (unsigned short)i[1], i[2]);
    case CK_OP_CONSOLE:        return ck_console(child, s[0]);
    case CK_OP_SEND_PTY:       return ck_send_pty(child, (int)i[0]);
    case CK_OP_SETCTTY:        return ck_setctty(child);
    case CK_OP_INHERIT_FDS:    return ck_inherit_fds((int)i[0], (int)i[1]);
    case CK_OP_SETSID:         return (int)ck_sys(SYS_setsid, 0, 0, 0, 0, 0);
    case CK_OP_SYNC:           return ck_sync((int)i[0], s[0], s[1]);
    case CK_OP_HOOK:           return ck_hook(op, child);
    case CK_OP_MEMPOLICY:      return ck_mempolicy((int)i[0], op->ids, op->nids);
    case CK_OP_OPEN_ROOT:      return ck_open_root(child, s[0]);
    case CK_OP_MOUNT_AT:       return ck_mount_at(op, child);
    case CK_OP_MKNOD_AT:
        return ck_mknod_at(child, s[0], s[1], (mode_t)i[0], (dev_t)i[1], (uid_t)i[2],
                           (gid_t)i[3]);
    case CK_OP_SYMLINK_AT:     return ck_symlink_at(child, s[0], s[1], s[2]);
    case CK_OP_MASK_AT:        return ck_mask_at(child, s[0]);
    case CK_OP_READONLY_AT:    return ck_readonly_at(child, s[0], i[0] != 0);
    case CK_OP_MOVE_ROOT:      return ck_move_root(child, s[0], op->argv);
    case CK_OP_PRCTL:          /* e.g. PR_SET_DUMPABLE 0 before an exec joins a container */
        return ck_prctl((int)i[0], (unsigned long)i[1], (unsigned long)i[2]);
    case CK_OP_AFFINITY:       return ck_affinity(op->ids, op->nids);
    case CK_OP_STDIO_OWNER:    return ck_stdio_owner((unsigned int)i[0]);
    }
    return -EINVAL;                     /* an opcode this C does not know */
}

static void __attribute__((noreturn))
ck_child_main(const struct ck_op *ops, int nops, int sync_fd)
{
    struct ck_child child;
    char detail[1024];
    size_t n;
    int k, rc;

    memset(&child, 0, sizeof(child));
    child.rootfd = -1;
    child.pty_master = child.pty_peer = child.devnull = -1;
    for (k = 0; k < nops; k++) {
        rc = ops[k].code == CK_OP_REEXEC
             ? ck_reexec(&ops[k], ops + k + 1, nops - k - 1, sync_fd, &child)
             : ck_run_op(&ops[k], &child);
        if (rc < 0) {
            int extra = ops[k].code == CK_OP_HOOK ? (int)ops[k].i[2] : -1;

            if (rc == -CK_EHOOK || child.why[0] == '\0' || ops[k].detail == NULL)
                ck_fail(sync_fd, extra, ops[k].name, -rc,
                        rc == -CK_EHOOK ? child.report : ops[k].detail);
            n = ck_append(detail, 0, sizeof(detail) - 1, ops[k].detail, strlen(ops[k].detail));
            n = ck_append(detail, n, sizeof(detail) - 1, " (", 2);
            n = ck_append(detail, n, sizeof(detail) - 1, child.why, strlen(child.why));
            n = ck_append(detail, n, sizeof(detail) - 1, ")", 1);
            detail[n] = '\0';
            ck_fail(sync_fd, extra, ops[k].name, -rc, detail);
        }
    }
    ck_fail(sync_fd, -1, "exec", ENOEXEC, "plan ended without execve");
}

