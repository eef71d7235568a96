import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// `--cpu`: the guest reads the chosen vendor from CPUID on every engine. The guest runs CPUID
/// leaf 0 and exits through isa-debug-exit with the first byte of EBX ('G' of "Genu", 'A' of
/// "Auth").
@Suite struct CPUIdentityTests {
  static let guest: [UInt8] = [
    0x31, 0xC0,  // xor eax, eax
    0x0F, 0xA2,  // cpuid
    0x89, 0xD8,  // mov eax, ebx
    0xE6, 0xF4,  // out 0xF4, al
    0xF4,  // hlt
  ]

  static let identities: [(GuestCPUIdentity, UInt32)] = [
    (GuestCPUIdentity(vendor: "GenuineIntel", signature: 0x506E3), UInt32(UInt8(ascii: "G"))),
    (GuestCPUIdentity(vendor: "AuthenticAMD", signature: 0x830F10), UInt32(UInt8(ascii: "A"))),
  ]

  static func firstVendorByte(on engine: any Engine, _ identity: GuestCPUIdentity) throws -> StopReason {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: guest)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let vm = try Machine(
      memory: memory, boot: boot, engine: engine,
      configuration: MachineConfiguration(engineOptions: EngineOptions(cpu: identity), timeoutSeconds: 60))
    return vm.run().reason
  }

  @Test func theInterpreterShowsEachVendor() throws {
    for (identity, byte) in Self.identities {
      #expect(try Self.firstVendorByte(on: InterpreterEngine(), identity) == .debugExit(value: byte))
    }
  }

  @Test(.requires(.kvm)) func kvmShowsEachVendor() throws {
    for (identity, byte) in Self.identities {
      #expect(try Self.firstVendorByte(on: try KVMEngine(), identity) == .debugExit(value: byte))
    }
  }
}
