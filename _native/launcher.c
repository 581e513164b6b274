/* containerkit's native front end: `state`, `start`, `kill` and `delete` in C, the rest
 * in Python.
 *
 * podman and the containerd shim poll `state` often, and call `start`, `kill` and
 * `delete` for every container; CPython's start alone costs more than runc's whole
 * `state`. This program answers the happy paths of the four from <root>/<id>/state.fast, the plain-text companion
 * containerkit/state.py writes beside state.json at every save (the pre-rendered document
 * split around pid and status, plus what the live status needs and the hooks recorded).
 * ANY other argv, and any error or unexpected condition, execv()s the Python launcher
 * CK_FALLBACK with the same argv, so every message and every other verb stays Python's.
 * Built by ./dev setup (gcc -O2, no dependencies).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CK_FALLBACK
#error "build with -DCK_FALLBACK='\"/path/to/containerkit-py\"'"
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define MAX_FAST (1 << 20)

static char **g_argv;
static int g_log_fd = -1;       /* --log, open for appending */
static int g_log_json;          /* --log-format json */

static void fallback(void) __attribute__((noreturn));
static void fallback(void)
{
    execv(CK_FALLBACK, g_argv);
    fprintf(stderr, "containerkit: cannot run %s: %s\n", CK_FALLBACK, strerror(errno));
    _exit(1);
}

/* json.dumps of the string s into out (at least 6 * strlen(s) + 3 bytes): '"', '\\' and
 * control characters escaped as Python's json does; with ascii (ensure_ascii) every
 * other non-ASCII character too, as \uXXXX (a surrogate pair above U+FFFF), and a byte
 * that is not UTF-8 as the \udcXX that Python's surrogateescape decoding gives it. */
static void json_string(const char *s, int ascii, char *out)
{
    const unsigned char *p = (const unsigned char *)s;
    char *o = out;
    *o++ = '"';
    while (*p) {
        unsigned c = *p, cp = 0;
        int n = 0;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            const char *short_form = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (short_form) {
                memcpy(o, short_form, 2);
                o += 2;
            } else {
                o += sprintf(o, "\\u%04x", c);
            }
        } else if (c < 0x7f || !ascii) {     /* ensure_ascii escapes DEL too */
            *o++ = (char)c;
        } else if (c == 0x7f) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
            cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
            for (int k = 1; k < n; k++) {
                if ((p[k] & 0xc0) != 0x80) {
                    n = 0;
                    break;
                }
                cp = (cp << 6) | (p[k] & 0x3f);
            }
            if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
                    || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                n = 0;
            if (n == 0)
                cp = 0xdc00 | c;                /* surrogateescape: this byte alone */
            if (cp > 0xffff) {
                cp -= 0x10000;
                o += sprintf(o, "\\u%04x\\u%04x", 0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
            } else {
                o += sprintf(o, "\\u%04x", cp);
            }
            p += n ? n : 1;
            continue;
        }
        p++;
    }
    *o++ = '"';
    *o = '\0';
}

/* The length of the UTF-8 sequence at p if it is a character str.split() takes for
 * whitespace (ASCII \t-\r, space, \x1c-\x1f; U+0085, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000), else 0. */
static size_t unicode_space(const unsigned char *p)
{
    if (*p == ' ' || (*p >= '\t' && *p <= '\r') || (*p >= 0x1c && *p <= 0x1f))
        return 1;
    if (p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
        return 2;
    if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80)
            || (p[0] == 0xe2 && p[1] == 0x80 && ((p[2] >= 0x80 && p[2] <= 0x8a)
                                               || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
            || (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f)
            || (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80))
        return 3;
    return 0;
}

/* Log.error of containerkit/cli/main.py, for the few failures C meets once it changed
 * something (it can no longer hand over to Python): "containerkit: PATH: reason" on
 * stderr and, with --log, the record in runc's text or JSON format. ENOENT and EACCES
 * read as Go's errors, as error_message has them (which also rewrites those two texts
 * inside the path itself; this does not). Returns the exit status, 1. */
static int fail(const char *path, int err)
{
    static char msg[8400], quoted[6 * sizeof msg + 3], record[sizeof quoted + 128];
    static char raw[sizeof msg];
    snprintf(raw, sizeof raw, "%s: %s", path, err == ENOENT ? "no such file or directory"
             : err == EACCES ? "permission denied" : strerror(err));
    /* error_message's " ".join(msg.split()): runs of whitespace become one space */
    size_t n = 0;
    for (const char *r = raw; *r; ) {
        size_t space = unicode_space((const unsigned char *)r);
        if (!space)
            msg[n++] = *r++;
        else {
            if (n && msg[n - 1] != ' ')
                msg[n++] = ' ';
            r += space;
        }
    }
    if (n && msg[n - 1] == ' ')
        n--;
    msg[n] = '\0';
    fprintf(stderr, "containerkit: %s\n", msg);
    if (g_log_fd >= 0) {
        char now[32];
        time_t t = time(NULL);
        struct tm tm;
        strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        json_string(msg, g_log_json, quoted);
        int len = g_log_json
            ? snprintf(record, sizeof record, "{\"level\": \"error\", \"msg\": %s, \"time\": \"%s\"}\n",
                       quoted, now)
            : snprintf(record, sizeof record, "time=\"%s\" level=error msg=%s\n", now, quoted);
        if (write(g_log_fd, record, (size_t)len) < 0) { /* stderr has it */ }
    }
    return 1;
}

/* runc's id rule as state.py check_id: ASCII, first alnum, then [A-Za-z0-9_.+-]. */
static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 1024)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '+' && c != '-')))
            return 0;
    }
    return 1;
}

/* Whether --root is already what Python makes of it (pathnames.abspath): absolute, and no
 * empty, "." or ".." component, no trailing slash. Python's ".." drops the component
 * before it, where the kernel's walk goes up from a symlink's target; and the paths in
 * messages must read the same. Any other root is Python's. */
static int clean_root(const char *path)
{
    if (path[0] != '/' || path[1] == '\0')
        return 0;
    for (const char *p = path; *p; p++) {
        if (*p != '/')
            continue;
        const char *c = p + 1;          /* the component after this slash */
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
    }
    return 1;
}

/* Whole file into a NUL-terminated malloc'd buffer; NULL on any error or if too big. */
static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(MAX_FAST + 1);
    size_t n = 0;
    while (buf) {
        ssize_t r = read(fd, buf + n, MAX_FAST - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && n + (size_t)r >= MAX_FAST)) {
            free(buf);
            buf = NULL;
        } else if (r == 0) {
            break;
        } else {
            n += (size_t)r;
        }
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* "key value\n" at *p: the value (NUL-terminated in place) or NULL. */
static char *field(char **p, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(*p, key, k) != 0 || (*p)[k] != ' ')
        return NULL;
    char *value = *p + k + 1, *nl = strchr(value, '\n');
    if (!nl)
        return NULL;
    *nl = '\0';
    *p = nl + 1;
    return value;
}

/* Decimal, no sign, no junk; -1 if not one. */
static long long number(const char *s)
{
    long long v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (1LL << 55))
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Process.attach + alive() of containerkit/process.py: a pidfd opens, field 22 of
 * /proc/<pid>/stat is the recorded start time, the state is not Z/X/gone, and the
 * pidfd is not readable (not exited). With `keep`, an alive init's pidfd is left in
 * *keep (the process it checked, whatever happens to the pid afterwards). */
static int init_alive_fd(long long pid, long long start_time, int *keep)
{
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (pidfd < 0)
        return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%lld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC), alive = 0;
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ') {
            close(pidfd);  /* Python would raise on a stat it cannot split: let it */
            fallback();
        }
        p += 2;
        char state = *p;
        /* fields after ')' start at field 3 (state); field 22 is the 20th of them */
        for (int i = 0; i < 19 && p; i++) {
            p = strchr(p, ' ');
            if (p)
                p++;
        }
        if (!p) {
            close(pidfd);
            fallback();
        }
        long long st = 0;
        for (; *p >= '0' && *p <= '9'; p++)
            st = st * 10 + (*p - '0');
        if (st == start_time && state != 'Z' && state != 'X') {
            struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
            alive = poll(&pfd, 1, 0) == 0;
        }
    }
    if (alive && keep)
        *keep = pidfd;
    else
        close(pidfd);
    return alive;
}

static int frozen(const char *cgroup)
{
    char path[4200], c = 0;
    if (snprintf(path, sizeof path, "%s/cgroup.freeze", cgroup) >= (int)sizeof path)
        fallback();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, &c, 1);
    close(fd);
    return n == 1 && c == '1';
}

static int write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(1, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* state.fast of the container in `dir`, checked against its state.json. */
struct fast {
    char *buf, *body;       /* the file; the pre-rendered document after the fields */
    long long pid, start_time, head, mid, tail;
    char *status, *cgroup, *hooks, *graph;
};

static int load_fast(const char *dir, struct fast *f)
{
    char path[8300];
    snprintf(path, sizeof path, "%s/state.fast", dir);
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf)
        return -1;
    char *p = buf;
    if (strncmp(p, "ckfast 2\n", 9)) {
        free(buf);
        return -1;
    }
    p += 9;
    long long ino = number(field(&p, "json_ino"));
    long long msec = number(field(&p, "json_mtime_sec"));
    long long mnsec = number(field(&p, "json_mtime_nsec"));
    f->pid = number(field(&p, "pid"));
    f->start_time = number(field(&p, "start_time"));
    f->status = field(&p, "status");
    f->cgroup = field(&p, "cgroup");
    f->hooks = field(&p, "hooks");
    f->graph = field(&p, "graph");
    f->head = number(field(&p, "head"));
    f->mid = number(field(&p, "mid"));
    f->tail = number(field(&p, "tail"));
    if (ino < 0 || msec < 0 || mnsec < 0 || f->pid < 0 || f->start_time < 0 || !f->status
            || !*f->status
            || strspn(f->status, "abcdefghijklmnopqrstuvwxyz") != strlen(f->status)
            || !f->cgroup || !f->hooks || !f->graph || f->head < 0 || f->mid < 0 || f->tail < 0
            || *p++ != '\n' || (size_t)(p - buf) + f->head + f->mid + f->tail != len) {
        free(buf);
        return -1;
    }
    /* the companion describes this very state.json (written just before it): a save
     * interrupted between the two, or a delete under way, goes to Python */
    struct stat st;
    snprintf(path, sizeof path, "%s/state.json", dir);
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || (long long)st.st_ino != ino
            || (long long)st.st_mtim.tv_sec != msec || st.st_mtim.tv_nsec != mnsec) {
        free(buf);
        return -1;
    }
    f->buf = buf;
    f->body = p;
    return 0;
}

/* Container._live_status. With `pidfd`, an init found alive leaves its pidfd there (the
 * one to signal: checked once, for the status and the kill alike). */
static const char *live_status(const char *dir, const struct fast *f, int *pidfd)
{
    char path[8300];
    struct stat st;
    if (strcmp(f->status, "created") && strcmp(f->status, "running"))
        return f->status;
    snprintf(path, sizeof path, "%s/exec.fifo", dir);
    if (f->pid == 0 || !init_alive_fd(f->pid, f->start_time, pidfd))
        return "stopped";
    if (*f->cgroup && frozen(f->cgroup))
        return "paused";
    if (stat(path, &st) < 0)   /* os.path.exists: any error is "absent" */
        return "running";
    return f->status;
}

/* "a,b,c" names `name` */
static int has_item(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p; ) {
        const char *end = strchr(p, ',');
        size_t k = end ? (size_t)(end - p) : strlen(p);
        if (k == n && !strncmp(p, name, n))
            return 1;
        p += k + (end ? 1 : 0);
    }
    return 0;
}

/* StateDir's lock: the state dir open and flock'ed, and not deleted while we waited. */
static int lock_dir(const char *dir)
{
    int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (lock < 0 || flock(lock, LOCK_EX) < 0 || fstat(lock, &st) < 0 || st.st_nlink == 0)
        fallback();
    return lock;
}

static int do_state(const char *dir)
{
    struct fast f;
    if (load_fast(dir, &f) < 0)
        fallback();
    const char *live = live_status(dir, &f, NULL);
    int with_pid = !strcmp(live, "created") || !strcmp(live, "running")
        || !strcmp(live, "paused");
    char num[32];
    snprintf(num, sizeof num, "%lld", with_pid ? f.pid : 0);
    signal(SIGPIPE, SIG_IGN);   /* a gone reader: exit 1 quietly, as Python does */
    const char *p = f.body;
    if (write_all(p, (size_t)f.head) || write_all(num, strlen(num))
            || write_all(p + f.head, (size_t)f.mid) || write_all(live, strlen(live))
            || write_all(p + f.head + f.mid, (size_t)f.tail))
        return 1;
    return 0;
}

/* Container.start of a container another process created, when no hook runs: under the
 * state directory's lock, a created init is released by a byte in exec.fifo, which is
 * then removed (NativeDriver.start / sync.release). Every refusal is Python's: nothing
 * has happened before the write, and the lock's fd closes at the exec. */
static int do_start(const char *dir)
{
    lock_dir(dir);              /* held until exit (or the exec to Python) */
    struct fast f;
    if (load_fast(dir, &f) < 0 || strcmp(live_status(dir, &f, NULL), "created")
            || has_item(f.hooks, "startContainer") || has_item(f.hooks, "poststart"))
        fallback();
    char fifo[8300];
    snprintf(fifo, sizeof fifo, "%s/exec.fifo", dir);
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        fallback();
    ssize_t w;
    do
        w = write(fd, "0", 1);
    while (w < 0 && errno == EINTR);
    if (w != 1)
        fallback();     /* nothing written: the init still waits */
    close(fd);
    if (unlink(fifo) < 0)       /* (started: Python's message for the OSError) */
        return fail(fifo, errno);
    return 0;
}

/* cgroup.events says "populated 0" within 10 s (Cgroup._wait_empty: read again after
 * 1, 2, 4... ms too, the kernel delaying a notification that follows another within
 * 10 ms): 1, else 0. */
static int wait_empty(const char *cgroup)
{
    char path[4200], c[256];
    snprintf(path, sizeof path, "%s/cgroup.events", cgroup);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct timespec start, now;     /* monotonic, as Python's deadline */
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long pause = 1;; pause = pause < 100 ? pause * 2 : 100) {
        ssize_t n = pread(fd, c, sizeof c - 1, 0);
        if (n < 0)
            break;
        c[n] = '\0';
        if (strstr(c, "populated 0\n")) {
            close(fd);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms >= 10000)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLPRI};
        poll(&pfd, 1, (int)(10000 - ms < pause ? 10000 - ms : pause));
    }
    close(fd);
    return 0;
}

/* Container.delete of a container that needs nothing of Python's: stopped (or, with
 * --force, created or running: its init is killed, then all of its cgroup through
 * cgroup.kill, and the cgroup waited empty), no poststop hook, the bind graph driver
 * (nothing mounted), no linux.netDevices to move back. Under the state lock: the cgroup
 * goes (and containerkit/ when it was the last), then the state directory. A refusal
 * falls back before any change; after a kill, Python's delete --force finishes. */
static int do_delete(const char *dir, int force)
{
    int lock = lock_dir(dir);
    struct fast f;
    if (load_fast(dir, &f) < 0 || has_item(f.hooks, "poststop")
            || (*f.graph && strcmp(f.graph, "bind")))
        fallback();
    const char *live = live_status(dir, &f, NULL);
    int kill_first = strcmp(live, "stopped") != 0;
    if (kill_first && !(force && *f.cgroup && (!strcmp(live, "running")
                                               || !strcmp(live, "created"))))
        fallback();     /* paused, creating, not forced, no cgroup: Python's */
    /* only plain files (state, config, fifo, the cgroup link): no netdevices.json */
    /* (a duplicate that closes at the exec too: one left open would hold the lock
     * against the Python launcher we fall back to) */
    int dfd = fcntl(lock, F_DUPFD_CLOEXEC, 0);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d)
        fallback();
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!strcmp(e->d_name, "netdevices.json") || (e->d_type != DT_REG
                && e->d_type != DT_LNK && e->d_type != DT_FIFO))
            fallback();
    }
    char path[8300];
    if (kill_first) {           /* running or created: the init and the rest, by the cgroup */
        snprintf(path, sizeof path, "%s/cgroup.kill", f.cgroup);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "1", 1) != 1 || !wait_empty(f.cgroup))
            fallback();     /* (no cgroup.kill before Linux 5.14: Python signals each) */
        close(fd);
    }
    if (*f.cgroup) {
        /* the kernel refuses (EBUSY) while a process or a child cgroup is there: then
         * Python kills and waits; gone already (ENOENT) is fine */
        if (rmdir(f.cgroup) < 0 && errno != ENOENT)
            fallback();
        char *slash = strrchr(f.cgroup, '/');
        if (slash && slash - f.cgroup >= 13 && !strncmp(slash - 13, "/containerkit", 13)) {
            *slash = '\0';
            rmdir(f.cgroup);    /* another container may still live there */
        }
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")
                && unlinkat(lock, e->d_name, 0) < 0 && errno != ENOENT) {
            char path[8600];
            int err = errno;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            return fail(path, err);
        }
    }
    if (rmdir(dir) < 0 && errno != ENOENT)
        return fail(dir, errno);
    return 0;
}

/* parse_signal of containerkit/cli/lifecycle.py for the plain forms: 1..64, or a name of
 * this table with or without SIG, any case. Anything else (0, RTMIN+n, spaces...): -1,
 * for Python to parse or refuse. tests/unit checks the table against Python's signal. */
static const struct { const char *name; int number; } SIGNALS[] = {
    {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"ILL", 4}, {"TRAP", 5}, {"ABRT", 6}, {"BUS", 7},
    {"FPE", 8}, {"KILL", 9}, {"USR1", 10}, {"SEGV", 11}, {"USR2", 12}, {"PIPE", 13},
    {"ALRM", 14}, {"TERM", 15}, {"CHLD", 17}, {"CONT", 18}, {"STOP", 19}, {"TSTP", 20},
    {"TTIN", 21}, {"TTOU", 22}, {"URG", 23}, {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26},
    {"PROF", 27}, {"WINCH", 28}, {"IO", 29}, {"PWR", 30}, {"SYS", 31},
};

static int parse_signal(const char *text)
{
    if (text[0] >= '1' && text[0] <= '9') {
        int n = 0;
        for (const char *p = text; *p; p++) {
            if (*p < '0' || *p > '9' || p - text >= 2)
                return -1;
            n = n * 10 + (*p - '0');
        }
        return n <= 64 ? n : -1;
    }
    char up[16];
    size_t n = strlen(text);
    if (n >= sizeof up)
        return -1;
    for (size_t i = 0; i <= n; i++)
        up[i] = (text[i] >= 'a' && text[i] <= 'z') ? (char)(text[i] - 32) : text[i];
    const char *name = strncmp(up, "SIG", 3) ? up : up + 3;
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++)
        if (!strcmp(name, SIGNALS[i].name))
            return SIGNALS[i].number;
    return -1;
}

/* Container.signal without --all: the init of a created, running or paused container,
 * by a pidfd checked against its start time. Not running: Python's message. */
static int do_kill(const char *dir, int sig)
{
    struct fast f;
    int pidfd = -1;
    if (load_fast(dir, &f) < 0)
        fallback();
    const char *live = live_status(dir, &f, &pidfd);
    /* (no pidfd: a status live_status did not check; the signal then fails, EBADF) */
    if ((strcmp(live, "created") && strcmp(live, "running") && strcmp(live, "paused"))
            || syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        fallback();
    return 0;
}

int main(int argc, char **argv)
{
    g_argv = argv;
    const char *root = "/run/containerkit", *log = NULL;
    int i = 1;
    /* global flags that do not change the output; anything else goes to Python */
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        size_t name = eq ? (size_t)(eq - a) : strlen(a);
        const char **dest;
        if (name == 6 && !strncmp(a, "--root", 6))
            dest = &root;
        else if (name == 5 && !strncmp(a, "--log", 5))
            dest = &log;
        else if (name == 12 && !strncmp(a, "--log-format", 12))
            dest = NULL;
        else
            fallback();
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value)
            fallback();
        if (dest)
            *dest = value;
        else if (!strcmp(value, "json") || !strcmp(value, "text"))
            g_log_json = !strcmp(value, "json");
        else
            fallback();
    }
    /* `state ID`, `start ID`, `delete [--force|-f] ID`, `kill ID [SIGNAL]` */
    const char *verb = i < argc ? argv[i] : "";
    int force = 0, sig = 15;
    if (!strcmp(verb, "delete") && argc - i == 3
            && (!strcmp(argv[i + 1], "--force") || !strcmp(argv[i + 1], "-f"))) {
        force = 1;
        i++;
    }
    if (!strcmp(verb, "kill") && argc - i == 3) {
        if (argv[i + 1][0] == '-' || (sig = parse_signal(argv[i + 2])) < 0)
            fallback();
        argc--;
    }
    if (argc - i != 2 || (strcmp(verb, "state") && strcmp(verb, "start")
            && strcmp(verb, "delete") && strcmp(verb, "kill")) || !clean_root(root)
            || !valid_id(argv[i + 1]))
        fallback();
    if (log && (g_log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        fallback();     /* (the fd stays open until exit, as Python's does) */
    char dir[8192];
    if (snprintf(dir, sizeof dir, "%s/%s", root, argv[i + 1]) >= (int)sizeof dir)
        fallback();
    if (!strcmp(verb, "kill"))
        return do_kill(dir, sig);
    return !strcmp(verb, "state") ? do_state(dir) : !strcmp(verb, "start") ? do_start(dir)
        : do_delete(dir, force);
}
