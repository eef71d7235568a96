import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// The 8259 through the I/O APIC: with the BSP's local APIC enabled and LINT0 masked, the 8259's
/// interrupts reach no CPU until I/O APIC pin 0 (the 8259's INTR) gets an unmasked ExtINT entry;
/// then the CPU that entry addresses acknowledges the 8259 and takes its vector.
@Suite struct IOAPICExtINTTests {
  /// The 8259 pair at vectors 0x20/0x28 with only IRQ 4 (COM1) unmasked; COM1's
  /// transmitter-empty interrupt raised; 0x9010 holds the vector 0x24 count after a spin with
  /// pin 0 masked, 0x9100 the final count. The handler acknowledges the 8259 and turns COM1's
  /// interrupt off.
  static let guest = #"""
    main:
      GATE 0x24, pic_handler
      PIC_INIT 0xEF, 0xFF
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      sti
      OUT 0x3F9, 0x02
      movl $20000, %esi
    spin:
      pause
      decl %esi
      jnz spin
      movl 0x9100, %eax
      movl %eax, 0x9010
      movq $0xFEC00000, %rsi
      movl $0x11, (%rsi)
      movl $0, 0x10(%rsi)
      movl $0x10, (%rsi)
      movl $0x700, 0x10(%rsi)
    wait_pic:
      cmpl $0, 0x9100
      je wait_pic
      EXIT
    pic_handler:
      pushq %rax
      pushq %rdx
      incl 0x9100
      OUT 0x3F9, 0x00
      OUT 0x20, 0x20
      popq %rdx
      popq %rax
      iretq
    """#

  static func check(_ run: APICTestGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9010) == 0)  // LINT0 masked, pin 0 masked: nobody takes it
    #expect(try run.u32(0x9100) == 1)  // through the ExtINT entry
  }

  @Test(.requires(.guestToolchain), arguments: [1, 2]) func interpExtINTEntryCarriesThe8259(cpus: Int) throws {
    try Self.check(try APICTestGuest.run(Self.guest, cpus: cpus, on: InterpreterEngine()))
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmExtINTEntryCarriesThe8259() throws {
    try Self.check(try APICTestGuest.run(Self.guest, on: try KVMEngine()))
  }
  /// The ExtINT entry addresses APIC 1: the AP (real mode, IF set, in HLT) acknowledges the 8259
  /// and takes vector 0x24 (0x9100 counts it, 0x9104 holds the taker's APIC ID + 1).
  static let toAnAP = #"""
    main:
      PIC_INIT 0xEF, 0xFF
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movl $0, 0x310(%rbx)
      movl $0xC4500, 0x300(%rbx)
      movl $0xC4620, 0x300(%rbx)
      movl $0xC4620, 0x300(%rbx)
    wait_aps:
      pause
      movl 0x9000, %eax
      cmpl 0x9004, %eax
      jne wait_aps
      movq $0xFEC00000, %rsi
      movl $0x11, (%rsi)
      movl $0x01000000, 0x10(%rsi)
      movl $0x10, (%rsi)
      movl $0x700, 0x10(%rsi)
      OUT 0x3F9, 0x02
    wait_pic:
      pause
      cmpl $0, 0x9100
      je wait_pic
      EXIT
    """# + "\n" + APICTestGuest.applicationProcessorEntry + "\n"
      + #"""
      ap_main:
        movw $(ap_pic - ap_start), 0x24 * 4
        movw $0x2000, 0x24 * 4 + 2
        lock incl 0x9000
        sti
      ap_idle:
        hlt
        jmp ap_idle
      ap_pic:
        pushal
        movl $1, %eax
        cpuid
        shrl $24, %ebx
        incl %ebx
        movl %ebx, 0x9104
        movw $0x3F9, %dx
        movb $0, %al
        outb %al, %dx
        movw $0x20, %dx
        movb $0x20, %al
        outb %al, %dx
        lock incl 0x9100
        popal
        iret
      """#

  static func checkAP(_ run: APICTestGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9104) == 2)  // APIC 1 took it
  }

  @Test(.requires(.guestToolchain), arguments: [2, 4]) func interpExtINTEntryReachesAnAP(cpus: Int) throws {
    try Self.checkAP(
      try APICTestGuest.run(Self.toAnAP, cpus: cpus, on: InterpreterEngine(), presets: [0x9004: UInt32(cpus - 1)]))
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmExtINTEntryReachesAnAP() throws {
    try Self.checkAP(try APICTestGuest.run(Self.toAnAP, cpus: 2, on: try KVMEngine(), presets: [0x9004: 1]))
  }
}
