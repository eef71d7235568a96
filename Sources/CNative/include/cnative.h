#ifndef CNATIVE_H
#define CNATIVE_H

#include <stddef.h>
#include <stdint.h>

/// Fixed host linear addresses used by the native runner's child process. The CPU model maps the
/// same addresses so both see identical pointers.
#define CN_CODE_ADDR 0x10000000ULL
/// Bytes of test code the runner accepts; the rest of the code page is filled with INT3.
#define CN_CODE_MAX 0xE00
/// Size of the code page (the register block used by the entry trampoline lives past CN_CODE_MAX).
#define CN_CODE_SIZE 0x1000
/// The sandbox: readable and writable data, and the stack. Unmapped guard pages surround it.
#define CN_SANDBOX_ADDR 0x10002000ULL
#define CN_SANDBOX_SIZE 0x2000

/// Register file in x86 encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15, then rip, rflags.
typedef struct {
  uint64_t gpr[16];
  uint64_t rip;
  uint64_t rflags;
} cn_regs;

/// Outcome of one native run.
typedef enum {
  /// The code ran to its end (the INT3 after it, or any INT3 in the padding).
  CN_OUTCOME_COMPLETED = 0,
  /// The code raised a CPU exception; `vector`, `error_code`, `fault_address` say which.
  CN_OUTCOME_FAULT = 1,
  /// The child did not answer in time (endless loop) and was restarted.
  CN_OUTCOME_TIMEOUT = 2,
  /// The child died or could not be started.
  CN_OUTCOME_CRASHED = 3,
} cn_outcome;

/// A test for the native runner: code bytes, initial registers (rip is ignored: code starts at
/// CN_CODE_ADDR) and the initial sandbox contents.
typedef struct {
  uint32_t code_length;
  uint8_t code[CN_CODE_MAX];
  cn_regs initial;
  uint8_t sandbox[CN_SANDBOX_SIZE];
} cn_test;

/// Result of a native run. For a completed run `final.rip` is the address of the INT3 reached.
/// For a fault the registers are those at the faulting instruction (as the CPU reports them).
typedef struct {
  int32_t outcome;
  int32_t vector;
  int32_t signal;
  int32_t reserved;
  uint64_t error_code;
  uint64_t fault_address;
  cn_regs final;
  uint8_t sandbox[CN_SANDBOX_SIZE];
} cn_result;

/// A native runner: a long-lived child process and the shared memory it reads tests from.
typedef struct cn_runner cn_runner;
/// Starts a runner and its child. Returns NULL and a negative errno in *error on failure.
cn_runner *cn_runner_create(int *error);
/// Runs one test in the child, restarting it if it died. Returns 0 or a negative errno;
/// `result->outcome` tells what happened. `timeout_ms` bounds the wait for the child.
int cn_runner_run(cn_runner *runner, const cn_test *test, cn_result *result, int timeout_ms);
/// Stops the child and frees the runner.
void cn_runner_destroy(cn_runner *runner);

/// The sandbox bytes of a test or result (arrays this large are not imported into Swift).
uint8_t *cn_test_sandbox(cn_test *test);
const uint8_t *cn_result_sandbox(const cn_result *result);

/// CPUID on the host.
void cn_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

/// Inflates a gzip (or zlib) stream. Returns 0 and a malloc'ed buffer in *out (free with
/// cn_free), or a negative value on corrupt input.
int cn_gunzip(const uint8_t *input, size_t input_length, uint8_t **out, size_t *out_length);
void cn_free(void *pointer);

#endif
