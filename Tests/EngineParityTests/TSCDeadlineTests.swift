import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// The local APIC timer in TSC-deadline mode: a guest arms IA32_TSC_DEADLINE from RDTSC and
/// waits in HLT for the interrupt, which must not come before its TSC reaches the deadline; the
/// MSR reads back the armed deadline and 0 once it fired; writing 0 and switching the timer mode
/// disarm it; a deadline already passed fires at once.
@Suite struct TSCDeadlineTests {
  /// Results: 0x9000 a far deadline (2^40 ticks ahead), 0x9008 the MSR read back, 0x9110
  /// timer interrupts seen after a spin with it armed, 0x9018 the MSR after writing 0, 0x9020 a
  /// near deadline (200,000 ticks ahead), 0x9108 the TSC in its interrupt's handler, 0x9010 the
  /// MSR after it fired, 0x9028 the MSR after a far deadline and a mode switch, 0x9100 timer
  /// interrupts (the second from a deadline already passed).
  static let guest = #"""
    .macro WAIT_TIMER count
    .Lwait\@:
      cli
      cmpl $\count, 0x9100
      je .Ldone\@
      sti
      hlt
      jmp .Lwait\@
    .Ldone\@:
      sti
    .endm
    .macro ARM_FAR
      RDTSC64
      movq $0x10000000000, %rdx
      addq %rdx, %rax
      movq %rax, %rdi
      movl $0x6E0, %ecx
      WRMSR64
    .endm
    main:
      GATE 0x40, timer_handler
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movl $0x40040, 0x320(%rbx)
      sti
      ARM_FAR
      movq %rdi, 0x9000
      movl $0x6E0, %ecx
      RDMSR64
      movq %rax, 0x9008
      movl $20000, %esi
    spin:
      pause
      decl %esi
      jnz spin
      movl 0x9100, %eax
      movl %eax, 0x9110
      xorl %eax, %eax
      xorl %edx, %edx
      movl $0x6E0, %ecx
      wrmsr
      RDMSR64
      movq %rax, 0x9018
      RDTSC64
      addq $200000, %rax
      movq %rax, 0x9020
      movl $0x6E0, %ecx
      WRMSR64
      WAIT_TIMER 1
      movl $0x6E0, %ecx
      RDMSR64
      movq %rax, 0x9010
      ARM_FAR
      movl $0x40, 0x320(%rbx)
      movl $0x40040, 0x320(%rbx)
      movl $0x6E0, %ecx
      RDMSR64
      movq %rax, 0x9028
      movl $1, %eax
      xorl %edx, %edx
      movl $0x6E0, %ecx
      wrmsr
      WAIT_TIMER 2
      EXIT
    timer_handler:
      pushq %rax
      pushq %rdx
      cmpl $0, 0x9100
      jne counted
      RDTSC64
      movq %rax, 0x9108
    counted:
      incl 0x9100
      movq $0xFEE000B0, %rax
      movl $0, (%rax)
      popq %rdx
      popq %rax
      iretq
    """#

  static func check(_ run: APICTestGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u64(0x9008) == run.u64(0x9000))  // reads back armed
    #expect(try run.u32(0x9110) == 0)  // the far deadline did not fire
    #expect(try run.u64(0x9018) == 0)  // writing 0 disarmed it
    #expect(try run.u64(0x9108) >= run.u64(0x9020))  // never before the guest TSC reaches it
    #expect(try run.u64(0x9010) == 0)  // fired: reads 0
    #expect(try run.u64(0x9028) == 0)  // the mode switch disarmed it
    #expect(try run.u32(0x9100) == 2)  // a passed deadline fired at once
  }

  @Test(.requires(.guestToolchain), arguments: [1, 2]) func interpTSCDeadlineTimer(cpus: Int) throws {
    try Self.check(try APICTestGuest.run(Self.guest, cpus: cpus, on: InterpreterEngine()))
  }

  /// After the guest writes IA32_TSC its TSC no longer equals guest time (2^50 ahead): the
  /// deadline still follows the TSC the guest reads.
  @Test(.requires(.guestToolchain)) func interpTSCDeadlineFollowsAWrittenTSC() throws {
    let source =
      #"""
      main:
        movl $0x10, %ecx
        movq $0x4000000000000, %rax
        WRMSR64
        jmp deadline_main
      """# + "\n" + Self.guest.replacingOccurrences(of: "main:", with: "deadline_main:")
    let run = try APICTestGuest.run(source, on: InterpreterEngine())
    try Self.check(run)
    #expect(try run.u64(0x9020) > 0x4000000000000)
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmTSCDeadlineTimer() throws {
    try Self.check(try APICTestGuest.run(Self.guest, cpus: 1, on: try KVMEngine()))
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmInKernelTSCDeadlineTimer() throws {
    try Self.check(try APICTestGuest.run(Self.guest, cpus: 1, on: try KVMEngine(), irqchip: .kernel))
  }
}
