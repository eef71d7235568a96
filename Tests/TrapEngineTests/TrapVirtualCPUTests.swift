import Launcher
import TestHostSupport
import Testing
import TrapEngine
import VMM

/// The trap engine's vCPU driven directly, without a machine: a tiny ring-0 guest (hand-assembled)
/// whose privileged instructions trap and are emulated while the VMM sees the virtual CPU.
@Suite(.requires(.kvm)) struct TrapVirtualCPUTests {
  /// `mov %cr3, %rax; shr $8, %eax; out %al, $0xE9; in $0xE9, %al; mov %eax, %ebx; cli; hlt`
  static let guest: [UInt8] = [
    0x0F, 0x20, 0xD8, 0xC1, 0xE8, 0x08, 0xE6, 0xE9, 0xE4, 0xE9, 0x89, 0xC3, 0xFA, 0xF4,
  ]

  /// A vCPU of a new trap VM over 8 MiB with `guest` at 0x10000, in SmallGuestBoot's ring-0 state.
  static func vcpu() throws -> (any VirtualCPU, GuestMemory) {
    let memory = try GuestMemory(ramSize: 8 << 20)
    try memory.write(0x10000, bytes: guest)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let vm = try TrapEngine().createVM(memory: memory, options: EngineOptions())
    let vcpu = try vm.createVCPU(index: 0)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    return (vcpu, memory)
  }

  @Test func privilegedInstructionsTrapAndTheVMMSeesTheVirtualCPU() throws {
    let (vcpu, _) = try Self.vcpu()
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0xE9, size: 1, isWrite: true, value: 0x10)))
    try vcpu.complete(.none)
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0xE9, size: 1, isWrite: false)))
    try vcpu.complete(.value(0x5A))
    #expect(try vcpu.run(budget: nil) == .shutdown(.haltWithInterruptsDisabled))
    let r = try vcpu.registers()
    #expect(r.rbx == 0x5A)
    #expect(r.rip == 0x10000 + UInt64(Self.guest.count))
    #expect(r.rflags & 0x200 == 0)  // the virtual IF, cleared by the emulated CLI
    let s = try vcpu.specialRegisters()
    #expect(s.cs.selector == SmallGuestBoot.kernelCode)  // not the monitor's ring-3 selector
    #expect(s.cr3 == SmallGuestBoot.pml4)  // not the shadow root
    let counters = Dictionary(vcpu.engineCounters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    #expect(counters["trap-gp"] == 5)  // MOV from CR3, OUT, IN, CLI, HLT
    #expect((counters["shadow-fills"] ?? 0) >= 1)
  }

  /// At 0x10000: `out %al, $0x80; 1: inc %ebx; cmp $100, %ebx; jb 1b; hlt; jmp .`; vector 0x20's
  /// handler at 0x10010: `mov %ebx, %ecx; out %al, $0x81` (RCX: how far the loop got before it).
  static let progressGuest: [UInt8] = [
    0xE6, 0x80, 0xFF, 0xC3, 0x83, 0xFB, 0x64, 0x72, 0xF9, 0xF4, 0xEB, 0xFE, 0x90, 0x90, 0x90, 0x90,
    0x89, 0xD9, 0xE6, 0x81,
  ]

  /// A kick that lands while the vCPU is outside `KVM_RUN` (the PIT's deadline passing while the
  /// monitor emulates a handler's IRETQ or the VMM handles its EOI) makes the next `KVM_RUN`
  /// return before entering the guest. That is no progress: an interrupt waiting since the last
  /// emulated instruction is still held until a guest instruction runs natively. Counting it as
  /// progress delivered tick after tick at one instruction whenever the timer outran the trap path
  /// (the corpus guest `timer` saw thousands of ticks at its HLT and none left for its ring-3 loop).
  @Test func aKickBeforeEntryIsNoProgressForAWaitingInterrupt() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    try memory.write(0x10000, bytes: Self.progressGuest)
    let idt: UInt64 = 0x8000
    let handler: UInt64 = 0x10010
    var gate = [UInt8](repeating: 0, count: 16)
    gate[0] = UInt8(handler & 0xFF)
    gate[1] = UInt8(handler >> 8 & 0xFF)
    gate[2] = UInt8(SmallGuestBoot.kernelCode & 0xFF)
    gate[5] = 0x8E  // present, DPL 0, 64-bit interrupt gate
    gate[6] = UInt8(handler >> 16 & 0xFF)
    gate[7] = UInt8(handler >> 24 & 0xFF)
    try memory.write(idt + 0x20 * 16, bytes: gate)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let vcpu = try #require(
      try TrapEngine().createVM(memory: memory, options: EngineOptions()).createVCPU(index: 0) as? TrapVirtualCPU)
    var special = boot.specialRegisters
    special.idt = DescriptorTable(base: idt, limit: 0xFFF)
    try vcpu.setSpecialRegisters(special)
    var registers = boot.registers
    registers.rflags = 0x202  // the virtual IF set
    registers.rbx = 0
    registers.rcx = 0xFFFF
    registers.rax = 0
    try vcpu.setRegisters(registers)

    // The OUT is emulated: from here an interrupt waits for the guest to run natively.
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0x80, size: 1, isWrite: true, value: 0)))
    try vcpu.complete(.none)
    try vcpu.injectInterrupt(vector: 0x20)
    vcpu.kick()  // lands outside KVM_RUN, on this (the vCPU's) thread
    #expect(try vcpu.run(budget: nil) == .kicked)
    #expect(!vcpu.real.lastRunEnteredGuest)
    #expect(try vcpu.registers().rbx == 0)
    // The loop runs natively to its HLT; the interrupt ends the HLT, not the loop's first INC.
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0x81, size: 1, isWrite: true, value: 0)))
    let r = try vcpu.registers()
    #expect(r.rcx == 100)
    #expect(r.rip == handler + 4)
  }

  @Test func onlyTheVMMsInterruptControllersAndOneVCPU() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    #expect(throws: EngineError.self) {
      _ = try TrapEngine().createVM(memory: memory, options: EngineOptions(interruptController: .kernel))
    }
    let vm = try TrapEngine().createVM(memory: memory, options: EngineOptions())
    #expect(throws: EngineError.self) { _ = try vm.createVCPU(index: 1) }
    #expect(throws: EngineError.self) {
      _ = try TrapEngine().createVM(memory: try GuestMemory(ramSize: 2 << 20), options: EngineOptions())
    }
  }

  @Test func theRegistryOffersTrap() throws {
    let entry = try #require(EngineRegistry.entries.first { $0.name == "trap" })
    #expect(entry.unavailableReason() == nil)
    #expect(try entry.make(false).name == "trap")
  }
}
