import CNative
import Translator
import X86

/// How the model runs a 64-bit difftest program.
public enum DiffTestEngine: String, CaseIterable, Sendable {
  /// The interpreter, one `CPU.run(budget: 1)` per instruction.
  case interp
  /// The dynamic binary translator (`DynamicTranslator`) attached to the model CPU, the whole
  /// program in one `CPU.run` so translated blocks execute; always with paging (the translator
  /// does not run in the flat-user mode).
  case dbt
}

/// Runs programs on the X86 model from the same state as the native runner: in 64-bit user mode
/// (flat, or with paging at CPL 3), or in compatibility mode with the host's GDT layout and the
/// test's LDT.
public final class ModelRunner {
  private let memory = SandboxMemory()
  private let cpu: CPU
  /// The translator attached to the CPU with `.dbt`.
  private let translator: DynamicTranslator?
  /// Instructions (REP iterations count one each) before a run is declared endless.
  public var stepLimit = 20_000
  /// Whether the model runs cached instructions through its fast handlers (see `CPU.fastPathEnabled`).
  public var fastPath: Bool {
    get { cpu.fastPathEnabled }
    set { cpu.fastPathEnabled = newValue }
  }
  /// How 64-bit programs run (compatibility-mode programs always run on the interpreter).
  public let engine: DiffTestEngine
  /// Whether 64-bit programs run with 4-level paging at CPL 3 (`configurePagedUser64`) instead of
  /// the flat-user mode; always true for `.dbt`.
  public let paging: Bool
  /// Runs so far, and whether the last one left the paged 64-bit mode's tables in place.
  private var runs = 0
  private var pagedTablesCurrent = false
  /// Instructions the model retired over all runs (REP iterations count one each).
  public private(set) var retiredInstructions: UInt64 = 0
  /// Of `retiredInstructions`, those translated code completed (0 without the translator).
  public var translatedInstructions: UInt64 { translator?.statistics.translatedInstructions ?? 0 }
  /// The translator's counters (`dbt-...`), empty without it.
  public var translatorCounters: [(name: String, value: UInt64, description: String)] {
    translator?.counters ?? []
  }

  /// A model presenting `vendor` (the difftest uses the host's, so vendor-defined behaviour
  /// matches), running 64-bit programs on `engine`, with paging when `paging` (or `.dbt`).
  /// `translatorCodeBytes` is the translator's code buffer: a small one makes it start over now
  /// and then, as each program's blocks are new.
  public init(
    vendor: CPUVendor = .intel, engine: DiffTestEngine = .interp, paging: Bool = false,
    translatorCodeBytes: Int = 4 << 20
  ) throws(NativeRunnerError) {
    cpu = CPU(model: .host64, memory: memory)
    cpu.system.cpuid.present(vendor)
    self.engine = engine
    self.paging = paging || engine == .dbt
    translator = engine == .dbt ? try DynamicTranslator.attached(to: cpu, codeBytes: translatorCodeBytes) : nil
  }

  /// Runs `code` from `initial`; stops at the INT3 padding after the code, at an exception, or at
  /// an access outside the code page and sandbox (reported as #PF: the native side has no memory there).
  public func run(code: [UInt8], initial: MachineState) -> RunResult {
    memory.load(code: code, sandbox: initial.sandbox)
    if initial.isCompatibility {
      configureCompatibilityUser(initial)
    } else if paging {
      configurePagedUser64()
    } else {
      memory.systemAreaMapped = false
      cpu.configureFlatUser64()
      cpu.state.rip = CN_CODE_ADDR
    }
    cpu.reportExceptions = true
    // The paged 64-bit mode's page tables never change, so its TLB and host-page cache may stay
    // warm between programs (only the code is new): translated memory accesses then take their
    // inline path from a program's first access on. Every 8th run starts cold, so the side exits
    // on a TLB or host-page miss are exercised too.
    runs &+= 1
    if paging && !initial.isCompatibility && pagedTablesCurrent && runs % 8 != 0 {
      cpu.invalidateDecodedCode()
    } else {
      cpu.invalidateTLB()
    }
    pagedTablesCurrent = paging && !initial.isCompatibility
    for i in 0..<16 { cpu.state.setGPR(i, initial.gpr[i]) }
    cpu.loadFXSAVEImage(initial.fx.count == FXLayout.size ? initial.fx : MachineState.defaultFX)
    cpu.state.rflags = (initial.rflags & 0x0CD5) | 0x202
    let end = CN_CODE_ADDR + UInt64(code.count)
    var outcome = RunOutcome.other("model step limit (\(stepLimit)) reached")
    var faultAddress: UInt64 = 0
    let retiredBefore = cpu.instructionsRetired
    defer { retiredInstructions &+= cpu.instructionsRetired &- retiredBefore }
    if engine == .dbt && !initial.isCompatibility {
      (outcome, faultAddress) = runWhole(end: end)
    } else {
      (outcome, faultAddress) = runStepping(end: end, compatibility: initial.isCompatibility)
    }
    let state = MachineState(
      gpr: (0..<16).map { cpu.state.gpr($0) }, rip: cpu.state.rip, rflags: cpu.state.rflags,
      sandbox: memory.sandboxBytes(), segments: initial.isCompatibility ? observedSelectors() : [], ldt: initial.ldt,
      fx: cpu.fxsaveImage())
    return RunResult(outcome: outcome, state: state, faultAddress: faultAddress)
  }

  /// The whole program in one `CPU.run` with the step limit as its budget, so the translator
  /// enters every block that fits (all of them, as the budget exceeds any program). The run ends
  /// at the INT3 padding after the code, which the model reports as #BP with RIP at it, as the
  /// native side's SIGTRAP ends there; a fault mid-block leaves the block (a side exit) and the
  /// interpreter raises it.
  private func runWhole(end: UInt64) -> (RunOutcome, UInt64) {
    let event = cpu.run(budget: UInt64(stepLimit))
    let rip = cpu.state.rip
    switch event {
    case .budgetExhausted:
      return (.other("model step limit (\(stepLimit)) reached"), 0)
    case .exception(3, _) where rip >= end && memory.codeByte(at: rip) == 0xCC:
      return (.completed, 0)
    default:
      return classify(event)
    }
  }

  /// One instruction at a time until RIP reaches the INT3 padding after the code.
  private func runStepping(end: UInt64, compatibility: Bool) -> (RunOutcome, UInt64) {
    for _ in 0..<stepLimit {
      let rip = cpu.state.rip
      let linear = compatibility ? (cpu.state.segmentBase(1) &+ rip) & 0xFFFF_FFFF : rip
      if linear >= end, memory.codeByte(at: linear) == 0xCC,
        compatibility ? rip <= cpu.state.segmentLimit(1) : true
      {
        return (.completed, 0)
      }
      // One instruction through `run`, the engines' entry point: a cached fast form runs in the
      // page-local fast loop, anything else through `step`'s path.
      let event = cpu.run(budget: 1)
      if case .budgetExhausted = event { continue }
      return classify(event)
    }
    return (.other("model step limit (\(stepLimit)) reached"), 0)
  }

  /// The outcome an event other than the end of the budget means, and CR2 for a #PF.
  private func classify(_ event: CPUEvent) -> (RunOutcome, UInt64) {
    switch event {
    case .exception(let vector, let errorCode):
      return (.fault(vector: Int(vector), errorCode: UInt64(errorCode ?? 0)), vector == 14 ? cpu.state.cr2 : 0)
    case .mmioRead, .mmioWrite:
      return (.fault(vector: 14, errorCode: 0), 0)
    default:
      return (.other("model event \(event)"), 0)
    }
  }

  /// 64-bit user code at CPL 3 with 4-level paging, as a Linux process runs: the code page mapped
  /// user RWX (the native child maps it so) and the sandbox user RW NX, identity-mapped, nothing
  /// else present below the kernel half (so the guard pages fault with P clear, as on the host);
  /// the GDT (Linux's layout), an IDT of not-present gates and a TSS without an I/O bitmap in
  /// supervisor pages of the kernel half; the segment registers as `configureFlatUser64` sets
  /// them. Exceptions are reported, not delivered.
  func configurePagedUser64() {
    cpu.resetReal(cs: 0, ip: 0)
    let state = cpu.state
    state.cr3 = memory.loadUser64Tables()
    state.cr4 = CR4.pae | 0x200 | 0x400
    state.efer = EFER.lme | EFER.lma | EFER.nxe
    state.cr0 = CR0.pg | CR0.pe | CR0.wp | CR0.ne | CR0.et | CR0.mp
    let gdt = SandboxMemory.SystemArea.kernelGDTLinear
    state.gdtr = (gdt, CompatDescriptorTables.gdtLimit)
    state.idtr = (gdt + 0x2000, 0xFFF)
    state.setSegment(.ldtr, SegmentCache(selector: 0, base: 0, limit: 0, attributes: 0x82))
    state.setSegment(.tr, SegmentCache(selector: 0x40, base: gdt + 0x3000, limit: 0x67, attributes: 0x8B))
    state.cpl = 3
    let code = CompatDescriptorTables.cache(CompatDescriptorTables.user64Code, ldt: [])
    let data = CompatDescriptorTables.cache(CompatDescriptorTables.userData, ldt: [])
    state.setSegment(.cs, code)
    for register in [SegmentRegister.ss, .ds, .es] { state.setSegment(register, data) }
    state.setSegment(.fs, SegmentCache(selector: 0, base: 0, limit: 0xFFFF_FFFF, attributes: 0))
    state.setSegment(.gs, SegmentCache(selector: 0, base: 0, limit: 0xFFFF_FFFF, attributes: 0))
    state.rflags = Flags.reserved1 | Flags.if
    cpu.updateCodeMode()
    state.rip = CN_CODE_ADDR
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

extension DynamicTranslator {
  /// A translator with a code buffer of `codeBytes`, attached to `cpu` (the model runners' way to
  /// run their programs on dbt).
  static func attached(to cpu: CPU, codeBytes: Int) throws(NativeRunnerError) -> DynamicTranslator {
    do throws(TranslatorError) {
      let t = try DynamicTranslator(codeBytes: codeBytes)
      cpu.blockExecutor = t
      return t
    } catch {
      throw NativeRunnerError(description: "cannot create the translator: \(error.description)")
    }
  }
}
