import VMM
import X86

/// One guest's VM in the `interp` engine: what its vCPUs share (guest memory, the CPU model and
/// identity, and in deterministic runs the instruction-driven guest clock).
public final class InterpreterVM: EngineVM {
  public let memory: GuestMemory
  public let model: CPUModel
  public let deterministic: Bool
  /// The CPU identity every vCPU shows through CPUID (nil: the model's Intel flavour).
  public let identity: GuestCPUIdentity?
  /// The vCPUs created so far, by index.
  public private(set) var vcpus: [InterpreterVirtualCPU] = []
  /// Deterministic runs: guest time is the instructions retired by every vCPU, 1 ns each.
  private var instructionClock: InstructionClock?
  /// The engine name the vCPUs report (`interp`, or `dbt` when they run translated code).
  let engineName: String
  /// Makes each vCPU's binary translator (the `dbt` engine); nil: interpret only.
  let makeTranslator: (() throws(EngineError) -> any BlockExecutor)?

  public convenience init(memory: GuestMemory, model: CPUModel, deterministic: Bool, identity: GuestCPUIdentity?) {
    self.init(memory: memory, model: model, deterministic: deterministic, identity: identity, engineName: "interp")
  }

  /// A VM whose vCPUs run their code through the translators `makeTranslator` makes (the `dbt`
  /// engine), the interpreter taking every instruction the translators leave.
  package init(
    memory: GuestMemory, model: CPUModel, deterministic: Bool, identity: GuestCPUIdentity?, engineName: String,
    makeTranslator: (() throws(EngineError) -> any BlockExecutor)? = nil
  ) {
    self.engineName = engineName
    self.makeTranslator = makeTranslator
    self.memory = memory
    self.model = model
    self.deterministic = deterministic
    self.identity = identity
    if deterministic {
      instructionClock = InstructionClock { [unowned self] in
        vcpus.reduce(0) { $0 &+ $1.cpu.instructionsRetired }
      }
    }
  }

  /// The interpreter keeps the VMM's PIC and PIT.
  public var engineInterruptSink: (any InterruptSink)? { nil }
  /// The instruction-driven clock of a deterministic VM; nil: host time.
  public var clock: (any InstructionDrivenClock)? { instructionClock }

  public func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU {
    try createInterpreterVCPU(index: index)
  }

  /// `createVCPU` with the concrete type, for interpreter-specific tests.
  public func createInterpreterVCPU(index: Int) throws(EngineError) -> InterpreterVirtualCPU {
    guard index == vcpus.count else {
      throw EngineError("interp creates vCPUs in order: expected index \(vcpus.count), got \(index)")
    }
    let vcpu = InterpreterVirtualCPU(
      memory: memory, model: model, clock: instructionClock, engineName: engineName)
    if let makeTranslator { vcpu.cpu.blockExecutor = try makeTranslator() }
    if let identity { vcpu.present(identity) }
    vcpu.cpu.system.cpuid.apicID = UInt8(truncatingIfNeeded: index)  // CPUID.1:EBX[31:24]
    // The VMM gives every vCPU a local APIC (xAPIC at 0xFEE00000, x2APIC through its MSRs, with
    // the TSC-deadline timer): say so, and which is the BSP.
    vcpu.cpu.system.cpuid.features = vcpu.cpu.system.cpuid.features.union(CPUFeatures([.apic, .x2apic, .tscDeadline]))
    vcpu.cpu.isBootstrapProcessor = index == 0
    vcpus.append(vcpu)
    // Several vCPUs may run on several host threads: locked instructions update memory atomically.
    if vcpus.count > 1 { for v in vcpus { v.cpu.atomicUpdates = true } }
    return vcpu
  }
}
