/* An LD_PRELOAD shim that injects write-path faults into the real `ckptio` process, for
 * fault_test.cc. Only the atomic sink's temporary file is affected (a path whose name contains
 * ".ckptio-tmp-", or a descriptor of such a file or of an unnamed O_TMPFILE one), so stderr
 * and everything else behave normally.
 *
 * CKPTIO_FAULT selects the fault:
 *   enospc:N        the Nth write(2) to the temporary fails with ENOSPC (1-based)
 *   shortenospc:N   the Nth write writes half its bytes, the next one fails with ENOSPC
 *   short:K         every write writes at most K bytes (callers must loop)
 *   eintr           every other write fails with EINTR before writing anything
 *   fsync           fsync(2)/fdatasync(2) of the temporary fail with EIO
 *   rename          rename(2) of the temporary over the destination fails with EACCES
 *   notmpfile       open(2) with O_TMPFILE fails with EOPNOTSUPP, as on a file system
 *                   without unnamed temporaries
 * CKPTIO_FAULT_LOG, when set, names a file that receives "writes=<count>" at exit.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t (*real_write)(int, const void*, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char*, const char*);
static int (*real_open)(const char*, int, ...);
static int (*real_open64)(const char*, int, ...);
static long writes;
static char mode[32];
static long arg;

static int is_temp_path(const char* p) { return p && strstr(p, ".ckptio-tmp-") != NULL; }

static int is_temp_fd(int fd) {
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = 0;
  /* An unnamed O_TMPFILE file reads as "DIR/#INODE (deleted)". */
  const char* slash = strrchr(target, '/');
  const size_t len = (size_t)n, tail = sizeof " (deleted)" - 1;
  if (slash && slash[1] == '#' && len > tail && !strcmp(target + len - tail, " (deleted)")) return 1;
  return is_temp_path(target);
}

static void report(void) {
  const char* log = getenv("CKPTIO_FAULT_LOG");
  if (!log) return;
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  char buf[64];
  int n = snprintf(buf, sizeof buf, "writes=%ld\n", writes);
  real_write(fd, buf, (size_t)n);
  close(fd);
}

__attribute__((constructor)) static void init(void) {
  real_write = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  real_rename = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
  real_open = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, "open");
  real_open64 = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, "open64");
  const char* f = getenv("CKPTIO_FAULT");
  if (f) {
    const char* colon = strchr(f, ':');
    size_t len = colon ? (size_t)(colon - f) : strlen(f);
    if (len >= sizeof mode) len = sizeof mode - 1;
    memcpy(mode, f, len);
    mode[len] = 0;
    arg = colon ? atol(colon + 1) : 0;
  }
  atexit(report);
}

ssize_t write(int fd, const void* buf, size_t n) {
  if (!is_temp_fd(fd)) return real_write(fd, buf, n);
  long k = ++writes;
  if (!strcmp(mode, "enospc") && k == arg) {
    errno = ENOSPC;
    return -1;
  }
  if (!strcmp(mode, "shortenospc")) {
    if (k == arg && n > 1) return real_write(fd, buf, n / 2);
    if (k == arg + 1) {
      errno = ENOSPC;
      return -1;
    }
  }
  if (!strcmp(mode, "short") && arg > 0 && n > (size_t)arg) return real_write(fd, buf, (size_t)arg);
  if (!strcmp(mode, "eintr") && k % 2 == 1) {
    errno = EINTR;
    return -1;
  }
  return real_write(fd, buf, n);
}

int fsync(int fd) {
  if (!strcmp(mode, "fsync") && is_temp_fd(fd)) {
    errno = EIO;
    return -1;
  }
  return real_fsync(fd);
}

int fdatasync(int fd) {
  if (!strcmp(mode, "fsync") && is_temp_fd(fd)) {
    errno = EIO;
    return -1;
  }
  return real_fdatasync(fd);
}

int rename(const char* from, const char* to) {
  if (!strcmp(mode, "rename") && is_temp_path(from)) {
    errno = EACCES;
    return -1;
  }
  return real_rename(from, to);
}

static int open_with(int (*real)(const char*, int, ...), const char* path, int flags,
                     va_list ap) {
  if (!real) real = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, "open");  /* before init */
  mode_t m = 0;
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) m = (mode_t)va_arg(ap, int);
  if (!strcmp(mode, "notmpfile") && (flags & O_TMPFILE) == O_TMPFILE) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return real(path, flags, m);
}

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int fd = open_with(real_open, path, flags, ap);
  va_end(ap);
  return fd;
}

int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int fd = open_with(real_open64 ? real_open64 : real_open, path, flags, ap);
  va_end(ap);
  return fd;
}
