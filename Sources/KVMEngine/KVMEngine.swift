import VMM

/// The hardware-assisted engine: guests run on the host CPU through Linux `/dev/kvm`.
public final class KVMEngine: Engine {
  public let name = "kvm"
  public let system: KVMSystem

  /// Opens `/dev/kvm`; throws `KVMUnavailable` when it is missing, not permitted or too old.
  public init(path: String = KVMSystem.defaultPath) throws(KVMUnavailable) {
    system = try KVMSystem(path: path)
  }

  public init(system: KVMSystem) { self.system = system }

  /// True when `/dev/kvm` can be opened and speaks API version 12 (what `--engine auto` asks).
  public static func isUsable(path: String = KVMSystem.defaultPath) -> Bool {
    (try? KVMSystem(path: path)) != nil
  }

  /// Creates a KVM VM over `memory` (`KVM_CREATE_VM`, memory slots, and the in-kernel irqchip
  /// and PIT when `options` ask for them).
  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    try KVMVirtualMachine(
      system: system, memory: memory, inKernelIRQChip: options.interruptController == .kernel, identity: options.cpu)
  }
}
