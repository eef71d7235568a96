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
