#ifndef CKVM_H
#define CKVM_H
// The C side of the kvm engine: <linux/kvm.h>, non-variadic ioctl wrappers Swift can call, the
// ioctl request codes as constants (function-like _IO* macros do not import into Swift), accessors
// for the anonymous unions in `struct kvm_run`, the kick signal, and a minimal C benchmark loop.
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

// MARK: - ioctl wrappers (ioctl(2) is variadic, which Swift cannot call)

/// ioctl with an integer argument. Returns the ioctl's result, or -errno on failure.
int ckvm_ioctl(int fd, unsigned long request, unsigned long arg);
/// ioctl with a pointer argument. Returns the ioctl's result, or -errno on failure.
int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg);
/// KVM_RUN on `vcpu_fd`. Returns 0, or -errno (-EINTR when kicked).
int ckvm_run(int vcpu_fd);

// MARK: - request codes

static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_INTERRUPT = KVM_INTERRUPT;
static const unsigned long CKVM_TRANSLATE = KVM_TRANSLATE;
static const unsigned long CKVM_NMI = KVM_NMI;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;

// MARK: - capabilities and constants

static const int CKVM_API_VERSION = KVM_API_VERSION;
static const int CKVM_CAP_IRQCHIP = KVM_CAP_IRQCHIP;
static const int CKVM_CAP_USER_MEMORY = KVM_CAP_USER_MEMORY;
static const int CKVM_CAP_READONLY_MEM = KVM_CAP_READONLY_MEM;
static const int CKVM_CAP_IMMEDIATE_EXIT = KVM_CAP_IMMEDIATE_EXIT;
static const int CKVM_CAP_MAX_VCPUS = KVM_CAP_MAX_VCPUS;
static const int CKVM_CAP_NR_VCPUS = KVM_CAP_NR_VCPUS;
static const int CKVM_CAP_NR_MEMSLOTS = KVM_CAP_NR_MEMSLOTS;
static const int CKVM_CAP_PIT2 = KVM_CAP_PIT2;
static const int CKVM_CAP_EXT_CPUID = KVM_CAP_EXT_CPUID;
static const int CKVM_CAP_SET_TSS_ADDR = KVM_CAP_SET_TSS_ADDR;
static const int CKVM_CAP_SYNC_REGS = KVM_CAP_SYNC_REGS;
static const int CKVM_CAP_SET_IDENTITY_MAP_ADDR = KVM_CAP_SET_IDENTITY_MAP_ADDR;
static const int CKVM_CAP_HLT = KVM_CAP_HLT;
static const int CKVM_CAP_TSC_DEADLINE_TIMER = KVM_CAP_TSC_DEADLINE_TIMER;
static const int CKVM_CAP_X86_USER_SPACE_MSR = KVM_CAP_X86_USER_SPACE_MSR;
static const int CKVM_CAP_X86_MSR_FILTER = KVM_CAP_X86_MSR_FILTER;
static const uint32_t CKVM_MEM_READONLY = KVM_MEM_READONLY;

static const uint32_t CKVM_EXIT_UNKNOWN = KVM_EXIT_UNKNOWN;
static const uint32_t CKVM_EXIT_EXCEPTION = KVM_EXIT_EXCEPTION;
static const uint32_t CKVM_EXIT_IO = KVM_EXIT_IO;
static const uint32_t CKVM_EXIT_HYPERCALL = KVM_EXIT_HYPERCALL;
static const uint32_t CKVM_EXIT_DEBUG = KVM_EXIT_DEBUG;
static const uint32_t CKVM_EXIT_HLT = KVM_EXIT_HLT;
static const uint32_t CKVM_EXIT_MMIO = KVM_EXIT_MMIO;
static const uint32_t CKVM_EXIT_IRQ_WINDOW_OPEN = KVM_EXIT_IRQ_WINDOW_OPEN;
static const uint32_t CKVM_EXIT_SET_TPR = KVM_EXIT_SET_TPR;
static const uint32_t CKVM_EXIT_SHUTDOWN = KVM_EXIT_SHUTDOWN;
static const uint32_t CKVM_EXIT_FAIL_ENTRY = KVM_EXIT_FAIL_ENTRY;
static const uint32_t CKVM_EXIT_INTR = KVM_EXIT_INTR;
static const uint32_t CKVM_EXIT_INTERNAL_ERROR = KVM_EXIT_INTERNAL_ERROR;
static const uint32_t CKVM_EXIT_SYSTEM_EVENT = KVM_EXIT_SYSTEM_EVENT;
static const uint32_t CKVM_EXIT_X86_RDMSR = KVM_EXIT_X86_RDMSR;
static const uint32_t CKVM_EXIT_X86_WRMSR = KVM_EXIT_X86_WRMSR;
static const uint8_t CKVM_EXIT_IO_IN = KVM_EXIT_IO_IN;
static const uint8_t CKVM_EXIT_IO_OUT = KVM_EXIT_IO_OUT;

// MARK: - kvm_run accessors (the exit data lives in anonymous unions Swift cannot name)

/// The port-I/O exit: direction (KVM_EXIT_IO_IN/OUT), size, port, count and the offset of the data
/// area from the start of the kvm_run mapping.
struct ckvm_io_exit {
  uint8_t direction;
  uint8_t size;
  uint16_t port;
  uint32_t count;
  uint64_t data_offset;
};
static inline struct ckvm_io_exit ckvm_run_io(const struct kvm_run *run) {
  struct ckvm_io_exit e = {run->io.direction, run->io.size, run->io.port, run->io.count,
                           run->io.data_offset};
  return e;
}

/// The MMIO exit: guest-physical address, length, direction; data in `ckvm_run_mmio_data`.
struct ckvm_mmio_exit {
  uint64_t phys_addr;
  uint32_t len;
  uint8_t is_write;
};
static inline struct ckvm_mmio_exit ckvm_run_mmio(const struct kvm_run *run) {
  struct ckvm_mmio_exit e = {run->mmio.phys_addr, run->mmio.len, run->mmio.is_write};
  return e;
}
static inline uint8_t *ckvm_run_mmio_data(struct kvm_run *run) { return run->mmio.data; }

static inline uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run) {
  return run->fail_entry.hardware_entry_failure_reason;
}
static inline uint32_t ckvm_run_fail_entry_cpu(const struct kvm_run *run) { return run->fail_entry.cpu; }
static inline uint32_t ckvm_run_internal_suberror(const struct kvm_run *run) { return run->internal.suberror; }
static inline uint32_t ckvm_run_internal_ndata(const struct kvm_run *run) { return run->internal.ndata; }
static inline uint64_t ckvm_run_internal_data(const struct kvm_run *run, uint32_t i) {
  return i < 16 ? run->internal.data[i] : 0;
}
static inline uint32_t ckvm_run_exception(const struct kvm_run *run) { return run->ex.exception; }
static inline uint32_t ckvm_run_exception_error(const struct kvm_run *run) { return run->ex.error_code; }
/// Where the VMM writes a hypercall's result (KVM copies it to RAX on the next KVM_RUN).
static inline uint64_t *ckvm_run_hypercall_ret(struct kvm_run *run) { return &run->hypercall.ret; }
static inline uint32_t ckvm_run_system_event_type(const struct kvm_run *run) { return run->system_event.type; }

static inline uint32_t ckvm_run_exit_reason(const struct kvm_run *run) { return run->exit_reason; }

// MARK: - Synced state (KVM_CAP_SYNC_REGS): registers KVM copies into kvm_run at every exit and
// loads from it at the next KVM_RUN where marked dirty, instead of a vCPU ioctl each.

static const uint64_t CKVM_SYNC_X86_REGS = KVM_SYNC_X86_REGS;
static const uint64_t CKVM_SYNC_X86_SREGS = KVM_SYNC_X86_SREGS;
static const uint64_t CKVM_SYNC_X86_EVENTS = KVM_SYNC_X86_EVENTS;
static inline struct kvm_regs *ckvm_run_synced_regs(struct kvm_run *run) { return &run->s.regs.regs; }
static inline struct kvm_sregs *ckvm_run_synced_sregs(struct kvm_run *run) { return &run->s.regs.sregs; }
static inline struct kvm_vcpu_events *ckvm_run_synced_events(struct kvm_run *run) { return &run->s.regs.events; }
static inline void ckvm_run_set_valid_regs(struct kvm_run *run, uint64_t mask) { run->kvm_valid_regs = mask; }
static inline uint64_t ckvm_run_dirty_regs(const struct kvm_run *run) { return run->kvm_dirty_regs; }
static inline void ckvm_run_set_dirty_regs(struct kvm_run *run, uint64_t mask) { run->kvm_dirty_regs = mask; }
/// The MSR exits (KVM_EXIT_X86_RDMSR/WRMSR): the index, the data (RDMSR: where the answer goes),
/// and the error flag (non-zero: KVM injects #GP instead of completing the instruction).
static inline uint32_t ckvm_run_msr_index(const struct kvm_run *run) { return run->msr.index; }
static inline uint64_t *ckvm_run_msr_data(struct kvm_run *run) { return (uint64_t *)&run->msr.data; }
static inline void ckvm_run_msr_set_error(struct kvm_run *run, uint8_t error) { run->msr.error = error; }
static inline uint8_t ckvm_run_ready_for_interrupt_injection(const struct kvm_run *run) {
  return run->ready_for_interrupt_injection;
}
static inline uint8_t ckvm_run_if_flag(const struct kvm_run *run) { return run->if_flag; }
/// CR8 as of the last exit; without the in-kernel irqchip KVM loads the vCPU's CR8 from it at
/// every KVM_RUN (the local APIC's TPR lives in userspace then).
static inline uint64_t ckvm_run_cr8(const struct kvm_run *run) { return run->cr8; }
static inline void ckvm_run_set_cr8(struct kvm_run *run, uint64_t value) { run->cr8 = value; }
static inline void ckvm_run_set_request_interrupt_window(struct kvm_run *run, uint8_t value) {
  run->request_interrupt_window = value;
}

/// Writes `immediate_exit` (a kick that lands outside KVM_RUN makes the next KVM_RUN return EINTR).
static inline void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value) {
  __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST);
}

// MARK: - kick signal

/// Installs a no-op-but-for-immediate_exit handler for `signo` (without SA_RESTART), so a signal sent
/// to a vCPU thread makes KVM_RUN return EINTR. Idempotent. Returns 0 or -errno.
int ckvm_install_kick_handler(int signo);
/// The signal reserved for kicks: SIGRTMIN + 6, a real-time signal nobody sends from outside, so
/// SIGUSR1 and SIGUSR2 stay free for the user (they stop the VMM like SIGTERM).
int ckvm_kick_signal_number(void);
/// Binds `run` to the calling thread: the kick handler sets its `immediate_exit` so a signal that
/// arrives just before KVM_RUN is not lost; the kick signal is unblocked on this thread. Pass NULL
/// to unbind.
void ckvm_bind_thread_run(struct kvm_run *run);
/// Sends `signo` to thread `thread` (a pthread_t). Returns 0 or an errno.
int ckvm_signal_thread(unsigned long thread, int signo);
/// pthread_self() as an integer.
unsigned long ckvm_current_thread(void);

// MARK: - KVM_SET_MSRS / KVM_GET_MSRS / cpuid helpers (flexible array members)

/// Writes `count` MSRs. Returns the number written or -errno.
int ckvm_set_msrs(int vcpu_fd, uint32_t count, const uint32_t *indices, const uint64_t *values);
/// Reads `count` MSRs into `values`. Returns the number read or -errno.
int ckvm_get_msrs(int vcpu_fd, uint32_t count, const uint32_t *indices, uint64_t *values);
/// KVM_GET_SUPPORTED_CPUID into a malloc'd kvm_cpuid2 (free with free()); NULL and *error=errno on
/// failure.
struct kvm_cpuid2 *ckvm_get_supported_cpuid(int kvm_fd, int *error);
/// KVM_SET_CPUID2 with `count` entries. Returns 0 or -errno.
int ckvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid_entry2 *entries, uint32_t count);
/// Atomic load and store of a word shared between threads (the vCPU thread id for kicks).
static inline unsigned long ckvm_atomic_load(const unsigned long *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void ckvm_atomic_store(unsigned long *p, unsigned long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/// Pointer to entry `i` of a kvm_cpuid2.
static inline struct kvm_cpuid_entry2 *ckvm_cpuid_entry(struct kvm_cpuid2 *c, uint32_t i) { return &c->entries[i]; }

/// Makes RDMSR/WRMSR that KVM would fail (invalid value, unknown MSR, or denied by the filter)
/// exit to userspace (KVM_CAP_X86_USER_SPACE_MSR), and denies the `count` MSRs in `indices`
/// (at most 16; x2APIC MSRs cannot be filtered) with KVM_X86_SET_MSR_FILTER, so their accesses
/// exit too. Returns 0 or -errno.
int ckvm_trap_msrs(int vm_fd, const uint32_t *indices, uint32_t count);

/// With the in-kernel irqchip: programs the vCPU's local APIC for virtual-wire mode (LVT0 ExtINT,
/// LVT1 NMI, both unmasked) so the in-kernel PIC's interrupts reach the CPU before the guest sets
/// up its APIC, as on a PC after reset by the firmware. Returns 0 or -errno.
int ckvm_setup_lapic_virtual_wire(int vcpu_fd);

/// With the in-kernel irqchip, for a machine reset: returns the vCPU's local APIC to its RESET
/// state (ID and version kept; TPR, ISR, IRR, TMR, timer and ICR clear; DFR all ones; SVR 0xFF, so
/// software-disabled; every LVT masked), then programs virtual wire as at creation. Returns 0 or
/// -errno.
int ckvm_reset_lapic(int vcpu_fd);

/// `KVM_SET_MP_STATE`: 0 runnable, 2 INIT received (wait for SIPI). Returns 0 or -errno.
int ckvm_set_mp_state(int vcpu_fd, uint32_t state);

// MARK: - the C baseline benchmark

/// Result of `ckvm_bench_pio`.
struct ckvm_bench_result {
  /// 0 on success, else -errno of the failing step (`step` names it).
  int error;
  const char *step;
  /// OUT exits taken and the nanoseconds between the first KVM_RUN and the final exit.
  uint64_t exits;
  uint64_t nanoseconds;
};

/// The baseline for the port-I/O exit round trip: creates a VM with one memory slot and one vCPU
/// that runs `guest` (64-bit code loaded at `load_address`, entered at `entry` with the ring and
/// flags given) until it writes port 0xF4, counting the other OUT exits and timing them. The page
/// tables and segments are built here, the minimum to run 64-bit code; the vCPU gets KVM's
/// supported CPUID like Trivisor's.
struct ckvm_bench_result ckvm_bench_pio(const uint8_t *guest, size_t guest_length, uint64_t iterations,
                                        int user_mode);

/// Runs `code` (a function `uint64_t f(uint64_t)` in raw x86-64 bytes, System V ABI) natively on
/// the host with `argument`, from an executable mapping. Sets *ok to 0 if the mapping failed.
uint64_t ckvm_run_native(const uint8_t *code, size_t length, uint64_t argument, int *ok);

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t ckvm_now_ns(void);

#endif
