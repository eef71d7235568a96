import VMM

/// The hardware-assisted engine: guests run on the host CPU through Linux `/dev/kvm`.
public final class KVMEngine: Engine {
  public let name = "kvm"
  public let system: KVMSystem
  /// The VM of the last machine made (for diagnostics and benchmarks).
  public private(set) var lastVirtualMachine: KVMVirtualMachine?

  /// Opens `/dev/kvm`; throws `KVMUnavailable` when it is missing, not permitted or too old.
  public init(path: String = KVMSystem.defaultPath) throws(KVMUnavailable) {
    system = try KVMSystem(path: path)
  }

  public init(system: KVMSystem) { self.system = system }

  /// True when `/dev/kvm` can be opened and speaks API version 12 (what `--engine auto` asks).
  public static func isUsable(path: String = KVMSystem.defaultPath) -> Bool {
    (try? KVMSystem(path: path)) != nil
  }

  public func makeMachine(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> EngineMachine {
    let kernel = options.interruptController == .kernel
    let vm = try KVMVirtualMachine(system: system, memory: memory, inKernelIRQChip: kernel)
    lastVirtualMachine = vm
    let vcpu = try vm.makeVirtualCPU(identity: options.cpu)
    return EngineMachine(vcpu: vcpu, engineInterruptSink: kernel ? KVMInterruptSink(vm: vm) : nil)
  }
}
