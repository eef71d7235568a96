import HybridEngine
import Interpreter
import TestHostSupport
import Testing
import TrapEngine
import VMM

/// Small 64-bit ring-0 guests run deprivileged on `--engine trap` and on the interpreter: the
/// same serial output and exit status on both, and the output each step announces.
@Suite(.requires(.guestToolchain, .kvm))
struct TrapEngineGuestTests {
  /// Helpers after `APICTestGuest.prelude`: PUTS prints a literal on COM1, PUTHEX prints a
  /// register in hex, FAIL prints why and exits with 0x7f; ENTER_RING3 enters ring 3 at a label
  /// (IRETQ with IF set, user stack at 0x80000); PIT_PERIODIC starts the PIT's channel 0 as a
  /// rate generator (count 0x2E9C), PIT_IRQ0 starts it with only its IRQ 0 unmasked in the 8259s,
  /// at vector 0x20 to a handler, and PIC_EOI ends an 8259 master interrupt, keeping RAX.
  static let helpers = #"""
    .set COM1, 0x3F8
    .macro ENTER_RING3 entry
      pushq $0x23
      pushq $0x80000
      pushq $0x202
      pushq $0x1B
      lea \entry(%rip), %rax
      push %rax
      iretq
    .endm
    .macro PIT_PERIODIC
      OUT 0x43, 0x34
      OUT 0x40, 0x9C
      OUT 0x40, 0x2E
    .endm
    .macro PIT_IRQ0 handler
      GATE 0x20, \handler
      PIC_INIT 0xFE, 0xFF
      PIT_PERIODIC
    .endm
    .macro PIC_EOI
      push %rax
      movb $0x20, %al
      outb %al, $0x20
      pop %rax
    .endm
    .macro PUTS s
      lea .Ls\@(%rip), %rsi
      call puts
      jmp .Le\@
    .Ls\@: .asciz "\s"
    .Le\@:
    .endm
    .macro PUTHEX reg
      mov \reg, %rax
      call puthex
    .endm
    .macro FAIL s
      PUTS "\s"
      movb $0x7f, %al
      outb %al, $0xF4
    .endm
    puts:
      push %rax
      push %rdx
      mov $COM1, %dx
    1: lodsb
      test %al, %al
      jz 2f
      out %al, %dx
      jmp 1b
    2: pop %rdx
      pop %rax
      ret
    puthex:
      push %rbx
      push %rcx
      push %rdx
      mov %rax, %rbx
      mov $64, %ecx
      mov $COM1, %dx
    1: sub $4, %ecx
      mov %rbx, %rax
      shr %cl, %rax
      and $15, %al
      add $'0', %al
      cmp $'9', %al
      jbe 2f
      add $7, %al
    2: out %al, %dx
      test %ecx, %ecx
      jnz 1b
      mov $10, %al
      out %al, %dx
      pop %rdx
      pop %rcx
      pop %rbx
      ret
    """#

  /// Runs `source` on trap, on hybrid and on interp; all must agree and print `expected`.
  func check(_ source: String, expected: String, status: Int32 = 1) throws {
    let binary = try InlineGuestAssembler.assemble(APICTestGuest.prelude + "\n" + Self.helpers + "\n" + source)
    let trap = try runCorpusGuest(binary, on: try TrapEngine(), label: "trap")
    let interp = try runCorpusGuest(binary, on: InterpreterEngine(), label: "interp")
    let hybrid = try runCorpusGuest(binary, on: try HybridEngine(), label: "hybrid")
    if hybrid.output != expected || hybrid.status != status {
      print("hybrid: status \(hybrid.status) \(hybrid.reason.description)\n\(hybrid.output)")
    }
    #expect(hybrid.output == interp.output)
    #expect(hybrid.status == interp.status)
    if trap.output != expected || trap.status != status {
      print("trap: status \(trap.status) \(trap.reason.description)\n\(trap.output)")
    }
    #expect(interp.output == expected)
    #expect(interp.status == status)
    #expect(trap.output == interp.output)
    #expect(trap.status == interp.status)
  }

  /// Port I/O (IN from the debug console, OUT to COM1), a CR3 switch to a second root that
  /// aliases memory, and a page fault taken by the guest's own IDT handler, which reads CR2 and
  /// the error code and repairs the page-directory entry (a write to a shadowed page table).
  @Test func portIOCR3SwitchAndPageFault() throws {
    try check(
      #"""
      main:
        inb $0xE9, %al
        movzbq %al, %rax
        PUTHEX %rax
        mov %cr3, %rbx
        mov (%rbx), %rax
        mov %rax, 0x20000
        mov %rax, 0x20008
        mov $0x20000, %rcx
        mov %rcx, %cr3
        movq $0x1234, 0x30000
        movabs $0x8000030000, %rdx
        mov (%rdx), %rax
        PUTHEX %rax
        mov %rbx, %cr3
        mov %cr3, %rax
        PUTHEX %rax
        GATE 14, pf_handler
        mov 0x3010, %r12
        movq $0x5678, 0x400000
        movq $0, 0x3010
        invlpg 0x400000
        mov 0x400000, %rax
        PUTHEX %rax
        PUTS "done\n"
        EXIT
      pf_handler:
        pop %r13
        PUTHEX %r13
        mov %cr2, %rax
        PUTHEX %rax
        mov %r12, 0x3010
        iretq
      """#,
      expected: "00000000000000E9\n0000000000001234\n0000000000001000\n0000000000000000\n0000000000400000\n"
        + "0000000000005678\ndone\n")
  }

  /// IRETQ to ring 3, INT 0x80 from ring 3 through a DPL-3 gate (onto the TSS's RSP0 stack), IRETQ
  /// back, then SYSCALL and SYSRETQ (with the guest's STAR, LSTAR and SFMASK) and a last SYSCALL.
  @Test func ringThreeByIRETQAndSYSCALL() throws {
    try check(
      #"""
      main:
        mov $0xC0000080, %ecx
        rdmsr
        or $1, %eax
        wrmsr
        mov $0xC0000081, %ecx
        xor %eax, %eax
        mov $0x00080008, %edx
        wrmsr
        mov $0xC0000082, %ecx
        lea syscall_entry(%rip), %rax
        xor %edx, %edx
        wrmsr
        mov $0xC0000084, %ecx
        mov $0x200, %eax
        wrmsr
        GATE 0x80, int80, 0xEE00
        ENTER_RING3 user
      user:
        mov $7, %rbx
        int $0x80
        mov $1, %rdi
        syscall
        mov $2, %rdi
        syscall
      int80:
        mov 8(%rsp), %rax
        PUTHEX %rax
        mov 24(%rsp), %rax
        PUTHEX %rax
        PUTHEX %rbx
        iretq
      syscall_entry:
        push %rcx
        PUTHEX %rdi
        pop %rcx
        cmp $2, %rdi
        je 1f
        sysretq
      1: PUTS "done\n"
        EXIT
      """#,
      expected: "000000000000001B\n0000000000080000\n0000000000000007\n0000000000000001\n0000000000000002\ndone\n")
  }

  /// The PIT's IRQ 0 through the VMM's PIC, reflected through the guest's IDT: delivered while the
  /// guest waits in HLT after STI and while it spins with IF set, never while CLI holds it off.
  @Test func timerInterruptsFollowTheVirtualIF() throws {
    try check(
      #"""
      .set TICKS, 0x9000
      main:
        movq $0, TICKS
        PIT_IRQ0 tick
        sti
      1: hlt
        cmpq $3, TICKS
        jb 1b
        cli
        mov TICKS, %rbx
        mov $2000000, %ecx
      2: dec %ecx
        jnz 2b
        cmp TICKS, %rbx
        jne 4f
        PUTS "held off\n"
        sti
      3: cmpq $6, TICKS
        jb 3b
        cli
        PUTS "done\n"
        EXIT
      4: FAIL "tick while IF=0\n"
      tick:
        incq TICKS
        PIC_EOI
        iretq
      """#,
      expected: "held off\ndone\n")
  }

  /// PIT ticks that arrive while ring-3 code spins with IF set (never while the kernel runs: its
  /// only code before the IRETQ and the tick handler run with IF clear). On hybrid each tick is
  /// injected while the trap side runs user code, and the dbt side must deliver it before the
  /// guest goes back to user mode; it used to be left queued there, the handler never ran, its EOI
  /// never came, and the guest spun until the timeout.
  @Test func timerInterruptsPreemptRingThree() throws {
    try check(
      #"""
      .set TICKS, 0x9000
      .set SPINS, 0x9008
      main:
        movq $0, TICKS
        movq $0, SPINS
        PIT_IRQ0 tick
        ENTER_RING3 user
      user:
        incq SPINS
        jmp user
      tick:
        incq TICKS
        PIC_EOI
        cmpq $3, TICKS
        jae 1f
        iretq
      1: cmpq $0, SPINS
        jne 2f
        FAIL "user code never ran\n"
      2: PUTS "done\n"
        EXIT
      """#,
      expected: "done\n")
  }

  /// The kernel changes the page-directory entry user code reads through, between two reads from
  /// ring 3, and changes it back: user mode must see each new mapping. On hybrid the kernel's
  /// stores run on the dbt side, past the shadows' write protection: the shadows see them only
  /// through the hybrid's tracking of writes to their page-table frames.
  @Test func kernelPageTableWritesReachUserMode() throws {
    try check(
      #"""
      main:
        GATE 0x80, int80, 0xEE00
        movq $0x1111, 0x400000
        movq $0x2222, 0x200000
        mov 0x3010, %r12
        xor %r14, %r14
        ENTER_RING3 user
      user:
        mov 0x400000, %rbx
        int $0x80
        jmp user
      int80:
        PUTHEX %rbx
        inc %r14
        cmp $1, %r14
        jne 1f
        mov %r12, %rax
        sub $0x200000, %rax
        mov %rax, 0x3010
        invlpg 0x400000
        iretq
      1: cmp $2, %r14
        jne 2f
        mov %r12, 0x3010
        invlpg 0x400000
        iretq
      2: PUTS "done\n"
        EXIT
      """#,
      expected: "0000000000001111\n0000000000002222\n0000000000001111\ndone\n")
  }
}
