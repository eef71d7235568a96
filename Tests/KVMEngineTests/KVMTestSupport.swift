import KVMEngine
import VMM

/// Shared helpers for tests that need `/dev/kvm`.
enum KVMTestSupport {
  /// The kvm engine; tests that call it are marked `.requires(.kvm)`, so it only fails when
  /// /dev/kvm broke between the check and the test.
  static func engine() throws -> KVMEngine { try KVMEngine() }

  /// 2 MiB of guest memory with `image` at 0x10000, started by `SmallGuestBoot` in ring 0.
  static func machine(
    _ engine: KVMEngine, image: [UInt8], memory: UInt64 = 2 << 20, options: EngineOptions = EngineOptions()
  ) throws -> (memory: GuestMemory, vcpu: any VirtualCPU) {
    let mem = try GuestMemory(ramSize: memory)
    try mem.write(0x10000, bytes: image)
    let boot = try SmallGuestBoot.prepare(memory: mem, entry: 0x10000)
    let vcpu = try engine.createVM(memory: mem, options: options).createVCPU(index: 0)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    return (mem, vcpu)
  }
}

/// Collects guest console output from the vCPU thread.
final class OutputCapture: @unchecked Sendable {
  private(set) var bytes: [UInt8] = []
  func append(_ b: [UInt8]) { bytes += b }
  var text: String { String(decoding: bytes, as: UTF8.self) }
}

extension KVMTestSupport {
  /// A full `Machine` (devices, run loop) running `image` at 0x10000 in ring 0.
  static func virtualMachine(
    _ engine: KVMEngine, image: [UInt8], capture: OutputCapture, timeout: Double = 20,
    irqchip: InterruptControllerPlacement = .user, prepare: (GuestMemory) throws -> Void = { _ in }
  ) throws -> Machine {
    let mem = try GuestMemory(ramSize: 2 << 20)
    try mem.write(0x10000, bytes: image)
    try prepare(mem)
    let boot = try SmallGuestBoot.prepare(memory: mem, entry: 0x10000)
    var config = MachineConfiguration(
      consoleCapture: { capture.append($0) }, engineOptions: EngineOptions(interruptController: irqchip),
      timeoutSeconds: timeout)
    config.firmwareConfigurationDevice = false  // the test guests use ports 0x510-0x515

    return try Machine(memory: mem, boot: boot, engine: engine, configuration: config)
  }
}
