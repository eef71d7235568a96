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
}
