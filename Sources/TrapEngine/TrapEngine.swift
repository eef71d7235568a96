import CKVM
import KVMEngine
import VMM

/// Trap-and-emulate with ring compression (`--engine trap`): the guest's kernel and user code run
/// natively at real ring 3 of a KVM VM, on shadow page tables, under the deprivileged monitor's
/// ring-0 stubs (`DeprivilegedMonitorPages`); every privileged or sensitive instruction that traps
/// there is emulated on a virtual CPU with the X86 model (`PrivilegedInstructionEmulator`).
///
/// KVM is the substrate because on this host it runs guest ring 3 natively while guest ring 0 is
/// emulated instruction by instruction: only the monitor's few stub instructions run at ring 0.
public final class TrapEngine: Engine {
  /// `trap`.
  public let name = "trap"
  /// The host's `/dev/kvm`.
  public let system: KVMSystem
  /// Whether the real vCPU runs with CR4.UMIP (SGDT, SIDT, SLDT, SMSW and STR then trap and are
  /// emulated instead of leaking the monitor's tables): nil uses it where KVM offers it.
  public let umip: Bool?

  /// Opens `/dev/kvm`; throws `KVMUnavailable` when it is missing, not permitted or too old.
  public init(umip: Bool? = nil) throws(KVMUnavailable) {
    system = try KVMSystem()
    self.umip = umip
  }

  /// Creates the VM: a KVM VM over `memory` with the monitor's pages written at the top of low
  /// RAM and the shadow frame pool below them. Only the VMM's interrupt controllers are supported.
  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard options.interruptController == .user else {
      throw EngineError("trap: the in-kernel irqchip is not supported (interrupts are reflected by the monitor)")
    }
    let offered = (try? system.supportedCPUID())?.contains { $0.function == 7 && $0.index == 0 && $0.ecx & 4 != 0 }
    return try TrapVirtualMachine(
      system: system, memory: memory, identity: options.cpu, umip: umip ?? (offered ?? false))
  }
}

/// The trap engine's VM: the KVM VM, the monitor's pages and the reserved shadow frames.
public final class TrapVirtualMachine: EngineVM {
  /// The KVM VM the real vCPU runs in.
  public let kvm: KVMVirtualMachine
  /// The guest's memory (also holding the monitor's pages and the shadow pool).
  public let memory: GuestMemory
  /// The monitor's ring-0 pages.
  public let monitor: DeprivilegedMonitorPages
  /// The guest-physical frames shadow page tables are built in (just below the monitor's pages).
  public let poolRange: Range<UInt64>
  /// Whether the real vCPU sets CR4.UMIP.
  public let umip: Bool

  /// A VM over `memory` (at least 8 MiB of low RAM) on `system`.
  init(system: KVMSystem, memory: GuestMemory, identity: GuestCPUIdentity?, umip: Bool) throws(EngineError) {
    guard let monitor = DeprivilegedMonitorPages(memory: memory, cpus: 1) else {
      throw EngineError("trap: guest RAM too small for the monitor's pages and shadow tables (give at least 8 MiB)")
    }
    let base = monitor.reservedRange.lowerBound
    let poolSize: UInt64 = base >= 64 << 20 ? 8 << 20 : 1 << 20
    self.monitor = monitor
    self.poolRange = base - poolSize..<base
    self.memory = memory
    self.umip = umip
    kvm = try KVMVirtualMachine(system: system, memory: memory, inKernelIRQChip: false, identity: identity)
    do {
      try monitor.writePages(into: memory, trap: KVMHypercallTrap.instruction)
    } catch {
      throw EngineError("trap: cannot write the monitor's pages: \(error)")
    }
  }

  /// The VMM's PIC and PIT: interrupts reach the guest through the monitor.
  public var engineInterruptSink: (any InterruptSink)? { nil }
  /// Host time, as on kvm.
  public var clock: (any InstructionDrivenClock)? { nil }
  /// `out %eax, $0xE4`, as on kvm: the TSS's I/O bitmap lets ring 3 reach that port.
  public var hypercallInstruction: [UInt8] { KVMHypercallTrap.instruction }

  /// Creates vCPU `index`; the trap engine serves one (its shadows are per vCPU).
  public func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU {
    guard index == 0 else { throw EngineError("trap: one vCPU only (shadow page tables are not shared yet)") }
    return try TrapVirtualCPU(vm: self, index: index)
  }
}
