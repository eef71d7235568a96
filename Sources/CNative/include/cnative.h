#ifndef CNATIVE_H
#define CNATIVE_H

#include <stddef.h>
#include <stdint.h>

/// Fixed host linear addresses used by the native runner's child process. The CPU model maps the
/// same addresses so both see identical pointers.
#define CN_CODE_ADDR 0x10000000ULL
/// Bytes of test code the runner accepts; the rest of the code page is filled with INT3.
#define CN_CODE_MAX 0xE00
/// Size of the code page (INT3 past the code, up to the end of the page).
#define CN_CODE_SIZE 0x1000
/// The sandbox: readable and writable data, and the stack. Unmapped guard pages surround it.
#define CN_SANDBOX_ADDR 0x10002000ULL
#define CN_SANDBOX_SIZE 0x2000
/// LDT entries a compatibility-mode test describes. The child installs exactly this many, so the
/// LDT limit is CN_LDT_ENTRIES * 8 - 1 in every test.
#define CN_LDT_ENTRIES 16
/// Size of an FXSAVE64 image (Intel SDM layout: FCW at 0, FSW 2, abridged FTW 4, FOP 6, FIP 8,
/// FDP 16, MXCSR 24, MXCSR_MASK 28, ST0-7/MM0-7 at 32 + 16 * i, XMM0-15 at 160 + 16 * i).
#define CN_FX_SIZE 512

/// How the child enters the test code.
typedef enum {
  /// 64-bit code at CN_CODE_ADDR, the process's own flat segments.
  CN_MODE_LONG64 = 0,
  /// Compatibility mode: a far jump to `initial.segments[1]`:`initial.rip` (the GDT's 32-bit user
  /// code selector 0x23 or an LDT code selector) with the other selectors loaded first.
  CN_MODE_COMPAT = 1,
} cn_mode;

/// Register file in x86 encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15, then rip, rflags,
/// then the segment selectors in Sreg order (ES CS SS DS FS GS). Compatibility-mode runs load
/// and report the selectors; 64-bit runs ignore them on entry and report the process's own.
typedef struct {
  uint64_t gpr[16];
  uint64_t rip;
  uint64_t rflags;
  uint16_t segments[6];
  uint16_t reserved[2];
} cn_regs;

/// One LDT descriptor in the terms of Linux's modify_ldt (the fields of `struct user_desc`):
/// `contents` 0 data, 1 expand-down data, 2 code; `empty` installs the all-zero descriptor instead.
typedef struct {
  uint32_t base;
  uint32_t limit;
  uint8_t seg_32bit;
  uint8_t contents;
  uint8_t read_exec_only;
  uint8_t limit_in_pages;
  uint8_t seg_not_present;
  uint8_t useable;
  uint8_t empty;
  uint8_t reserved;
} cn_ldt_entry;

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
  /// The child could not set up the test (modify_ldt failed: `signal` holds the errno).
  CN_OUTCOME_SETUP_FAILED = 4,
} cn_outcome;

/// A test for the native runner: code bytes (always placed at CN_CODE_ADDR), initial registers
/// and the initial sandbox contents. In CN_MODE_LONG64 `initial.rip` is ignored (code starts at
/// CN_CODE_ADDR); in CN_MODE_COMPAT it is the entry offset in the code segment `initial.segments[1]`
/// and `ldt` is installed first.
typedef struct {
  uint32_t code_length;
  uint32_t mode;
  uint8_t code[CN_CODE_MAX];
  cn_regs initial;
  cn_ldt_entry ldt[CN_LDT_ENTRIES];
  /// The initial x87/SSE state as an FXSAVE64 image, loaded with FXRSTOR64 just before the code
  /// runs. MXCSR is masked with the host's MXCSR_MASK first (FXRSTOR faults on reserved bits);
  /// the image's own MXCSR_MASK field is ignored.
  uint8_t fx[CN_FX_SIZE] __attribute__((aligned(16)));
  uint8_t sandbox[CN_SANDBOX_SIZE];
} cn_test;

/// Result of a native run. For a completed run `final.rip` is the address (compatibility mode: the
/// offset in CS) of the INT3 reached. For a fault the registers are those at the faulting
/// instruction (as the CPU reports them) and `fault_address` is CR2 for a page fault.
typedef struct {
  int32_t outcome;
  int32_t vector;
  int32_t signal;
  int32_t reserved;
  uint64_t error_code;
  uint64_t fault_address;
  cn_regs final;
  /// The x87/SSE state when the run ended (completed or faulted), as an FXSAVE64 image: the
  /// legacy area of the signal frame the kernel wrote. All zero if the kernel gave none, and after
  /// a timeout, a crash or a failed setup.
  uint8_t fx[CN_FX_SIZE] __attribute__((aligned(16)));
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
/// Whether this host runs compatibility-mode tests: a runner installs a 16-bit LDT code segment
/// and runs a NOP in it. Returns 0, or -1 with the reason in `reason` (NUL-terminated).
int cn_compat_mode_probe(char *reason, size_t size);

/// The sandbox bytes of a test or result (arrays this large are not imported into Swift).
uint8_t *cn_test_sandbox(cn_test *test);
const uint8_t *cn_result_sandbox(const cn_result *result);
/// The FXSAVE64 images (CN_FX_SIZE bytes, 16-byte aligned) of a test (initial state) or result
/// (final state); like the sandbox, too large to import as Swift tuples.
uint8_t *cn_test_fx(cn_test *test);
const uint8_t *cn_result_fx(const cn_result *result);

/// CPUID on the host.
void cn_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

/// Inflates a gzip (or zlib) stream. Returns 0 and a malloc'ed buffer in *out (free with
/// cn_free), or a negative value on corrupt input.
int cn_gunzip(const uint8_t *input, size_t input_length, uint8_t **out, size_t *out_length);
void cn_free(void *pointer);

#endif
