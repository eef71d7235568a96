import Interpreter
import KVMEngine
import Translator
import TrapEngine
import VMM

/// The VMware-style hybrid (`--engine hybrid`): guest user code runs natively on a trap-and-emulate
/// vCPU (`TrapVirtualCPU`, real ring 3 of a KVM VM on shadow page tables), guest kernel code runs
/// on a binary-translated vCPU (`dbt`), where every sensitive instruction is a callout into the
/// X86 model and so exact. The guest switches between them at every ring transition; both work
/// on the same guest memory.
public final class HybridEngine: Engine {
  /// `hybrid`.
  public let name = "hybrid"
  /// The trap engine that makes the user-mode side.
  public let trap: TrapEngine

  /// Opens `/dev/kvm` for the user-mode side; throws `KVMUnavailable` where it cannot be used.
  public init(umip: Bool? = nil) throws(KVMUnavailable) {
    trap = try TrapEngine(umip: umip)
  }

  /// A trap VM and a dbt VM over the same `memory`.
  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard let trapVM = try trap.createVM(memory: memory, options: options) as? TrapVirtualMachine,
      let dbtVM = try TranslatorEngine(deterministic: false).createVM(memory: memory, options: options)
        as? InterpreterVM
    else { throw EngineError("hybrid: unexpected VM types from trap and dbt") }
    return HybridVirtualMachine(trap: trapVM, dbt: dbtVM)
  }
}

/// The hybrid's VM: the trap engine's KVM VM and the dbt engine's VM over one guest memory.
public final class HybridVirtualMachine: EngineVM {
  /// The user-mode side's VM.
  public let trap: TrapVirtualMachine
  /// The kernel-mode side's VM.
  public let dbt: InterpreterVM

  /// The pair of VMs.
  init(trap: TrapVirtualMachine, dbt: InterpreterVM) {
    self.trap = trap
    self.dbt = dbt
  }

  /// The VMM's PIC and PIT, as on both sides.
  public var engineInterruptSink: (any InterruptSink)? { nil }
  /// Host time.
  public var clock: (any InstructionDrivenClock)? { nil }

  /// Creates vCPU `index`: one only (the trap side has one).
  public func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU {
    guard index == 0 else { throw EngineError("hybrid: one vCPU only (the trap side has one)") }
    guard let user = try trap.createVCPU(index: index) as? TrapVirtualCPU else {
      throw EngineError("hybrid: unexpected vCPU type from trap")
    }
    return HybridVirtualCPU(trap: user, dbt: try dbt.createInterpreterVCPU(index: index))
  }
}
