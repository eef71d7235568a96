import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// NMIs from every source the machine has: an ICR NMI to another vCPU (which takes it in HLT
/// with interrupts disabled, and holds a second one pending until its handler's IRET), LVT LINT1
/// (the legacy NMI wire, `Machine.raiseNMI`) in NMI and fixed modes, and an I/O APIC
/// redirection entry in NMI mode.
@Suite struct NMITests {
  /// The BSP starts the APs (xAPIC ICR), waits for them, sends an NMI to APIC 1, and once its
  /// handler runs (0x9010 counts entries) sends two more, then sets 0x9014. AP 1's handler
  /// (real mode, IVT vector 2) waits for 0x9014 in its first run and records the entry count
  /// there (0x9018: still 1, the others wait for IRET); its second run sets 0x901C. The BSP
  /// waits for 0x901C, then spins a little so a wrongly kept third NMI would show in 0x9010.
  static let ipi = #"""
    main:
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
      movl $0x01000000, 0x310(%rbx)
      movl $0x400, 0x300(%rbx)
    wait_first:
      pause
      cmpl $1, 0x9010
      jb wait_first
      movl $0x400, 0x300(%rbx)
      movl $0x400, 0x300(%rbx)
      movl $1, 0x9014
    wait_second:
      pause
      cmpl $1, 0x901C
      jne wait_second
      movl $100000, %ecx
    settle:
      pause
      loop settle
      EXIT
    """# + "\n" + APICTestGuest.applicationProcessorEntry + "\n"
      + #"""
      ap_main:
        movw $(ap_nmi - ap_start), 8
        movw $0x2000, 10
        lock incl 0x9000
      ap_idle:
        hlt
        jmp ap_idle
      ap_nmi:
        lock incl 0x9010
        cmpl $1, 0x9010
        jne ap_second
      ap_wait:
        pause
        cmpl $1, 0x9014
        jne ap_wait
        movl 0x9010, %eax
        movl %eax, 0x9018
        iret
      ap_second:
        movl $1, 0x901C
        iret
      """#

  static func runIPI(cpus: Int, on engine: any Engine) throws {
    let run = try APICTestGuest.run(Self.ipi, cpus: cpus, on: engine, presets: [0x9004: UInt32(cpus - 1)])
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9018) == 1)  // blocked until IRET
    #expect(try run.u32(0x9010) == 2)  // then exactly one more
  }

  @Test(.requires(.guestToolchain), arguments: [2, 4]) func interpNMIByICRBlocksUntilIRET(cpus: Int) throws {
    try Self.runIPI(cpus: cpus, on: InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmNMIByICRBlocksUntilIRET() throws {
    try Self.runIPI(cpus: 2, on: try KVMEngine())
  }

  /// Port 0x510 raises the NMI wire. With LINT1 masked nothing happens (the edge is lost); in
  /// NMI mode vector 2 runs (0x9100 counts it, 0x9010 holds the count seen afterwards); in fixed
  /// mode with vector 0x41 that vector runs (0x9104).
  static let lint1 = #"""
    main:
      GATE 2, nmi_handler
      GATE 0x41, fixed_handler
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movw $0x510, %dx
      outb %al, %dx
      movl $0x400, 0x360(%rbx)
      outb %al, %dx
    wait_nmi:
      cmpl $0, 0x9100
      je wait_nmi
      movl 0x9100, %eax
      movl %eax, 0x9010
      movl $0x41, 0x360(%rbx)
      sti
      outb %al, %dx
    wait_fixed:
      cmpl $0, 0x9104
      je wait_fixed
      EXIT
    nmi_handler:
      incl 0x9100
      iretq
    fixed_handler:
      incl 0x9104
      movl $0, 0xB0(%rbx)
      iretq
    """#

  static func runLINT1(on engine: any Engine) throws {
    let run = try APICTestGuest.run(Self.lint1, on: engine) { machine in
      try machine.portBus.register(GuestTriggerPort { [unowned machine] _ in machine.raiseNMI() }, ports: 0x510...0x510)
    }
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9010) == 1)  // one NMI: the masked edge was lost
    #expect(try run.u32(0x9100) == 1)
    #expect(try run.u32(0x9104) == 1)
  }

  @Test(.requires(.guestToolchain)) func interpLINT1NMI() throws {
    try Self.runLINT1(on: InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmLINT1NMI() throws {
    try Self.runLINT1(on: try KVMEngine())
  }

  /// I/O APIC pin 4 (COM1) in NMI mode, edge, to APIC 0: enabling COM1's transmitter-empty
  /// interrupt raises IRQ 4, and the BSP takes vector 2 (0x9100) with interrupts disabled.
  static let ioapicNMI = #"""
    main:
      GATE 2, nmi_handler
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movq $0xFEC00000, %rsi
      movl $0x19, (%rsi)
      movl $0, 0x10(%rsi)
      movl $0x18, (%rsi)
      movl $0x400, 0x10(%rsi)
      movw $0x3F9, %dx
      movb $2, %al
      outb %al, %dx
    wait_nmi:
      cmpl $0, 0x9100
      je wait_nmi
      EXIT
    nmi_handler:
      incl 0x9100
      iretq
    """#

  @Test(.requires(.guestToolchain), arguments: [1, 2]) func interpIOAPICNMIEntry(cpus: Int) throws {
    let run = try APICTestGuest.run(Self.ioapicNMI, cpus: cpus, on: InterpreterEngine())
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9100) == 1)
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmIOAPICNMIEntry() throws {
    let run = try APICTestGuest.run(Self.ioapicNMI, on: try KVMEngine())
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9100) == 1)
  }
  /// With KVM's in-kernel irqchip the NMI wire goes straight to the bootstrap processor
  /// (`KVM_NMI`): port 0x510 raises it and vector 2 runs (0x9100).
  static let wire = #"""
    main:
      GATE 2, nmi_handler
      movw $0x510, %dx
      outb %al, %dx
    wait_nmi:
      cmpl $0, 0x9100
      je wait_nmi
      EXIT
    nmi_handler:
      incl 0x9100
      iretq
    """#

  @Test(.requires(.guestToolchain, .kvm, .kvmInKernelIRQChip)) func kvmInKernelIRQChipNMIWire() throws {
    let run = try APICTestGuest.run(Self.wire, on: try KVMEngine(), irqchip: .kernel) { machine in
      try machine.portBus.register(GuestTriggerPort { [unowned machine] _ in machine.raiseNMI() }, ports: 0x510...0x510)
    }
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9100) == 1)
  }
}
