import CNative
import X86

/// Runs programs on the X86 model from the same state as the native runner: in 64-bit user mode,
/// or in compatibility mode with the host's GDT layout and the test's LDT.
public final class ModelRunner {
  private let memory = SandboxMemory()
  private let cpu: CPU
  /// Instructions (REP iterations count one each) before a run is declared endless.
  public var stepLimit = 20_000
  /// Whether the model runs cached instructions through its fast handlers (see `CPU.fastPathEnabled`).
  public var fastPath: Bool {
    get { cpu.fastPathEnabled }
    set { cpu.fastPathEnabled = newValue }
  }

  /// A model presenting `vendor` (the difftest uses the host's, so vendor-defined behaviour matches).
  public init(vendor: CPUVendor = .intel) {
    cpu = CPU(model: .host64, memory: memory)
    cpu.system.cpuid.present(vendor)
  }

  /// Runs `code` from `initial`; stops at the INT3 padding after the code, at an exception, or at
  /// an access outside the code page and sandbox (reported as #PF: the native side has no memory there).
  public func run(code: [UInt8], initial: MachineState) -> RunResult {
    memory.load(code: code, sandbox: initial.sandbox)
    if initial.isCompatibility {
      configureCompatibilityUser(initial)
    } else {
      memory.systemAreaMapped = false
      cpu.configureFlatUser64()
      cpu.state.rip = CN_CODE_ADDR
    }
    cpu.reportExceptions = true
    cpu.invalidateTLB()
    for i in 0..<16 { cpu.state.setGPR(i, initial.gpr[i]) }
    cpu.state.rflags = (initial.rflags & 0x0CD5) | 0x202
    let end = CN_CODE_ADDR + UInt64(code.count)
    var outcome = RunOutcome.other("model step limit (\(stepLimit)) reached")
    var faultAddress: UInt64 = 0
    for _ in 0..<stepLimit {
      let rip = cpu.state.rip
      let linear = initial.isCompatibility ? (cpu.state.segmentBase(1) &+ rip) & 0xFFFF_FFFF : rip
      if linear >= end, memory.codeByte(at: linear) == 0xCC,
        initial.isCompatibility ? rip <= cpu.state.segmentLimit(1) : true
      {
        outcome = .completed
        break
      }
      // One instruction through `run`, the engines' entry point: a cached fast form runs in the
      // page-local fast loop, anything else through `step`'s path.
      let event = cpu.run(budget: 1)
      if case .budgetExhausted = event { continue }
      switch event {
      case .exception(let vector, let errorCode):
        outcome = .fault(vector: Int(vector), errorCode: UInt64(errorCode ?? 0))
        if vector == 14 { faultAddress = cpu.state.cr2 }
      case .mmioRead(let address, _), .mmioWrite(let address, _, _):
        _ = address
        outcome = .fault(vector: 14, errorCode: 0)
      default:
        outcome = .other("model event \(event)")
      }
      break
    }
    let state = MachineState(
      gpr: (0..<16).map { cpu.state.gpr($0) }, rip: cpu.state.rip, rflags: cpu.state.rflags,
      sandbox: memory.sandboxBytes(), segments: initial.isCompatibility ? observedSelectors() : [], ldt: initial.ldt)
    return RunResult(outcome: outcome, state: state, faultAddress: faultAddress)
  }

  /// The selectors as the native side can read them: its signal handler runs after the kernel's
  /// return to CPL 3 (IRET), which loads a null selector into DS, ES, FS or GS when the register's
  /// hidden DPL is below 3 and it holds data or non-conforming code (SDM vol. 2 "IRET"). At CPL 3
  /// only a null selector loaded with RPL 1-3 is in that state, so such a selector reads as 0.
  /// The generator never loads one on purpose; a selector read from random memory can be one.
  func observedSelectors() -> [UInt16] {
    SegmentRegister.allCases.prefix(6).map { register in
      let cache = cpu.state.segment(register)
      guard register != .cs && register != .ss else { return cache.selector }
      let conformingCode = cache.attributes & 0x0C == 0x0C
      return SegmentAttributes.dpl(cache.attributes) < 3 && !conformingCode ? 0 : cache.selector
    }
  }

  /// Compatibility mode at CPL 3 as a 64-bit Linux process sees it: long mode active (EFER.LMA,
  /// 4-level paging identity-mapping the code page and the sandbox, so the guard pages around
  /// them are not present), CS.L = 0, the GDT laid out like Linux's and the test's LDT in model
  /// memory, the segment registers loaded from those descriptors. Exceptions are reported, not
  /// delivered, and every segment load goes through the system layer's full checks.
  func configureCompatibilityUser(_ initial: MachineState) {
    cpu.resetReal(cs: 0, ip: 0)
    let state = cpu.state
    state.cr3 = memory.loadCompatibilityTables(ldt: initial.ldt)
    state.cr4 = CR4.pae | 0x200 | 0x400
    state.efer = EFER.lme | EFER.lma | EFER.nxe
    state.cr0 = CR0.pg | CR0.pe | CR0.wp | CR0.ne | CR0.et | CR0.mp
    state.gdtr = (SandboxMemory.SystemArea.gdtLinear, CompatDescriptorTables.gdtLimit)
    state.idtr = (0, 0)
    state.setSegment(
      .ldtr,
      SegmentCache(
        selector: 0x50, base: SandboxMemory.SystemArea.ldtLinear, limit: CompatDescriptorTables.ldtLimit,
        attributes: 0x82))
    state.setSegment(.tr, SegmentCache(selector: 0x40, base: 0, limit: 0x67, attributes: 0x8B))
    state.cpl = 3
    for (i, register) in SegmentRegister.allCases.prefix(6).enumerated() {
      state.setSegment(register, CompatDescriptorTables.cache(initial.segments[i], ldt: initial.ldt))
    }
    cpu.updateCodeMode()
    state.rip = initial.rip
  }
}
