import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// Every vCPU of a VM reads its own initial APIC ID from CPUID.1:EBX[31:24] on every engine.
@Suite struct APICIDTests {
  static let guest: [UInt8] = [
    0xB8, 0x01, 0x00, 0x00, 0x00,  // mov eax, 1
    0x0F, 0xA2,  // cpuid
    0xC1, 0xEB, 0x18,  // shr ebx, 24
    0x89, 0xD8,  // mov eax, ebx
    0xE6, 0x10,  // out 0x10, al
    0xF4,  // hlt
  ]

  /// The APIC ID vCPU `index` of a fresh VM reports, running the guest itself.
  static func apicID(of index: Int, on engine: any Engine) throws -> VMExit {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: guest)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let vm = try engine.createVM(memory: memory, options: EngineOptions())
    var vcpus: [any VirtualCPU] = []
    for i in 0...index { vcpus.append(try vm.createVCPU(index: i)) }
    let vcpu = vcpus[index]
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    while true {
      let exit = try vcpu.run(budget: 1000)
      if exit != .budgetExhausted && exit != .kicked { return exit }
    }
  }

  static func out(_ value: UInt32) -> VMExit { .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: value)) }

  @Test func eachInterpreterVCPUHasItsOwnAPICID() throws {
    for index in 0..<3 { #expect(try Self.apicID(of: index, on: InterpreterEngine()) == Self.out(UInt32(index))) }
  }

  @Test(.requires(.kvm)) func eachKVMVCPUHasItsOwnAPICID() throws {
    for index in 0..<3 { #expect(try Self.apicID(of: index, on: try KVMEngine()) == Self.out(UInt32(index))) }
  }
}
