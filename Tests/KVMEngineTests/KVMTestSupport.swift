import KVMEngine
import VMM

/// Shared helpers for tests that need `/dev/kvm`.
enum KVMTestSupport {
  /// The kvm engine, or nil after printing why the test skips.
  static func engine(_ test: String = #function) -> KVMEngine? {
    do {
      return try KVMEngine()
    } catch {
      print("SKIP: /dev/kvm unusable (\(error)); \(test) needs it")
      return nil
    }
  }

  /// 2 MiB of guest memory with `image` at 0x10000, started by `SmallGuestBoot` in ring 0.
  static func machine(
    _ engine: KVMEngine, image: [UInt8], memory: UInt64 = 2 << 20, options: EngineOptions = EngineOptions()
  ) throws -> (memory: GuestMemory, vcpu: any VirtualCPU) {
    let mem = try GuestMemory(ramSize: memory)
    try mem.write(0x10000, bytes: image)
    let boot = try SmallGuestBoot.prepare(memory: mem, entry: 0x10000)
    let machine = try engine.makeMachine(memory: mem, options: options)
    try machine.vcpu.setSpecialRegisters(boot.specialRegisters)
    try machine.vcpu.setRegisters(boot.registers)
    return (mem, machine.vcpu)
  }
}
