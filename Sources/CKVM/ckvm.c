// ioctl wrappers, the kick signal and the C baseline benchmark for the kvm engine.
#define _GNU_SOURCE
#include "ckvm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int ckvm_ioctl(int fd, unsigned long request, unsigned long arg) {
  int r = ioctl(fd, request, arg);
  return r < 0 ? -errno : r;
}

int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg) {
  int r = ioctl(fd, request, arg);
  return r < 0 ? -errno : r;
}

int ckvm_run(int vcpu_fd) {
  int r = ioctl(vcpu_fd, KVM_RUN, 0);
  return r < 0 ? -errno : r;
}

// MARK: - kick signal

static __thread struct kvm_run *bound_run;
static int kick_signal;

static void kick_handler(int signo) {
  (void)signo;
  struct kvm_run *run = bound_run;
  if (run) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

int ckvm_kick_signal_number(void) { return SIGRTMIN + 6; }

int ckvm_install_kick_handler(int signo) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = kick_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  if (sigaction(signo, &sa, NULL) < 0) return -errno;
  kick_signal = signo;
  return 0;
}

void ckvm_bind_thread_run(struct kvm_run *run) {
  bound_run = run;
  // Thread pools (libdispatch, Swift concurrency) block signals in their workers; the kick signal
  // must reach this thread while it is in KVM_RUN.
  if (run && kick_signal) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kick_signal);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  }
}

int ckvm_signal_thread(unsigned long thread, int signo) { return pthread_kill((pthread_t)thread, signo); }

unsigned long ckvm_current_thread(void) { return (unsigned long)pthread_self(); }

// MARK: - MSRs and CPUID

int ckvm_set_msrs(int vcpu_fd, uint32_t count, const uint32_t *indices, const uint64_t *values) {
  size_t size = sizeof(struct kvm_msrs) + count * sizeof(struct kvm_msr_entry);
  struct kvm_msrs *m = calloc(1, size);
  if (!m) return -ENOMEM;
  m->nmsrs = count;
  for (uint32_t i = 0; i < count; i++) {
    m->entries[i].index = indices[i];
    m->entries[i].data = values[i];
  }
  int r = ioctl(vcpu_fd, KVM_SET_MSRS, m);
  int e = errno;
  free(m);
  return r < 0 ? -e : r;
}

int ckvm_get_msrs(int vcpu_fd, uint32_t count, const uint32_t *indices, uint64_t *values) {
  size_t size = sizeof(struct kvm_msrs) + count * sizeof(struct kvm_msr_entry);
  struct kvm_msrs *m = calloc(1, size);
  if (!m) return -ENOMEM;
  m->nmsrs = count;
  for (uint32_t i = 0; i < count; i++) m->entries[i].index = indices[i];
  int r = ioctl(vcpu_fd, KVM_GET_MSRS, m);
  int e = errno;
  if (r > 0)
    for (int i = 0; i < r; i++) values[i] = m->entries[i].data;
  free(m);
  return r < 0 ? -e : r;
}

struct kvm_cpuid2 *ckvm_get_supported_cpuid(int kvm_fd, int *error) {
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    struct kvm_cpuid2 *c = calloc(1, sizeof(struct kvm_cpuid2) + n * sizeof(struct kvm_cpuid_entry2));
    if (!c) {
      *error = ENOMEM;
      return NULL;
    }
    c->nent = n;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) return c;
    int e = errno;
    free(c);
    if (e != E2BIG) {
      *error = e;
      return NULL;
    }
  }
  *error = E2BIG;
  return NULL;
}

int ckvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid_entry2 *entries, uint32_t count) {
  struct kvm_cpuid2 *c = calloc(1, sizeof(struct kvm_cpuid2) + count * sizeof(struct kvm_cpuid_entry2));
  if (!c) return -ENOMEM;
  c->nent = count;
  memcpy(c->entries, entries, count * sizeof(struct kvm_cpuid_entry2));
  int r = ioctl(vcpu_fd, KVM_SET_CPUID2, c);
  int e = errno;
  free(c);
  return r < 0 ? -e : r;
}

int ckvm_trap_msrs(int vm_fd, const uint32_t *indices, uint32_t count) {
  if (count > KVM_MSR_FILTER_MAX_RANGES) return -E2BIG;
  struct kvm_enable_cap cap;
  memset(&cap, 0, sizeof cap);
  cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
  cap.args[0] = KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;
  if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0) return -errno;
  // One range per MSR, its single bitmap bit clear: denied for reads and writes.
  static const uint8_t deny = 0;
  struct kvm_msr_filter filter;
  memset(&filter, 0, sizeof filter);
  filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
  for (uint32_t i = 0; i < count; i++) {
    filter.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    filter.ranges[i].nmsrs = 1;
    filter.ranges[i].base = indices[i];
    filter.ranges[i].bitmap = (uint8_t *)&deny;
  }
  if (count > 0 && ioctl(vm_fd, KVM_X86_SET_MSR_FILTER, &filter) < 0) return -errno;
  return 0;
}

int ckvm_setup_lapic_virtual_wire(int vcpu_fd) {
  struct kvm_lapic_state lapic;
  if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0) return -errno;
  enum { LVT0 = 0x350, LVT1 = 0x360, MASKED = 1u << 16, MODE_MASK = 7u << 8, EXTINT = 7u << 8, NMI = 4u << 8 };
  uint32_t lvt0, lvt1;
  memcpy(&lvt0, lapic.regs + LVT0, 4);
  memcpy(&lvt1, lapic.regs + LVT1, 4);
  lvt0 = (lvt0 & ~(MASKED | MODE_MASK)) | EXTINT;
  lvt1 = (lvt1 & ~(MASKED | MODE_MASK)) | NMI;
  memcpy(lapic.regs + LVT0, &lvt0, 4);
  memcpy(lapic.regs + LVT1, &lvt1, 4);
  if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0) return -errno;
  return 0;
}

int ckvm_reset_lapic(int vcpu_fd) {
  struct kvm_lapic_state lapic;
  if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0) return -errno;
  enum { ID = 0x20, VERSION = 0x30, DFR = 0xE0, SVR = 0xF0, LVT_FIRST = 0x320, LVT_LAST = 0x370 };
  uint32_t id, version;
  memcpy(&id, lapic.regs + ID, 4);
  memcpy(&version, lapic.regs + VERSION, 4);
  memset(lapic.regs, 0, sizeof lapic.regs);
  uint32_t ones = 0xFFFFFFFFu, svr = 0xFF, masked = 1u << 16;
  memcpy(lapic.regs + ID, &id, 4);
  memcpy(lapic.regs + VERSION, &version, 4);
  memcpy(lapic.regs + DFR, &ones, 4);
  memcpy(lapic.regs + SVR, &svr, 4);
  for (int lvt = LVT_FIRST; lvt <= LVT_LAST; lvt += 0x10) memcpy(lapic.regs + lvt, &masked, 4);
  if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0) return -errno;
  return ckvm_setup_lapic_virtual_wire(vcpu_fd);
}

int ckvm_set_mp_state(int vcpu_fd, uint32_t state) {
  struct kvm_mp_state mp = {.mp_state = state};
  return ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0 ? -errno : 0;
}

// MARK: - benchmark

uint64_t ckvm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Guest-physical layout of the benchmark VM (one 2 MiB slot at 0).
enum {
  BENCH_MEM = 2 << 20,
  BENCH_PML4 = 0x1000,
  BENCH_PDPT = 0x2000,
  BENCH_PD = 0x3000,
  BENCH_CODE = 0x10000,
  BENCH_STACK = 0x80000,
};

static struct kvm_segment bench_segment(uint16_t selector, uint8_t type, uint8_t dpl, int code) {
  struct kvm_segment s;
  memset(&s, 0, sizeof s);
  s.base = 0;
  s.limit = 0xFFFFFFFF;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = dpl;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.db = code ? 0 : 1;
  s.g = 1;
  return s;
}

#define BENCH_FAIL(name)     \
  do {                       \
    result.error = -errno;   \
    result.step = name;      \
    goto out;                \
  } while (0)

struct ckvm_bench_result ckvm_bench_pio(const uint8_t *guest, size_t guest_length, uint64_t iterations,
                                        int user_mode) {
  struct ckvm_bench_result result = {0, "", 0, 0};
  int kvm = -1, vm = -1, vcpu = -1;
  uint8_t *mem = MAP_FAILED;
  struct kvm_run *run = MAP_FAILED;
  int run_size = 0;

  if (guest_length > BENCH_STACK - BENCH_CODE) {
    errno = EINVAL;
    BENCH_FAIL("guest too large");
  }
  if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) BENCH_FAIL("open /dev/kvm");
  if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0) BENCH_FAIL("KVM_CREATE_VM");
  mem = mmap(NULL, BENCH_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) BENCH_FAIL("mmap guest memory");
  struct kvm_userspace_memory_region region = {0, 0, 0, BENCH_MEM, (uint64_t)(uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) BENCH_FAIL("KVM_SET_USER_MEMORY_REGION");
  if ((vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0) BENCH_FAIL("KVM_CREATE_VCPU");
  if ((run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) < 0) BENCH_FAIL("KVM_GET_VCPU_MMAP_SIZE");
  run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) BENCH_FAIL("mmap kvm_run");
  // The same CPUID as Trivisor's vCPUs (it decides which state KVM switches on entry and exit).
  int cpuid_error = 0;
  struct kvm_cpuid2 *cpuid = ckvm_get_supported_cpuid(kvm, &cpuid_error);
  if (!cpuid) {
    errno = cpuid_error;
    BENCH_FAIL("KVM_GET_SUPPORTED_CPUID");
  }
  int cpuid_result = ioctl(vcpu, KVM_SET_CPUID2, cpuid);
  free(cpuid);
  if (cpuid_result < 0) BENCH_FAIL("KVM_SET_CPUID2");

  // Identity map the first GiB with 2 MiB pages, user accessible.
  uint64_t *pml4 = (uint64_t *)(mem + BENCH_PML4), *pdpt = (uint64_t *)(mem + BENCH_PDPT);
  uint64_t *pd = (uint64_t *)(mem + BENCH_PD);
  pml4[0] = BENCH_PDPT | 7;
  pdpt[0] = BENCH_PD | 7;
  for (uint64_t i = 0; i < 512; i++) pd[i] = (i << 21) | 0x87;
  memcpy(mem + BENCH_CODE, guest, guest_length);

  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) BENCH_FAIL("KVM_GET_SREGS");
  uint8_t dpl = user_mode ? 3 : 0;
  sregs.cs = bench_segment(user_mode ? 0x1B : 0x08, 11, dpl, 1);
  sregs.ss = bench_segment(user_mode ? 0x23 : 0x10, 3, dpl, 0);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
  sregs.cr3 = BENCH_PML4;
  sregs.cr4 = 1u << 5;                                       // PAE
  sregs.cr0 = (1u << 0) | (1u << 1) | (1u << 4) | (1u << 5) | (1u << 16) | (1u << 31);  // PE MP ET NE WP PG
  sregs.efer = (1u << 8) | (1u << 10);                        // LME LMA
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) BENCH_FAIL("KVM_SET_SREGS");

  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = BENCH_CODE;
  regs.rsp = BENCH_STACK;
  regs.rcx = iterations;
  regs.rflags = 0x2 | (user_mode ? 0x3000 : 0);  // IOPL 3 lets ring 3 use IN/OUT
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) BENCH_FAIL("KVM_SET_REGS");

  uint64_t start = ckvm_now_ns();
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      BENCH_FAIL("KVM_RUN");
    }
    if (run->exit_reason != KVM_EXIT_IO) {
      errno = EIO;
      BENCH_FAIL("unexpected exit");
    }
    if (run->io.port == 0xF4) break;
    result.exits++;
  }
  result.nanoseconds = ckvm_now_ns() - start;

out:
  if (run != MAP_FAILED) munmap(run, (size_t)run_size);
  if (mem != MAP_FAILED) munmap(mem, BENCH_MEM);
  if (vcpu >= 0) close(vcpu);
  if (vm >= 0) close(vm);
  if (kvm >= 0) close(kvm);
  return result;
}

uint64_t ckvm_run_native(const uint8_t *code, size_t length, uint64_t argument, int *ok) {
  size_t size = (length + 4095) & ~(size_t)4095;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *ok = 0;
    return 0;
  }
  memcpy(p, code, length);
  if (mprotect(p, size, PROT_READ | PROT_EXEC) < 0) {
    munmap(p, size);
    *ok = 0;
    return 0;
  }
  uint64_t (*f)(uint64_t) = (uint64_t (*)(uint64_t))p;
  uint64_t r = f(argument);
  munmap(p, size);
  *ok = 1;
  return r;
}
