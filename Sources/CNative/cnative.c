// Native runner for the differential tester: runs random x86 code on the host CPU in a long-lived
// child process and reports the registers, flags, segment selectors, x87/SSE state (an FXSAVE64
// image), sandbox memory and any fault.
//
// Protocol: a MAP_SHARED page set holds the test and the result; one byte over a pipe starts a
// run, one byte back says it ended. The child places the code at CN_CODE_ADDR (RWX), the sandbox
// at CN_SANDBOX_ADDR, loads every register through a trampoline and jumps to the code: 64-bit
// code directly, compatibility-mode code (32- or 16-bit) by a far jump after loading the test's
// data and stack selectors, with the test's LDT installed through modify_ldt. The code ends in
// INT3 (the rest of the page is INT3 too); SIGTRAP/SIGSEGV/SIGBUS/SIGFPE/SIGILL handlers (on an
// alternate stack, since RSP points into the sandbox) read the ucontext, including the hardware
// trap number and error code, and siglongjmp back to the loop.
#define _GNU_SOURCE
#include "cnative.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#if defined(__linux__)
#include <asm/ldt.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>
#include <zlib.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

typedef struct {
  cn_test test;
  cn_result result;
} cn_shared;

_Static_assert(offsetof(cn_test, fx) % 16 == 0 && offsetof(cn_result, fx) % 16 == 0,
               "the FXSAVE images are 16-byte aligned");

#if defined(__linux__) && defined(__x86_64__)
// In the child: the runner's shared area (set right after fork).
static cn_shared *shared_area;

// --- child side -------------------------------------------------------------------------------

static sigjmp_buf child_return;

// The register block the entry trampolines read, in the child's own data (outside the 32-bit
// address space the tests can reach): rflags, rax rcx rdx rbx rbp rsi rdi r8..r15 (popped in
// that order), rsp, rip; then for compatibility mode the far pointer (offset32, CS), the stack
// pointer (ESP, SS) and DS ES FS GS.
typedef struct {
  uint64_t popped[16];
  uint64_t rsp;
  uint64_t rip;
  uint32_t entry_offset;
  uint16_t entry_cs;
  uint16_t pad0;
  uint32_t entry_esp;
  uint16_t entry_ss;
  uint16_t pad1;
  uint16_t data_segments[4];
} cn_block_layout;
_Static_assert(sizeof(cn_block_layout) == 0xA8, "the trampolines use fixed offsets into the block");
__attribute__((used, aligned(64))) static cn_block_layout cn_block;
// The test's FXSAVE64 image (MXCSR sanitized), which the trampolines load with FXRSTOR64 before
// the registers; in the child's own data like the block, and 16-byte aligned as FXRSTOR needs.
__attribute__((used, aligned(16))) static uint8_t cn_fx_image[CN_FX_SIZE];
// The MXCSR bits this CPU supports (MXCSR_MASK from FXSAVE; 0 there means 0xFFBF).
static uint32_t cn_mxcsr_mask = 0xFFBF;

// Filled by the signal entry stub before anything can reload them: DS ES FS GS as the test left
// them (the 64-bit sigcontext has CS and SS but not these).
__attribute__((used)) static uint16_t cn_live_segments[4];
// The child's own DS, ES, FS base and GS base, restored by the stub after a compatibility-mode
// test: the test may have loaded FS/GS with LDT selectors, and glibc reads its thread pointer
// through FS (siglongjmp's pointer guard, the stack protector).
__attribute__((used)) static uint16_t cn_own_ds, cn_own_es;
__attribute__((used)) static uint64_t cn_own_fs_base, cn_own_gs_base;
// Set while a compatibility-mode test runs; and whether WRFSBASE/WRGSBASE may be used (the
// kernel enables them for user space) instead of arch_prctl.
__attribute__((used)) static uint8_t cn_compat_active, cn_have_fsgsbase;

// The 64-bit entry trampoline: loads the x87/SSE state from cn_fx_image, every register from the
// block, and jumps to the code.
extern void cn_enter_test(void) __attribute__((noreturn));
// The compatibility-mode entry: the same x87/SSE state and registers, then DS ES FS GS, SS:ESP
// (LSS) and a far jump (m16:32) to CS:EIP. In 64-bit mode DS-relative operands ignore DS, so the
// block stays reachable after each load; a bad selector here would fault in the trampoline, so
// the generator only starts tests with loadable ones.
extern void cn_enter_compat(void) __attribute__((noreturn));
__asm__(".text\n"
        ".p2align 4\n"
        ".local cn_enter_test\n"
        ".type cn_enter_test, @function\n"
        "cn_enter_test:\n"
        "  fxrstor64 cn_fx_image(%rip)\n"
        "  leaq cn_block(%rip), %rsp\n"
        "  popfq\n"
        "  popq %rax\n"
        "  popq %rcx\n"
        "  popq %rdx\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  popq %rsi\n"
        "  popq %rdi\n"
        "  popq %r8\n"
        "  popq %r9\n"
        "  popq %r10\n"
        "  popq %r11\n"
        "  popq %r12\n"
        "  popq %r13\n"
        "  popq %r14\n"
        "  popq %r15\n"
        "  movq cn_block+0x80(%rip), %rsp\n"
        "  jmpq *cn_block+0x88(%rip)\n"
        ".size cn_enter_test, .-cn_enter_test\n"
        ".p2align 4\n"
        ".local cn_enter_compat\n"
        ".type cn_enter_compat, @function\n"
        "cn_enter_compat:\n"
        "  fxrstor64 cn_fx_image(%rip)\n"
        "  leaq cn_block(%rip), %rsp\n"
        "  popfq\n"
        "  popq %rax\n"
        "  popq %rcx\n"
        "  popq %rdx\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  popq %rsi\n"
        "  popq %rdi\n"
        "  popq %r8\n"
        "  popq %r9\n"
        "  popq %r10\n"
        "  popq %r11\n"
        "  popq %r12\n"
        "  popq %r13\n"
        "  popq %r14\n"
        "  popq %r15\n"
        "  movw cn_block+0xa0(%rip), %ds\n"
        "  movw cn_block+0xa2(%rip), %es\n"
        "  movw cn_block+0xa4(%rip), %fs\n"
        "  movw cn_block+0xa6(%rip), %gs\n"
        "  lssl cn_block+0x98(%rip), %esp\n"
        "  ljmpl *cn_block+0x90(%rip)\n"
        ".size cn_enter_compat, .-cn_enter_compat\n");

static void child_signal(int signal_number, siginfo_t *info, void *context);

// The signal handler's first instructions: record DS ES FS GS, then (after a compatibility-mode
// test) give the child back its own DS, ES and FS/GS bases before any C code runs, and continue
// in child_signal with the handler's arguments (RDI RSI RDX) intact. The kernel has already put
// CS and SS back to the 64-bit user selectors for the handler.
extern void cn_signal_entry(int, siginfo_t *, void *);
__asm__(".text\n"
        ".p2align 4\n"
        ".local cn_signal_entry\n"
        ".type cn_signal_entry, @function\n"
        "cn_signal_entry:\n"
        "  movw %ds, cn_live_segments+0(%rip)\n"
        "  movw %es, cn_live_segments+2(%rip)\n"
        "  movw %fs, cn_live_segments+4(%rip)\n"
        "  movw %gs, cn_live_segments+6(%rip)\n"
        "  cmpb $0, cn_compat_active(%rip)\n"
        "  je 2f\n"
        "  pushq %rdi\n"
        "  pushq %rsi\n"
        "  pushq %rdx\n"
        "  movw cn_own_ds(%rip), %ds\n"
        "  movw cn_own_es(%rip), %es\n"
        "  xorl %eax, %eax\n"
        "  movl %eax, %fs\n"
        "  movl %eax, %gs\n"
        "  cmpb $0, cn_have_fsgsbase(%rip)\n"
        "  je 1f\n"
        "  movq cn_own_fs_base(%rip), %rax\n"
        "  wrfsbase %rax\n"
        "  movq cn_own_gs_base(%rip), %rax\n"
        "  wrgsbase %rax\n"
        "  jmp 3f\n"
        "1:\n"
        "  movl $158, %eax\n"  // arch_prctl(ARCH_SET_FS, base)
        "  movl $0x1002, %edi\n"
        "  movq cn_own_fs_base(%rip), %rsi\n"
        "  syscall\n"
        "  movl $158, %eax\n"  // arch_prctl(ARCH_SET_GS, base)
        "  movl $0x1001, %edi\n"
        "  movq cn_own_gs_base(%rip), %rsi\n"
        "  syscall\n"
        "3:\n"
        "  popq %rdx\n"
        "  popq %rsi\n"
        "  popq %rdi\n"
        "2:\n"
        "  jmp child_signal\n"
        ".size cn_signal_entry, .-cn_signal_entry\n");

__attribute__((used)) static void child_signal(int signal_number, siginfo_t *info, void *context) {
  (void)info;
  ucontext_t *uc = (ucontext_t *)context;
  greg_t *g = uc->uc_mcontext.gregs;
  cn_result *r = &shared_area->result;
  r->final.gpr[0] = (uint64_t)g[REG_RAX];
  r->final.gpr[1] = (uint64_t)g[REG_RCX];
  r->final.gpr[2] = (uint64_t)g[REG_RDX];
  r->final.gpr[3] = (uint64_t)g[REG_RBX];
  r->final.gpr[4] = (uint64_t)g[REG_RSP];
  r->final.gpr[5] = (uint64_t)g[REG_RBP];
  r->final.gpr[6] = (uint64_t)g[REG_RSI];
  r->final.gpr[7] = (uint64_t)g[REG_RDI];
  r->final.gpr[8] = (uint64_t)g[REG_R8];
  r->final.gpr[9] = (uint64_t)g[REG_R9];
  r->final.gpr[10] = (uint64_t)g[REG_R10];
  r->final.gpr[11] = (uint64_t)g[REG_R11];
  r->final.gpr[12] = (uint64_t)g[REG_R12];
  r->final.gpr[13] = (uint64_t)g[REG_R13];
  r->final.gpr[14] = (uint64_t)g[REG_R14];
  r->final.gpr[15] = (uint64_t)g[REG_R15];
  r->final.rip = (uint64_t)g[REG_RIP];
  r->final.rflags = (uint64_t)g[REG_EFL];
  // REG_CSGSFS packs CS, GS, FS and (since Linux 4.6) SS in 16-bit fields; the kernel leaves GS
  // and FS at 0 there, so those come from the entry stub like DS and ES.
  uint64_t csgsfs = (uint64_t)g[REG_CSGSFS];
  r->final.segments[0] = cn_live_segments[1];
  r->final.segments[1] = (uint16_t)csgsfs;
  r->final.segments[2] = (uint16_t)(csgsfs >> 48);
  r->final.segments[3] = cn_live_segments[0];
  r->final.segments[4] = cn_live_segments[2];
  r->final.segments[5] = cn_live_segments[3];
  r->signal = signal_number;
  r->vector = (int32_t)g[REG_TRAPNO];
  r->error_code = (uint64_t)g[REG_ERR];
  r->fault_address = (uint64_t)g[REG_CR2];
  // The FP state the test left: the kernel saved it in the signal frame (with XSAVE its legacy
  // area), and fpregs points to that 512-byte FXSAVE64 layout.
  _Static_assert(sizeof(struct _libc_fpstate) == CN_FX_SIZE, "fpregs is an FXSAVE64 image");
  if (uc->uc_mcontext.fpregs != NULL) {
    memcpy(r->fx, uc->uc_mcontext.fpregs, CN_FX_SIZE);
  } else {
    memset(r->fx, 0, CN_FX_SIZE);
  }
  if (signal_number == SIGTRAP && r->vector == 3) {
    // INT3 is a trap: RIP is past it. Report the address of the INT3 itself.
    r->outcome = CN_OUTCOME_COMPLETED;
    r->final.rip -= 1;
  } else {
    r->outcome = CN_OUTCOME_FAULT;
  }
  siglongjmp(child_return, 1);
}

// The LDT as last installed (valid once ldt_installed is set).
static cn_ldt_entry installed_ldt[CN_LDT_ENTRIES];
static int ldt_installed;

// Installs the entries of `ldt` that differ from what is installed. Returns 0 or an errno.
static int install_ldt(const cn_ldt_entry *ldt) {
  for (int i = 0; i < CN_LDT_ENTRIES; i++) {
    if (ldt_installed && memcmp(&installed_ldt[i], &ldt[i], sizeof ldt[i]) == 0) continue;
    struct user_desc d;
    memset(&d, 0, sizeof d);
    d.entry_number = (unsigned)i;
    if (ldt[i].empty) {
      // modify_ldt's "empty" form: an all-zero descriptor.
      d.read_exec_only = 1;
      d.seg_not_present = 1;
    } else {
      d.base_addr = ldt[i].base;
      d.limit = ldt[i].limit & 0xFFFFF;
      d.seg_32bit = ldt[i].seg_32bit & 1;
      d.contents = ldt[i].contents & 3;
      d.read_exec_only = ldt[i].read_exec_only & 1;
      d.limit_in_pages = ldt[i].limit_in_pages & 1;
      d.seg_not_present = ldt[i].seg_not_present & 1;
      d.useable = ldt[i].useable & 1;
    }
    // Function 0x11: write one entry in the current format.
    if (syscall(SYS_modify_ldt, 0x11, &d, sizeof d) != 0) {
      ldt_installed = 0;
      return errno;
    }
    installed_ldt[i] = ldt[i];
  }
  ldt_installed = 1;
  return 0;
}

static int write_all(int fd, const void *buffer, size_t length) {
  const uint8_t *p = buffer;
  while (length > 0) {
    ssize_t n = write(fd, p, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

static void child_main(int requests, int replies) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  uint8_t *code = mmap((void *)CN_CODE_ADDR, CN_CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  uint8_t *sandbox = mmap((void *)CN_SANDBOX_ADDR, CN_SANDBOX_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code != (uint8_t *)CN_CODE_ADDR || sandbox != (uint8_t *)CN_SANDBOX_ADDR) _exit(90);
  size_t alternate_size = 1 << 16;
  void *alternate = mmap(NULL, alternate_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (alternate == MAP_FAILED) _exit(91);
  stack_t stack = {.ss_sp = alternate, .ss_size = alternate_size, .ss_flags = 0};
  if (sigaltstack(&stack, NULL) != 0) _exit(92);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = cn_signal_entry;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  int signals[] = {SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    if (sigaction(signals[i], &action, NULL) != 0) _exit(93);
  }
  __asm__ volatile("movw %%ds, %0\n movw %%es, %1" : "=m"(cn_own_ds), "=m"(cn_own_es));
  syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &cn_own_fs_base);
  syscall(SYS_arch_prctl, 0x1004 /* ARCH_GET_GS */, &cn_own_gs_base);
  cn_have_fsgsbase = (getauxval(AT_HWCAP2) & 2 /* HWCAP2_FSGSBASE */) != 0;
  // FXSAVE once for MXCSR_MASK (byte 28): the MXCSR bits FXRSTOR accepts.
  __asm__ volatile("fxsave64 %0" : "=m"(cn_fx_image));
  uint32_t mxcsr_mask;
  memcpy(&mxcsr_mask, cn_fx_image + 28, 4);
  if (mxcsr_mask != 0) cn_mxcsr_mask = mxcsr_mask;
  for (;;) {
    uint8_t command;
    ssize_t n = read(requests, &command, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) _exit(0);
    const cn_test *t = &shared_area->test;
    cn_result *r = &shared_area->result;
    memset(r, 0, offsetof(cn_result, sandbox));
    int compat = t->mode == CN_MODE_COMPAT;
    if (compat) {
      int e = install_ldt(t->ldt);
      if (e != 0) {
        r->outcome = CN_OUTCOME_SETUP_FAILED;
        r->signal = e;
        uint8_t done = 1;
        if (write_all(replies, &done, 1) != 0) _exit(0);
        continue;
      }
    }
    memset(code, 0xCC, CN_CODE_SIZE);
    uint32_t length = t->code_length <= CN_CODE_MAX ? t->code_length : CN_CODE_MAX;
    memcpy(code, t->code, length);
    memcpy(sandbox, t->sandbox, CN_SANDBOX_SIZE);
    memcpy(cn_fx_image, t->fx, CN_FX_SIZE);
    uint32_t mxcsr;
    memcpy(&mxcsr, cn_fx_image + 24, 4);
    mxcsr &= cn_mxcsr_mask;  // reserved bits would make FXRSTOR64 raise #GP in the trampoline
    memcpy(cn_fx_image + 24, &mxcsr, 4);
    const uint64_t *gpr = t->initial.gpr;
    cn_block.popped[0] = t->initial.rflags & 0x0CD5;  // status flags and DF only: no TF, no AC
    cn_block.popped[1] = gpr[0];
    cn_block.popped[2] = gpr[1];
    cn_block.popped[3] = gpr[2];
    cn_block.popped[4] = gpr[3];
    cn_block.popped[5] = gpr[5];
    cn_block.popped[6] = gpr[6];
    cn_block.popped[7] = gpr[7];
    for (int i = 8; i < 16; i++) cn_block.popped[i] = gpr[i];
    cn_block.rsp = gpr[4];
    cn_block.rip = CN_CODE_ADDR;
    cn_block.entry_offset = (uint32_t)t->initial.rip;
    cn_block.entry_cs = t->initial.segments[1];
    cn_block.entry_esp = (uint32_t)gpr[4];
    cn_block.entry_ss = t->initial.segments[2];
    cn_block.data_segments[0] = t->initial.segments[3];
    cn_block.data_segments[1] = t->initial.segments[0];
    cn_block.data_segments[2] = t->initial.segments[4];
    cn_block.data_segments[3] = t->initial.segments[5];
    cn_compat_active = (uint8_t)compat;
    if (sigsetjmp(child_return, 1) == 0) {
      if (compat) cn_enter_compat();
      cn_enter_test();
    }
    cn_compat_active = 0;
    // Back from the handler by siglongjmp, not sigreturn: the kernel gave the handler a clean FP
    // state, but reset it anyway so nothing of the test's control words reaches the child's code.
    static const uint32_t child_mxcsr = 0x1F80;
    __asm__ volatile("fninit\n ldmxcsr %0" : : "m"(child_mxcsr));
    memcpy(r->sandbox, sandbox, CN_SANDBOX_SIZE);
    uint8_t done = 1;
    if (write_all(replies, &done, 1) != 0) _exit(0);
  }
}

// --- parent side ------------------------------------------------------------------------------

struct cn_runner {
  cn_shared *area;
  pid_t child;
  int request_fd;
  int reply_fd;
};

static void stop_child(cn_runner *runner) {
  if (runner->child > 0) {
    kill(runner->child, SIGKILL);
    waitpid(runner->child, NULL, 0);
  }
  runner->child = -1;
  if (runner->request_fd >= 0) close(runner->request_fd);
  if (runner->reply_fd >= 0) close(runner->reply_fd);
  runner->request_fd = runner->reply_fd = -1;
}

static int start_child(cn_runner *runner) {
  if (runner->child > 0) return 0;
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return -errno;
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    int e = errno;
    close(to_child[0]);
    close(to_child[1]);
    return -e;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    return -e;
  }
  if (pid == 0) {
    shared_area = runner->area;
    close(to_child[1]);
    close(from_child[0]);
    child_main(to_child[0], from_child[1]);
    _exit(0);
  }
  close(to_child[0]);
  close(from_child[1]);
  runner->child = pid;
  runner->request_fd = to_child[1];
  runner->reply_fd = from_child[0];
  return 0;
}

cn_runner *cn_runner_create(int *error) {
  cn_runner *runner = calloc(1, sizeof *runner);
  if (runner == NULL) {
    *error = -ENOMEM;
    return NULL;
  }
  void *area = mmap(NULL, sizeof(cn_shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    *error = -errno;
    free(runner);
    return NULL;
  }
  runner->area = area;
  runner->child = -1;
  runner->request_fd = runner->reply_fd = -1;
  int status = start_child(runner);
  if (status != 0) {
    *error = status;
    munmap(area, sizeof(cn_shared));
    free(runner);
    return NULL;
  }
  *error = 0;
  return runner;
}

void cn_runner_destroy(cn_runner *runner) {
  if (runner == NULL) return;
  stop_child(runner);
  munmap(runner->area, sizeof(cn_shared));
  free(runner);
}

int cn_runner_run(cn_runner *runner, const cn_test *test, cn_result *result, int timeout_ms) {
  int status = start_child(runner);
  if (status != 0) return status;
  memcpy(&runner->area->test, test, sizeof *test);
  uint8_t go = 1;
  if (write_all(runner->request_fd, &go, 1) != 0) {
    stop_child(runner);
    memset(result, 0, sizeof *result);
    result->outcome = CN_OUTCOME_CRASHED;
    return 0;
  }
  struct pollfd p = {.fd = runner->reply_fd, .events = POLLIN};
  int ready;
  do {
    ready = poll(&p, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) {
    stop_child(runner);
    memset(result, 0, sizeof *result);
    result->outcome = CN_OUTCOME_TIMEOUT;
    return 0;
  }
  uint8_t done = 0;
  ssize_t n;
  do {
    n = read(runner->reply_fd, &done, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) {
    stop_child(runner);
    memset(result, 0, sizeof *result);
    result->outcome = CN_OUTCOME_CRASHED;
    return 0;
  }
  memcpy(result, &runner->area->result, sizeof *result);
  return 0;
}

#else
// The native runner needs Linux on x86-64 (ucontext layout, fixed mappings, the trampoline).
struct cn_runner {
  int unused;
};
cn_runner *cn_runner_create(int *error) {
  *error = -ENOSYS;
  return NULL;
}
void cn_runner_destroy(cn_runner *runner) { (void)runner; }
int cn_runner_run(cn_runner *runner, const cn_test *test, cn_result *result, int timeout_ms) {
  (void)runner;
  (void)test;
  (void)timeout_ms;
  memset(result, 0, sizeof *result);
  result->outcome = CN_OUTCOME_CRASHED;
  return -ENOSYS;
}
#endif

int cn_compat_mode_probe(char *reason, size_t size) {
  int error = 0;
  cn_runner *runner = cn_runner_create(&error);
  if (runner == NULL) {
    snprintf(reason, size, "the native runner cannot start (errno %d)", -error);
    return -1;
  }
  cn_test *test = calloc(1, sizeof *test);
  cn_result *result = calloc(1, sizeof *result);
  int status = -1;
  if (test != NULL && result != NULL) {
    // A NOP in a 16-bit code segment at the code page (LDT entry 0, selector 7), flat 0x2B data.
    test->mode = CN_MODE_COMPAT;
    test->code_length = 1;
    test->code[0] = 0x90;
    for (int i = 1; i < CN_LDT_ENTRIES; i++) test->ldt[i].empty = 1;
    test->ldt[0] = (cn_ldt_entry){.base = (uint32_t)CN_CODE_ADDR, .limit = 0xFFF, .contents = 2};
    uint16_t segments[6] = {0x2B, 0x07, 0x2B, 0x2B, 0, 0};
    memcpy(test->initial.segments, segments, sizeof segments);
    test->initial.gpr[4] = CN_SANDBOX_ADDR + 0x1000;
    test->initial.rflags = 2;
    // The FP state after FNINIT: FCW 0x037F, MXCSR 0x1F80 (all exceptions masked).
    test->fx[0] = 0x7F;
    test->fx[1] = 0x03;
    test->fx[24] = 0x80;
    test->fx[25] = 0x1F;
    int rc = cn_runner_run(runner, test, result, 2000);
    if (rc != 0) {
      snprintf(reason, size, "the native runner failed (errno %d)", -rc);
    } else if (result->outcome == CN_OUTCOME_SETUP_FAILED) {
      snprintf(reason, size, "modify_ldt cannot install a 16-bit segment (errno %d)", result->signal);
    } else if (result->outcome != CN_OUTCOME_COMPLETED || result->final.rip != 1) {
      snprintf(reason, size, "a NOP in a 16-bit LDT code segment did not run (outcome %d, vector %d)",
               result->outcome, result->vector);
    } else {
      status = 0;
    }
  } else {
    snprintf(reason, size, "out of memory");
  }
  free(test);
  free(result);
  cn_runner_destroy(runner);
  return status;
}

uint8_t *cn_test_sandbox(cn_test *test) { return test->sandbox; }
const uint8_t *cn_result_sandbox(const cn_result *result) { return result->sandbox; }
uint8_t *cn_test_fx(cn_test *test) { return test->fx; }
const uint8_t *cn_result_fx(const cn_result *result) { return result->fx; }

// --- utilities --------------------------------------------------------------------------------

void cn_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
  unsigned a = 0, b = 0, c = 0, d = 0;
#if defined(__x86_64__) || defined(__i386__)
  __cpuid_count(leaf, subleaf, a, b, c, d);
#else
  (void)leaf;
  (void)subleaf;
#endif
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}

int cn_gunzip(const uint8_t *input, size_t input_length, uint8_t **out, size_t *out_length) {
  *out = NULL;
  *out_length = 0;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 32) != Z_OK) return -1;
  size_t capacity = input_length * 4 + 4096;
  uint8_t *buffer = malloc(capacity);
  if (buffer == NULL) {
    inflateEnd(&z);
    return -2;
  }
  z.next_in = (Bytef *)input;
  z.avail_in = (uInt)input_length;
  size_t produced = 0;
  for (;;) {
    if (produced == capacity) {
      size_t bigger = capacity * 2;
      uint8_t *grown = realloc(buffer, bigger);
      if (grown == NULL) {
        free(buffer);
        inflateEnd(&z);
        return -2;
      }
      buffer = grown;
      capacity = bigger;
    }
    z.next_out = buffer + produced;
    z.avail_out = (uInt)(capacity - produced);
    int rc = inflate(&z, Z_NO_FLUSH);
    produced = capacity - z.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0)) {
      free(buffer);
      inflateEnd(&z);
      return -3;
    }
  }
  inflateEnd(&z);
  *out = buffer;
  *out_length = produced;
  return 0;
}

void cn_free(void *pointer) { free(pointer); }
