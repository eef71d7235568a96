import HybridEngine
import TestHostSupport
import Testing
import TrapEngine
import VMM

/// The hybrid's vCPU driven directly, without a machine: its hand-over between the dbt side
/// (guest kernel) and the trap side (guest user code).
@Suite(.requires(.kvm)) struct HybridVirtualCPUTests {
  /// Ring-3 code at 0x10000: `1: inc %ebx; cmp $100, %ebx; jb 1b; out %al, $0x81; jmp .`
  static let userLoop: [UInt8] = [0xFF, 0xC3, 0x83, 0xFB, 0x64, 0x72, 0xF9, 0xE6, 0x81, 0xEB, 0xFE]

  /// The guest handed to the trap side has not run there yet: an interrupt must not be taken
  /// before its first user instruction, as after an instruction the monitor emulated. Taking one
  /// at once let a timer faster than the switch deliver every tick on the kernel side before user
  /// code ran (`timerInterruptsPreemptRingThree` on hybrid saw "user code never ran" on a busy
  /// host). The kick lands before the first run, so the trap side's KVM_RUN returns before
  /// entering the guest; only the next run, which enters it, is progress.
  @Test func noInterruptIsTakenBeforeTheFirstUserInstruction() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    try memory.write(0x10000, bytes: Self.userLoop)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000, userMode: true)
    let vcpu = try #require(
      try HybridEngine().createVM(memory: memory, options: EngineOptions()).createVCPU(index: 0)
        as? HybridVirtualCPU)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    var registers = boot.registers
    registers.rflags |= 0x200  // the virtual IF set
    registers.rbx = 0
    try vcpu.setRegisters(registers)

    vcpu.kick()  // lands outside KVM_RUN, on this (the vCPU's) thread
    #expect(try vcpu.run(budget: nil) == .kicked)
    #expect(vcpu.onTrap)
    #expect(!vcpu.trap.real.lastRunEnteredGuest)
    #expect(!vcpu.readyForInterruptInjection)
    // The next run enters the guest: the loop runs natively to its OUT.
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0x81, size: 1, isWrite: true, value: 0)))
    #expect(try vcpu.registers().rbx == 100)
  }

  /// NMI vector 2's handler at 0x11000 (ring 0): `inc %r15; out %al, $0x82; iretq`.
  static let nmiHandler: [UInt8] = [0x49, 0xFF, 0xC7, 0xE6, 0x82, 0x48, 0xCF]

  /// An NMI raised while user code holds the trap side is reflected there and handled on the
  /// dbt side; the NMI blocking moves with the guest, so a second NMI raised inside the handler
  /// waits for its IRETQ (then is taken at once, on the same stack depth), and the IRETQ back to
  /// ring 3 returns the guest to the trap side. Before, the hybrid threw on any NMI (a guest's
  /// self-NMI stopped the VM).
  @Test func nmisReachTheKernelSideAndStayBlockedUntilIRETQ() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    try memory.write(0x10000, bytes: Self.userLoop)
    try memory.write(0x11000, bytes: Self.nmiHandler)
    let idt: UInt64 = 0x8000
    var gate = [UInt8](repeating: 0, count: 16)
    gate[0] = 0x00
    gate[1] = 0x10
    gate[2] = UInt8(SmallGuestBoot.kernelCode)
    gate[5] = 0x8E  // present, DPL 0, 64-bit interrupt gate
    gate[6] = 0x01  // handler 0x11000
    try memory.write(idt + 2 * 16, bytes: gate)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000, userMode: true)
    let vcpu = try #require(
      try HybridEngine().createVM(memory: memory, options: EngineOptions()).createVCPU(index: 0)
        as? HybridVirtualCPU)
    var special = boot.specialRegisters
    special.idt = DescriptorTable(base: idt, limit: 0xFFF)
    try vcpu.setSpecialRegisters(special)
    var registers = boot.registers
    registers.rbx = 0
    registers.r15 = 0
    try vcpu.setRegisters(registers)
    vcpu.kick()
    #expect(try vcpu.run(budget: nil) == .kicked)
    #expect(vcpu.onTrap)

    let outToPort82 = VMExit.io(PortAccess(port: 0x82, size: 1, isWrite: true, value: 0))
    try vcpu.injectNMI()
    // The kick above also latched on the dbt side (`kick` kicks both): its first run may end at once.
    var exit = try vcpu.run(budget: nil)
    if exit == .kicked { exit = try vcpu.run(budget: nil) }
    #expect(exit == outToPort82)
    #expect(!vcpu.onTrap)
    let first = try vcpu.registers()
    #expect(first.r15 == 1)
    try vcpu.complete(.none)
    try vcpu.injectNMI()  // inside the handler: held until its IRETQ
    #expect(try vcpu.run(budget: nil) == outToPort82)
    let second = try vcpu.registers()
    #expect(second.r15 == 2)
    #expect(second.rsp == first.rsp)  // taken after the IRETQ, not nested inside the handler
    try vcpu.complete(.none)
    #expect(try vcpu.run(budget: nil) == .kicked)  // the IRETQ back to ring 3: the trap side again
    #expect(vcpu.onTrap)
    #expect(try vcpu.registers().rip == 0x10000)
  }
}
