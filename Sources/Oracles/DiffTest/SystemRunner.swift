import Translator
import X86

/// Something the guest did that the system difftest records, with when (instructions retired)
/// and where (RIP, CPL) it happened and a hash of the general registers and RFLAGS then.
struct SystemEvent: Equatable, CustomStringConvertible {
  enum Kind: Equatable {
    case output(port: UInt16, size: Int, value: UInt64)
    case input(port: UInt16, size: Int, value: UInt64)
    /// The timer's interrupt, delivered by the run loop (`halted`: it ended a HLT).
    case interrupt(vector: UInt8, halted: Bool)
    case halt
    /// How the run ended.
    case end(String)
  }

  var kind: Kind
  var retired: UInt64
  var rip: UInt64
  var cpl: Int
  var registers: UInt64

  var description: String {
    let what: String
    switch kind {
    case .output(let port, let size, let value):
      what = "OUT port 0x\(sysHex(UInt64(port))) size \(size) value 0x\(sysHex(value))"
    case .input(let port, let size, let value):
      what = "IN port 0x\(sysHex(UInt64(port))) size \(size) -> 0x\(sysHex(value))"
    case .interrupt(let vector, let halted):
      what = "interrupt 0x\(sysHex(UInt64(vector)))" + (halted ? " (ends HLT)" : "")
    case .halt: what = "HLT"
    case .end(let reason): what = "end: \(reason)"
    }
    return "@\(retired) rip 0x\(sysHex(rip)) cpl \(cpl) regs #\(sysHex(registers)): \(what)"
  }
}

func sysHex(_ v: UInt64) -> String { String(v, radix: 16) }

/// What a run left: its events, the instructions it retired, the CPU state page's architectural
/// words (named), a few CPU flags outside the page, and the machine's memory (in the runner).
struct SystemTrace {
  var events: [SystemEvent] = []
  var retired: UInt64 = 0
  var state: [(name: String, value: UInt64)] = []
}

/// Runs system programs on one X86 model CPU over `SystemMemory`, with a `DynamicTranslator`
/// attached or without (the interpreter alone). The run loop is the VMM's, reduced: `CPU.run`
/// with a budget up to the next timer deadline (the deterministic instruction clock: RDTSC reads
/// the instructions retired), the timer's interrupt delivered at the first boundary where the CPU
/// accepts one (one instruction at a time while it does not), IN answered with a value derived
/// from the port and the time, OUT and HLT recorded, a write to the exit port ending the run.
final class SystemRunner {
  static let kernel = SystemKernel()

  let memory = SystemMemory()
  let cpu: CPU
  let translator: DynamicTranslator?
  /// Instructions a program may retire before the run is cut off.
  var instructionLimit: UInt64 = 200_000

  init(translated: Bool, codeBytes: Int = 8 << 20) throws(NativeRunnerError) {
    cpu = CPU(model: .host64, memory: memory)
    cpu.system.cpuid.present(HostCPU.detect().vendor)
    let cpu = self.cpu
    cpu.readTSC = { [unowned cpu] in cpu.instructionsRetired }
    translator = translated ? try DynamicTranslator.attached(to: cpu, codeBytes: codeBytes) : nil
  }

  /// Loads `program` into a fresh machine and runs it to its end.
  func run(_ program: SystemProgram) -> SystemTrace {
    load(program)
    return runLoaded(program)
  }

  /// Puts the machine in `program`'s starting state (memory, page tables, CPU), nothing run yet.
  func load(_ program: SystemProgram) {
    Self.loadMemory(memory, for: program)
    Self.configure(cpu, for: program)
  }

  /// Writes the kernel, the page tables and `program`'s code into `memory`.
  static func loadMemory(_ memory: SystemMemory, for program: SystemProgram) {
    memory.load(kernel.image)
    SystemKernel.writePageTables(into: memory, faultFlags: program.faultFlags, global: program.globalPages)
    for s in program.sections { memory.write(s.bytes, at: s.base) }
    memory.write64(program.handlerInvalidates ? 1 : 0, at: SystemLayout.handlerInvalidates)
  }

  /// Puts `cpu` in `program`'s starting state (CPL 0, paging on, at the program's entry).
  static func configure(_ cpu: CPU, for program: SystemProgram) {
    cpu.configureSystemDiff(
      cr3: program.cr3, global: program.globalPages, syscallEntry: kernel.syscallEntry, abortEntry: kernel.abortEntry)
    let s = cpu.state
    for (i, v) in program.gprs.enumerated() { s.setGPR(i, v) }
    s.rip = program.entry
    s.rflags = 0x2 | (program.interruptsEnabled ? Flags.if : 0)
  }

  private func runLoaded(_ program: SystemProgram) -> SystemTrace {
    let s = cpu.state

    var trace = SystemTrace()
    var timer = RandomSource(seed: program.timerSeed)
    func interval() -> UInt64 { UInt64(timer.below(2 * program.timerMean) + 1) }
    var deadline = interval()
    var pending = false
    var halted = false
    var inputs: UInt64 = 0
    var calls = 0
    func record(_ kind: SystemEvent.Kind) {
      var h: UInt64 = 0xCBF2_9CE4_8422_2325
      for i in 0..<16 { h = (h ^ s.gpr(i)) &* 0x100_0000_01B3 }
      h = (h ^ s.rflags) &* 0x100_0000_01B3
      trace.events.append(
        SystemEvent(kind: kind, retired: cpu.instructionsRetired, rip: s.rip, cpl: s.cpl, registers: h))
    }
    run: while true {
      calls += 1
      let retired = cpu.instructionsRetired
      if retired >= instructionLimit || calls > 4 * Int(instructionLimit) {
        record(.end("instruction limit"))
        break
      }
      if halted || (pending && cpu.canAcceptExternalInterrupt) {
        guard cpu.canAcceptExternalInterrupt else {
          record(.end(s.rflags & Flags.if == 0 ? "HLT with IF clear" : "HLT in an interrupt shadow"))
          break
        }
        record(.interrupt(vector: SystemLayout.timerVector, halted: halted))
        pending = false
        halted = false
        if let e = cpu.deliverExternalInterrupt(vector: SystemLayout.timerVector) {
          record(.end("interrupt delivery: \(e)"))
          break
        }
        deadline = cpu.instructionsRetired &+ interval()
        continue
      }
      if !pending && retired >= deadline {
        pending = true
        continue
      }
      let chunk = pending ? 1 : min(deadline - retired, instructionLimit - retired)
      let event = cpu.run(budget: chunk)
      switch event {
      case .budgetExhausted:
        continue
      case .portOut(let port, let size, let value):
        record(.output(port: port, size: size, value: value))
        if port == SystemLayout.exitPort {
          record(.end("exit port"))
          break run
        }
      case .portIn(let port, let size):
        inputs &+= 1
        var v = (UInt64(port) << 32 | inputs) &* 0x9E37_79B9_7F4A_7C15 ^ cpu.instructionsRetired
        if size < 8 { v &= (1 << UInt64(size * 8)) - 1 }
        cpu.complete(value: v)
        record(.input(port: port, size: size, value: v))
      case .halt:
        record(.halt)
        halted = true
      default:
        record(.end("\(event)"))
        break run
      }
    }
    trace.retired = cpu.instructionsRetired
    trace.state = snapshot()
    return trace
  }

  /// The state page's architectural words, by name, and the CPU's interrupt shadow and NMI block.
  private func snapshot() -> [(name: String, value: UInt64)] {
    var out: [(String, UInt64)] = []
    let s = cpu.state
    for (o, name) in Self.stateWords { out.append((name, s[offset: o])) }
    out.append(("interrupt shadow", cpu.interruptShadow ? 1 : 0))
    out.append(("NMI blocked", cpu.nmiBlocked ? 1 : 0))
    return out
  }

  /// Every architectural word of the state page (the translator's scratch words and the reserved
  /// lazy-flag room excluded), with a name.
  static let stateWords: [(Int, String)] = {
    var words: [(Int, String)] = []
    let gprs = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + (8...15).map { "r\($0)" }
    for (i, n) in gprs.enumerated() { words.append((i * 8, n)) }
    words.append((CPUStateLayout.rip, "rip"))
    words.append((CPUStateLayout.rflags, "rflags"))
    for (i, seg) in ["es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"].enumerated() {
      for (k, field) in ["selector", "base", "limit", "attributes"].enumerated() {
        words.append((CPUStateLayout.segments + i * CPUStateLayout.segmentStride + k * 8, "\(seg).\(field)"))
      }
    }
    let named: [(Int, String)] = [
      (0x1C0, "gdtr.base"), (0x1C8, "gdtr.limit"), (0x1D0, "idtr.base"), (0x1D8, "idtr.limit"), (0x1E0, "cr0"),
      (0x1E8, "cr2"), (0x1F0, "cr3"), (0x1F8, "cr4"), (0x200, "cr8"), (0x208, "efer"),
    ]
    words += named
    for n in 0..<8 { words.append((CPUStateLayout.debugRegisters + n * 8, "dr\(n)")) }
    let msrs = [
      "star", "lstar", "cstar", "sfmask", "sysenter_cs", "sysenter_esp", "sysenter_eip", "kernel_gs_base", "tsc_aux",
      "pat", "apic_base", "tsc_offset", "cpl", "code mode",
    ]
    for (i, n) in msrs.enumerated() { words.append((CPUStateLayout.star + i * 8, n)) }
    for o in stride(from: 0x300, to: CPUStateLayout.size, by: 8) { words.append((o, "state+0x\(sysHex(UInt64(o)))")) }
    return words
  }()
}
