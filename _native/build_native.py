"""cffi builder for containerkit's one compiled module, ``containerkit._ck_native``.

Only what Python's ``os`` module lacks is here: clone3 (with the interpreter's fork
hooks), unshare, setns, pivot_root, mount, umount2, sethostname, setdomainname,
close_range, and two tiny helpers that must be C (signal reset before execve, loopback
up by ioctl). Everything else stays in Python. The module is built against the full
(non-limited) C API because ``ck_clone`` calls ``PyOS_BeforeFork`` and friends.
"""

from cffi import FFI

CDEF = """
long ck_clone(unsigned long long flags, int cgroup_fd, int *pidfd_out, int *into_cgroup_out);
int unshare(int flags);
int setns(int fd, int nstype);
int ck_pivot_root(const char *new_root, const char *put_old);
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);
int umount2(const char *target, int flags);
int sethostname(const char *name, size_t len);
int setdomainname(const char *name, size_t len);
int ck_close_range(unsigned int first, unsigned int last, unsigned int flags);
int ck_reset_signals(void);
int ck_sigdefault(int sig);
int ck_loopback_up(void);
int ck_setgroups(size_t n, const unsigned int *gids);
int ck_capset(unsigned long long effective, unsigned long long permitted,
              unsigned long long inheritable);
int ck_ambient_raise(int cap);
"""

SOURCE = r"""
#define _GNU_SOURCE
#include <Python.h>
#include <errno.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/sched.h>

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

struct ck_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
             set_tid, set_tid_size, cgroup;
};

/* Like os.fork(): hold the GIL and run the interpreter's fork hooks around the
 * clone, so a child is safe while other Python threads run. Falls back to clone(2)
 * (without CLONE_INTO_CGROUP: *into_cgroup_out tells the caller) when the kernel
 * lacks clone3. */
long ck_clone(unsigned long long flags, int cgroup_fd, int *pidfd_out, int *into_cgroup_out)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    struct ck_clone_args args;
    long pid;
    int saved;

    memset(&args, 0, sizeof(args));
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd_out;
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    *into_cgroup_out = cgroup_fd >= 0;
    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0 && (errno == ENOSYS || (errno == E2BIG && cgroup_fd >= 0))) {
        *into_cgroup_out = 0;
        pid = syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD | SIGCHLD), 0,
                      pidfd_out, 0, 0);
    }
    saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    errno = saved;
    return pid;
}

int ck_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int ck_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}

/* execve keeps ignored dispositions and the signal mask: give the container's
 * process the defaults (Python ignores SIGPIPE and SIGXFSZ, for one). SIGPIPE stays
 * ignored until just before execve (ck_sigdefault). */
int ck_reset_signals(void)
{
    sigset_t all;
    struct sigaction dfl;
    int sig;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        sigaction(sig, &dfl, NULL);   /* EINVAL for the libc-reserved ones: fine */
    }
    /* until execve, a write to a closed sync socket must fail with EPIPE, not kill */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&all);
    return sigprocmask(SIG_SETMASK, &all, NULL);
}

int ck_sigdefault(int sig)
{
    return signal(sig, SIG_DFL) == SIG_ERR ? -1 : 0;
}

/* Bring "lo" up in the current network namespace: two ioctls, no netlink. */
int ck_loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }

    {
        int e = errno;
        close(fd);
        errno = e;
    }
    return rc;
}

int ck_setgroups(size_t n, const unsigned int *gids)
{
    return setgroups(n, (const gid_t *)gids);
}

/* capset(2) with exact set semantics (version 3: two 32-bit words per set). */
int ck_capset(unsigned long long effective, unsigned long long permitted,
              unsigned long long inheritable)
{
    struct { uint32_t version; int pid; } hdr = { 0x20080522, 0 };
    struct { uint32_t effective, permitted, inheritable; } data[2];
    data[0].effective = (uint32_t)effective;
    data[1].effective = (uint32_t)(effective >> 32);
    data[0].permitted = (uint32_t)permitted;
    data[1].permitted = (uint32_t)(permitted >> 32);
    data[0].inheritable = (uint32_t)inheritable;
    data[1].inheritable = (uint32_t)(inheritable >> 32);
    return (int)syscall(SYS_capset, &hdr, data);
}

int ck_ambient_raise(int cap)
{
    return prctl(47 /* PR_CAP_AMBIENT */, 2 /* PR_CAP_AMBIENT_RAISE */, cap, 0, 0);
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
