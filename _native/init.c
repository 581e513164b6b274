/* ck-init: the container init's op interpreter (child.c) as a program of its own.
 *
 * The child of ck_spawn starts on a copy (or a share) of the caller's process, whose
 * executable is the host's Python; at CK_OP_REEXEC it executes this program from a
 * sealed memfd (ck_init_image) and goes on here with the rest of its plan. Arguments:
 *
 *     argv = { "containerkit-init", <plan memfd>, <address the plan was copied at> }
 *
 * Anything else (e.g. the container's program is a script starting with
 * "#!/proc/self/exe", which the kernel would hand to this program while it is the
 * init's executable) is refused: it says so and exits 127, running nothing.
 *
 * On x86_64 this is freestanding: no libc, so nothing runs before the plan's next op
 * but what is below (child.c already makes every syscall itself); elsewhere it is a
 * static program with libc, and child.c uses libc's wrappers as a fork-like child does. */
#include "child.c"

static const char ck_refusal[] =
    "containerkit-init: this is containerkit's container init, not a program to run\n";

static long ck_parse_ulong(const char *s)
{
    long v = 0;

    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (LONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int ck_init_main(int argc, char **argv)
{
    struct stat st;
    struct ck_start *start;
    long fd, old, base;

    if (argc != 3 || argv[0] == NULL || strlen(argv[0]) != sizeof(CK_INIT_ARGV0) - 1
            || memcmp(argv[0], CK_INIT_ARGV0, sizeof(CK_INIT_ARGV0) - 1) != 0
            || (fd = ck_parse_ulong(argv[1])) < 3 || fd > INT_MAX
            || (old = ck_parse_ulong(argv[2])) <= 0) {
        ck_write(2, ck_refusal, sizeof(ck_refusal) - 1);
        return 127;
    }
    if (ck_sys(SYS_fstat, fd, &st, 0, 0, 0) < 0 || st.st_size < (off_t)sizeof(*start))
        return 126;
    base = ck_raw_syscall6(SYS_mmap, 0, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
                           fd, 0);
    if (base < 0 && base > -4096)
        return 126;
    ck_close((int)fd);
    start = (struct ck_start *)base;
    ck_rebase_plan(start, base - old);
    ck_child_main(start->ops, start->nops, start->sync_fd);
}

#if CK_SHARED_VM
/* What the compiler may call even in freestanding code (struct copies, the loops of
 * child.c); plain loops, as nothing here is hot. */
void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (d < s)
        while (n--)
            *d++ = *s++;
    else
        while (n--)
            d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;

    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    const char *p = s;

    while (*p)
        p++;
    return (size_t)(p - s);
}

char *strrchr(const char *s, int c)
{
    const char *last = NULL;

    for (;; s++) {
        if (*s == (char)c)
            last = s;
        if (*s == '\0')
            return (char *)last;
    }
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (*a == '\0')
            return 0;
    }
    return 0;
}

void __attribute__((noreturn, used)) ck_init_start(long *sp)
{
    ck_exit(ck_init_main((int)sp[0], (char **)(sp + 1)));
}

/* The kernel's entry: the stack holds argc, then argv. */
__asm__(".text\n"
        ".globl _start\n"
        ".type _start,@function\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call ck_init_start\n"
        "    hlt\n");
#else
int main(int argc, char **argv)
{
    return ck_init_main(argc, argv);
}
#endif
