import HybridEngine
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator
import TrapEngine
import VMM

/// Interrupt priority in small 64-bit ring-0 guests with the VMM's interrupt controllers: CR8,
/// which is the local APIC's TPR, holds the APIC's interrupts of its priority class and below
/// until it is lowered, on interp, dbt, kvm, trap and hybrid; it does not hold the 8259's
/// (ExtINT); and NMIs arrive whatever IF and CR8 say, blocked from delivery until the handler's
/// IRETQ.
@Suite(.requires(.guestToolchain, .kvm))
struct TrapInterruptPriorityTests {
  /// Assembles `source` after the APIC test prelude and the guest helpers.
  static func binary(_ source: String) throws -> [UInt8] {
    try InlineGuestAssembler.assemble(
      APICTestGuest.prelude + "\n" + TrapEngineGuestTests.helpers + "\n" + source)
  }

  /// Self-IPIs through the local APIC (vector 0x20, class 2, and 0x40, class 4) and the PIT on
  /// vector 0x50 (class 5, through the 8259 in virtual-wire mode; masked after two ticks). With
  /// CR8 = 2 and IF set, 0x20 is held; the PIT's interrupts still end HLT and 0x20 stays held (not
  /// lost); with CR8 = 15 0x40 is held too; CR8 = 3 lets 0x40 in before the next instruction and
  /// still holds 0x20; CR8 = 1 lets 0x20 in at once, and it is taken once (read again after a
  /// port write).
  static let taskPriorityGuest = #"""
    .set LOW, 0x9000
    .set HIGH, 0x9008
    .set PITS, 0x9010
    main:
      GATE 0x20, low
      GATE 0x40, high
      GATE 0x50, pit
      movq $0, LOW
      movq $0, HIGH
      movq $0, PITS
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movl $0x700, 0x350(%rbx)
      PIC_INIT 0xFE, 0xFF, 0x50, 0x58
      mov $2, %eax
      mov %rax, %cr8
      sti
      movl $0x40020, 0x300(%rbx)
      mov %cr8, %rax
      PUTHEX %rax
      cmpq $0, LOW
      jne taken
      PUTS "0x20 held\n"
      PIT_PERIODIC
    1: hlt
      cmpq $2, PITS
      jb 1b
      cmpq $0, LOW
      jne taken
      PUTS "HLT ended by 0x50, 0x20 still held\n"
      mov $15, %eax
      mov %rax, %cr8
      movl $0x40040, 0x300(%rbx)
      mov %cr8, %rax
      cmpq $0, HIGH
      jne taken
      PUTS "0x40 held\n"
      mov $3, %eax
      mov %rax, %cr8
      mov HIGH, %rcx
      mov LOW, %rdx
      PUTHEX %rcx
      PUTHEX %rdx
      mov $1, %eax
      mov %rax, %cr8
      mov LOW, %rcx
      PUTHEX %rcx
      mov LOW, %rcx
      PUTHEX %rcx
      PUTS "done\n"
      EXIT
    taken:
      FAIL "taken while CR8 held it\n"
    low:
      incq LOW
      jmp eoi
    high:
      incq HIGH
    eoi:
      push %rax
      movabs $0xFEE000B0, %rax
      movl $0, (%rax)
      pop %rax
      iretq
    pit:
      incq PITS
      push %rax
      cmpq $2, PITS
      jb 2f
      movb $0xFF, %al
      outb %al, $0x21
    2: movb $0x20, %al
      outb %al, $0x20
      pop %rax
      iretq
    """#

  /// What `taskPriorityGuest` prints when CR8 gates as the architecture says.
  static let taskPriorityOutput =
    "0000000000000002\n0x20 held\nHLT ended by 0x50, 0x20 still held\n0x40 held\n"
    + "0000000000000001\n0000000000000000\n0000000000000001\n0000000000000001\ndone\n"

  /// What it prints on a kvm whose KVM does not report CR8 writes (`KVM_EXIT_SET_TPR`; this
  /// project's hosts emulate the guest's ring 0 in KVM): CR8 holds the same vectors, but a lowered
  /// CR8 lets them in at the guest's next exit (its next port write) instead of at once.
  static let taskPriorityOutputLoweredAtNextExit =
    "0000000000000002\n0x20 held\nHLT ended by 0x50, 0x20 still held\n0x40 held\n"
    + "0000000000000000\n0000000000000000\n0000000000000000\n0000000000000001\ndone\n"

  /// The engines `theVirtualTPRHoldsInterruptsUntilItIsLowered` and
  /// `theTaskPriorityDoesNotHoldThe8259` compare: the VMM's local APIC gates by CR8 on each.
  static func engines() throws -> [(String, any Engine)] {
    [
      ("interp", InterpreterEngine()), ("dbt", TranslatorEngine()), ("kvm", try KVMEngine()),
      ("trap", try TrapEngine()), ("hybrid", try HybridEngine()),
    ]
  }

  @Test func theVirtualTPRHoldsInterruptsUntilItIsLowered() throws {
    let binary = try Self.binary(Self.taskPriorityGuest)
    for (label, engine) in try Self.engines() {
      let run = try runCorpusGuest(binary, on: engine, label: label)
      if run.output != Self.taskPriorityOutput || run.status != 1 {
        print("\(label): status \(run.status) \(run.reason.description)\n\(run.output)")
      }
      #expect(run.status == 1, "\(label)")
      if label == "kvm" && run.output == Self.taskPriorityOutputLoweredAtNextExit {
        print("KNOWN DIFFERENCE: kvm without KVM_EXIT_SET_TPR delivers what a lowered CR8 admits at the next exit")
        continue
      }
      #expect(run.output == Self.taskPriorityOutput, "\(label)")
    }
  }

  /// The 8259 in virtual-wire mode (LINT0 as ExtINT) with its IRQ 0 on vector 0x28 (class 2) and
  /// CR8 = 15: the PIT's interrupts still end HLT, because the task priority gates only the local
  /// APIC's fixed interrupts, not ExtINT.
  static let externalInterruptGuest = #"""
    .set TICKS, 0x9000
    main:
      GATE 0x28, tick
      movq $0, TICKS
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movl $0x700, 0x350(%rbx)
      PIC_INIT 0xFE, 0xFF, 0x28, 0x30
      mov $15, %eax
      mov %rax, %cr8
      sti
      PIT_PERIODIC
    1: hlt
      cmpq $2, TICKS
      jb 1b
      mov %cr8, %rax
      PUTHEX %rax
      PUTS "8259 interrupts taken at CR8 15\n"
      EXIT
    tick:
      incq TICKS
      push %rax
      cmpq $2, TICKS
      jb 2f
      movb $0xFF, %al
      outb %al, $0x21
    2: movb $0x20, %al
      outb %al, $0x20
      pop %rax
      iretq
    """#

  @Test func theTaskPriorityDoesNotHoldThe8259() throws {
    let binary = try Self.binary(Self.externalInterruptGuest)
    let expected = "000000000000000F\n8259 interrupts taken at CR8 15\n"
    for (label, engine) in try Self.engines() {
      let run = try runCorpusGuest(binary, on: engine, label: label)
      if run.output != expected || run.status != 1 {
        print("\(label): status \(run.status) \(run.reason.description)\n\(run.output)")
      }
      #expect(run.output == expected, "\(label)")
      #expect(run.status == 1, "\(label)")
    }
  }

  /// A self-NMI with IF clear and CR8 = 15 is taken (vector 2 through the guest's IDT); a second
  /// one sent from inside the handler waits until its IRETQ, then is taken once.
  static let nmiGuest = #"""
    .set NMIS, 0x9000
    main:
      GATE 2, nmi
      movq $0, NMIS
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      cli
      mov $15, %eax
      mov %rax, %cr8
      movl $0x40400, 0x300(%rbx)
      mov %cr0, %rax
      mov NMIS, %rax
      PUTHEX %rax
      mov %cr0, %rax
      mov NMIS, %rax
      PUTHEX %rax
      PUTS "done\n"
      EXIT
    nmi:
      incq NMIS
      cmpq $1, NMIS
      jne 1f
      movabs $0xFEE00300, %rax
      movl $0x40400, (%rax)
      mov %cr0, %rax
      mov NMIS, %rax
      PUTHEX %rax
      PUTS "blocked until IRETQ\n"
    1: iretq
    """#

  @Test func nmisIgnoreIFAndCR8AndWaitForIRETQ() throws {
    let binary = try Self.binary(Self.nmiGuest)
    let expected = "0000000000000001\nblocked until IRETQ\n0000000000000002\n0000000000000002\ndone\n"
    let trap = try runCorpusGuest(binary, on: try TrapEngine(), label: "trap")
    let interp = try runCorpusGuest(binary, on: InterpreterEngine(), label: "interp")
    if trap.output != expected || trap.status != 1 {
      print("trap: status \(trap.status) \(trap.reason.description)\n\(trap.output)")
    }
    #expect(interp.output == expected)
    #expect(interp.status == 1)
    #expect(trap.output == interp.output)
    #expect(trap.status == interp.status)
    // The guest stays in ring 0, so on hybrid its dbt side takes every NMI
    // (HybridVirtualCPUTests has one raised in user mode).
    let hybrid = try runCorpusGuest(binary, on: try HybridEngine(), label: "hybrid")
    #expect(hybrid.output == expected)
    #expect(hybrid.status == 1)
    // This host's kvm delivers the NMI that waited for the IRETQ only at a later VM entry (after
    // the main code's next exit), so its first count after the handler reads 1.
    let kvm = try runCorpusGuest(binary, on: try KVMEngine(), label: "kvm")
    if kvm.output != expected {
      print("KNOWN DIFFERENCE: the NMI guest on kvm:\n\(kvm.output)")
    }
    #expect(kvm.output.hasPrefix("0000000000000001\nblocked until IRETQ\n"))
    #expect(kvm.output.hasSuffix("0000000000000002\ndone\n"))
    #expect(kvm.status == 1)
  }
}
