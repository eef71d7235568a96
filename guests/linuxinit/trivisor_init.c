// trivisor-init: the first process of the initramfs images `trivisor run --rootfs` and
// `trivisor run --app` build (docs/linux.md). Freestanding: raw Linux system calls, no libc, so
// one small static binary works with any kernel and root filesystem.
//
// What it does, reading the files Trivisor packed under /trivisor:
//   1. mounts devtmpfs on /dev, proc on /proc and sysfs on /sys;
//   2. loads the kernel modules listed in /trivisor/modules (NUL-separated paths, in order);
//   3. /trivisor/mode "init": replaces itself with /trivisor/argv (NUL-separated), the root
//      filesystem's init, as PID 1;
//      /trivisor/mode "app": runs /trivisor/argv as a child on the console (its own session,
//      the console its controlling terminal, output without "\r\n" translation), reaps every
//      process until that child ends, syncs, and reports the child's status (exit code, or 128 +
//      signal) through the isa-debug-exit port 0xF4, which `trivisor run --app` turns into its
//      own exit status. If that port does nothing, it powers off.
// Build: guests/linuxinit/build.sh (regenerates Sources/Launcher/LinuxGuest/TrivisorInitImage.swift).

typedef unsigned long u64;
typedef long i64;

enum {
  SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_ioctl = 16, SYS_dup2 = 33,
  SYS_fork = 57, SYS_execve = 59, SYS_exit = 60, SYS_wait4 = 61, SYS_mkdir = 83,
  SYS_sync = 162, SYS_mount = 165, SYS_reboot = 169, SYS_iopl = 172, SYS_setsid = 112,
  SYS_finit_module = 313,
};

static i64 syscall6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f) {
  i64 ret;
  register i64 r10 __asm__("r10") = d;
  register i64 r8 __asm__("r8") = e;
  register i64 r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#define SYS(n, a, b, c) syscall6(n, (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)

static u64 length(const char *s) {
  u64 n = 0;
  while (s[n]) n++;
  return n;
}

static void say(const char *s) { SYS(SYS_write, 2, s, length(s)); }

static void say_number(i64 v) {
  char buf[24];
  int i = 23;
  int negative = v < 0;
  u64 u = negative ? (u64)(-v) : (u64)v;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u && i > 1);
  if (negative) buf[--i] = '-';
  say(buf + i);
}

static void fail(const char *what, const char *name, i64 err) {
  say("trivisor-init: ");
  say(what);
  say(name);
  say(" (errno ");
  say_number(-err);
  say(")\n");
}

// Reads a whole small file into buf (NUL-terminated); returns its length or -1.
static i64 slurp(const char *path, char *buf, u64 capacity) {
  i64 fd = SYS(SYS_open, path, 0 /* O_RDONLY */, 0);
  if (fd < 0) return -1;
  u64 used = 0;
  for (;;) {
    if (used + 1 >= capacity) break;
    i64 n = SYS(SYS_read, fd, buf + used, capacity - 1 - used);
    if (n <= 0) break;
    used += (u64)n;
  }
  SYS(SYS_close, fd, 0, 0);
  buf[used] = 0;
  return (i64)used;
}

// Splits NUL-separated records into list (at most max-1 entries, NULL-terminated).
static int split(char *buf, i64 len, char **list, int max) {
  int count = 0;
  i64 i = 0;
  while (i < len && count < max - 1) {
    list[count++] = buf + i;
    i += (i64)length(buf + i) + 1;
  }
  list[count] = 0;
  return count;
}

static void power_off(int status) {
  SYS(SYS_sync, 0, 0, 0);
  if (SYS(SYS_iopl, 3, 0, 0) == 0) {
    unsigned char value = (unsigned char)status;
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"((unsigned short)0xF4));
  }
  // LINUX_REBOOT_MAGIC1, MAGIC2, LINUX_REBOOT_CMD_POWER_OFF
  SYS(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc);
  for (;;) SYS(SYS_exit, status, 0, 0);
}

static char modules[65536];
static char arguments[65536];
static char mode[16];
static char *module_list[1024];
static char *argv_list[1024];
static char *environment[] = {
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=linux", 0,
};

// struct termios as the kernel's TCGETS/TCSETS see it (36 bytes): c_oflag is the second word.
struct kernel_termios {
  unsigned int iflag, oflag, cflag, lflag;
  unsigned char line, cc[19];
};

static void plain_output(int fd) {
  struct kernel_termios t;
  if (SYS(SYS_ioctl, fd, 0x5401 /* TCGETS */, &t) != 0) return;
  t.oflag &= ~1u;  // OPOST: no "\n" to "\r\n" translation, output reaches the host as written
  SYS(SYS_ioctl, fd, 0x5402 /* TCSETS */, &t);
}

int init_main(void) {
  SYS(SYS_mkdir, "/dev", 0755, 0);
  SYS(SYS_mkdir, "/proc", 0555, 0);
  SYS(SYS_mkdir, "/sys", 0555, 0);
  SYS(SYS_mkdir, "/tmp", 01777, 0);
  syscall6(SYS_mount, (i64) "devtmpfs", (i64) "/dev", (i64) "devtmpfs", 0, 0, 0);
  syscall6(SYS_mount, (i64) "proc", (i64) "/proc", (i64) "proc", 0, 0, 0);
  syscall6(SYS_mount, (i64) "sysfs", (i64) "/sys", (i64) "sysfs", 0, 0, 0);
  // The kernel opens /dev/console for init when the archive has it; otherwise do it now.
  if (SYS(SYS_write, 1, "", 0) < 0) {
    i64 fd = SYS(SYS_open, "/dev/console", 2 /* O_RDWR */, 0);
    if (fd >= 0) {
      for (int i = 0; i < 3; i++)
        if (fd != i) SYS(SYS_dup2, fd, i, 0);
      if (fd > 2) SYS(SYS_close, fd, 0, 0);
    }
  }

  i64 n = slurp("/trivisor/modules", modules, sizeof modules);
  if (n > 0) {
    int count = split(modules, n, module_list, 1024);
    for (int i = 0; i < count; i++) {
      i64 fd = SYS(SYS_open, module_list[i], 0x80000 /* O_RDONLY | O_CLOEXEC */, 0);
      if (fd < 0) {
        fail("cannot open module ", module_list[i], fd);
        continue;
      }
      i64 r = SYS(SYS_finit_module, fd, "", 0);
      if (r < 0 && r != -17 /* EEXIST */) fail("cannot load module ", module_list[i], r);
      SYS(SYS_close, fd, 0, 0);
    }
  }

  n = slurp("/trivisor/argv", arguments, sizeof arguments);
  if (n <= 0 || split(arguments, n, argv_list, 1024) == 0) {
    say("trivisor-init: /trivisor/argv is missing or empty\n");
    power_off(127);
  }
  slurp("/trivisor/mode", mode, sizeof mode);

  if (mode[0] != 'a') {  // "init": become the root filesystem's init
    i64 r = SYS(SYS_execve, argv_list[0], argv_list, environment);
    fail("cannot run ", argv_list[0], r);
    power_off(127);
  }

  plain_output(1);
  i64 child = SYS(SYS_fork, 0, 0, 0);
  if (child == 0) {
    SYS(SYS_setsid, 0, 0, 0);
    SYS(SYS_ioctl, 0, 0x540E /* TIOCSCTTY */, 1);
    i64 r = SYS(SYS_execve, argv_list[0], argv_list, environment);
    fail("cannot run ", argv_list[0], r);
    SYS(SYS_exit, 127, 0, 0);
  }
  if (child < 0) {
    fail("cannot fork for ", argv_list[0], child);
    power_off(127);
  }
  int status = 0;
  for (;;) {
    int raw = 0;
    i64 pid = syscall6(SYS_wait4, -1, (i64)&raw, 0, 0, 0, 0);
    if (pid == child) {
      status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f);
      break;
    }
    if (pid < 0 && pid != -4 /* EINTR */) break;
  }
  power_off(status);
  return 0;
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  and $-16, %rsp\n"
        "  call init_main\n"
        "  hlt\n");
