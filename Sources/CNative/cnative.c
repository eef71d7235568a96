// Native runner for the differential tester: runs random x86-64 code on the host CPU in a
// long-lived child process and reports the registers, flags, sandbox memory and any fault.
//
// Protocol: a MAP_SHARED page set holds the test and the result; one byte over a pipe starts a
// run, one byte back says it ended. The child places the code at CN_CODE_ADDR (RWX), the sandbox
// at CN_SANDBOX_ADDR, loads every register through a trampoline and jumps to the code. The code
// ends in INT3 (the rest of the page is INT3 too); SIGTRAP/SIGSEGV/SIGBUS/SIGFPE/SIGILL handlers
// (on an alternate stack, since RSP points into the sandbox) read the ucontext, including the
// hardware trap number and error code, and siglongjmp back to the loop.
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

// Register block read by the entry trampoline: rflags, rax rcx rdx rbx rbp rsi rdi r8..r15, rsp, rip.
#define CN_BLOCK_ADDR (CN_CODE_ADDR + 0xF00)

typedef struct {
  cn_test test;
  cn_result result;
} cn_shared;

#if defined(__linux__) && defined(__x86_64__)
// In the child: the runner's shared area (set right after fork).
static cn_shared *shared_area;

// --- child side -------------------------------------------------------------------------------

static sigjmp_buf child_return;

// The entry trampoline: loads every register from the block at CN_BLOCK_ADDR and jumps to the code.
extern void cn_enter_test(void) __attribute__((noreturn));
__asm__(".text\n"
        ".p2align 4\n"
        ".local cn_enter_test\n"
        ".type cn_enter_test, @function\n"
        "cn_enter_test:\n"
        "  movq $0x10000f00, %rsp\n"
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
        "  movq 0x10000f80, %rsp\n"
        "  jmpq *0x10000f88\n"
        ".size cn_enter_test, .-cn_enter_test\n");

static void child_signal(int signal_number, siginfo_t *info, void *context) {
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
  r->signal = signal_number;
  r->vector = (int32_t)g[REG_TRAPNO];
  r->error_code = (uint64_t)g[REG_ERR];
  r->fault_address = (uint64_t)g[REG_CR2];
  if (signal_number == SIGTRAP && r->vector == 3) {
    // INT3 is a trap: RIP is past it. Report the address of the INT3 itself.
    r->outcome = CN_OUTCOME_COMPLETED;
    r->final.rip -= 1;
  } else {
    r->outcome = CN_OUTCOME_FAULT;
  }
  siglongjmp(child_return, 1);
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
  action.sa_sigaction = child_signal;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  int signals[] = {SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    if (sigaction(signals[i], &action, NULL) != 0) _exit(93);
  }
  for (;;) {
    uint8_t command;
    ssize_t n = read(requests, &command, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) _exit(0);
    const cn_test *t = &shared_area->test;
    cn_result *r = &shared_area->result;
    memset(code, 0xCC, CN_CODE_SIZE);
    uint32_t length = t->code_length <= CN_CODE_MAX ? t->code_length : CN_CODE_MAX;
    memcpy(code, t->code, length);
    memcpy(sandbox, t->sandbox, CN_SANDBOX_SIZE);
    uint64_t *block = (uint64_t *)CN_BLOCK_ADDR;
    const uint64_t *gpr = t->initial.gpr;
    block[0] = t->initial.rflags & 0x0CD5;  // status flags and DF only: no TF, no AC
    block[1] = gpr[0];
    block[2] = gpr[1];
    block[3] = gpr[2];
    block[4] = gpr[3];
    block[5] = gpr[5];
    block[6] = gpr[6];
    block[7] = gpr[7];
    for (int i = 8; i < 16; i++) block[i] = gpr[i];
    block[16] = gpr[4];
    block[17] = CN_CODE_ADDR;
    memset(r, 0, offsetof(cn_result, sandbox));
    if (sigsetjmp(child_return, 1) == 0) {
      cn_enter_test();
    }
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

uint8_t *cn_test_sandbox(cn_test *test) { return test->sandbox; }
const uint8_t *cn_result_sandbox(const cn_result *result) { return result->sandbox; }

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
