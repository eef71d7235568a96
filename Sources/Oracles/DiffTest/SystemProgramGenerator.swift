import X86

/// A generated system-level program and the machine state it starts from.
public struct SystemProgram: Sendable {
  public var seed: UInt64
  /// Code sections (main code, functions) at their guest addresses.
  var sections: [(base: UInt64, bytes: [UInt8])]
  var entry: UInt64
  var gprs: [UInt64]
  var interruptsEnabled: Bool
  var cr3: UInt64
  var globalPages: Bool
  var faultFlags: [UInt64]
  var handlerInvalidates: Bool
  /// The timer: its intervals (in retired instructions) come from this seed, uniform in
  /// 1...2 * `timerMean`.
  var timerSeed: UInt64
  var timerMean: Int
  /// The top-level items, by kind, with their start addresses (for listings), and which were left
  /// out (reduction).
  var items: [(kind: String, address: UInt64)]
  var skipped: Set<Int>
  /// Ranges of the main code that hold 32-bit code (listed in that mode).
  var code32: [Range<UInt64>]
}

extension SystemProgram {
  /// A program written by hand (tests): `body` emits the main code at `SystemLayout.code`, which
  /// starts at CPL 0 with every fault page present and writable.
  static func handWritten(interruptsEnabled: Bool = true, _ body: (inout SystemAssembler) -> Void) -> SystemProgram {
    var a = SystemAssembler(sections: [(SystemLayout.code, SystemLayout.codeSize)])
    body(&a)
    var gprs = [UInt64](repeating: 0, count: 16)
    gprs[4] = SystemLayout.userStackTop
    return SystemProgram(
      seed: 0, sections: a.assemble()!, entry: SystemLayout.code, gprs: gprs, interruptsEnabled: interruptsEnabled,
      cr3: SystemLayout.pml4A, globalPages: false,
      faultFlags: Array(repeating: PTE.present | PTE.writable | PTE.user, count: SystemLayout.faultPageCount),
      handlerInvalidates: false, timerSeed: 0, timerMean: 1_000_000, items: [], skipped: [], code32: [])
  }
}

/// Generates random system-level programs for `SystemDiffTester`: straight-line code made of
/// *items*, each a self-contained snippet — bursts of the translated instruction forms (ALU, MOV,
/// LEA, MOVZX/MOVSX, IMUL, shifts, CMOVcc/SETcc, PUSH/POP) over several data pages, forward
/// branches, counted loops (backward Jcc), calls into functions on other pages, and the system
/// events: page faults the handler fixes, PTE rewrites with and without INVLPG or a CR3 reload,
/// alias remaps, CR3 switches, self-modifying stores, CPUID, RDTSC(P), MSRs, SWAPGS, SYSCALL /
/// SYSRET / IRETQ between CPL 0 and 3, a trip through 32-bit compatibility mode, INT n, port I/O,
/// PUSHF/POPF with IF, TF and AC, CLI/STI/HLT, debug registers with armed breakpoints,
/// non-canonical addresses, divide errors, CR0.WP / CR4.PGE / CR8 writes.
///
/// Every instruction that may fault in a way the handler cannot fix runs with R14 holding the
/// address to resume at (the handler clears it), so a program stays on its path whatever the
/// privilege level really is; R15 is the loop counter; RSP stays in the user stack. A skipped
/// item (`skip`, for reduction) consumes the same random numbers but emits nothing.
struct SystemProgramGenerator {
  var rng: RandomSource
  var asm = SystemAssembler(sections: [
    (SystemLayout.code, SystemLayout.codeSize - 64), (SystemLayout.functions, SystemLayout.functionsSize),
  ])
  /// The generator's belief (exact unless a fault or a skipped item changed it).
  var cpl = 0
  var interruptsOn = true
  var inLoop = false
  var code32: [Range<UInt64>] = []
  let skip: Set<Int>
  let itemCount: Int
  let seed: UInt64

  /// Registers the program may write: all but RSP, R14 (resume address) and R15 (loop counter).
  static let free = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]

  init(seed: UInt64, items: Int, skip: Set<Int> = []) {
    self.seed = seed
    rng = RandomSource(seed: seed)
    itemCount = items
    self.skip = skip
  }

  mutating func generate() -> SystemProgram {
    let gprs = (0..<16).map { r -> UInt64 in
      switch r {
      case 4: return SystemLayout.userStackTop
      case 14, 15: return 0
      default: return rng.interesting(bits: 64)
      }
    }
    interruptsOn = rng.chance(0.8)
    let cr3 = rng.chance(0.5) ? SystemLayout.pml4A : SystemLayout.pml4B
    let global = rng.chance(0.5)
    let faultFlags = (0..<SystemLayout.faultPageCount).map { _ -> UInt64 in
      var f = PTE.present | PTE.writable | PTE.user
      switch rng.below(5) {
      case 0: f &= ~PTE.present
      case 1: f &= ~PTE.writable
      case 2: f &= ~PTE.user
      case 3: f = rng.chance(0.5) ? PTE.user : PTE.writable
      default: break
      }
      return f
    }
    let handlerInvalidates = rng.chance(0.5)
    let timerSeed = rng.next()
    let timerMean = rng.pick([15, 100, 400, 2000, 10000])
    var items: [(String, UInt64)] = []
    for i in 0..<itemCount {
      guard asm.room > 600 else { break }
      let start = asm.here
      let saved = asm
      let compatRanges = code32.count
      let kind = item()
      if skip.contains(i) {
        asm.discard(since: saved)
        code32.removeLast(code32.count - compatRanges)
      }
      items.append((kind, start))
    }
    // The end: the exit port (allowed at CPL 3 too).
    asm.current = 0
    asm.movImm32(2, UInt32(SystemLayout.exitPort))
    asm.raw([0xEF, 0xF4, 0xEB, 0xFD])  // out dx, eax; hlt; jmp $-1
    let sections = asm.assemble() ?? [(SystemLayout.code, [0xBA, 0xE1, 0, 0, 0, 0xEF, 0xF4])]
    return SystemProgram(
      seed: seed, sections: sections, entry: SystemLayout.code, gprs: gprs, interruptsEnabled: interruptsOn,
      cr3: cr3, globalPages: global, faultFlags: faultFlags, handlerInvalidates: handlerInvalidates,
      timerSeed: timerSeed, timerMean: timerMean, items: items, skipped: skip, code32: code32)
  }

  // MARK: Items

  /// One top-level item; returns its kind.
  private mutating func item() -> String {
    switch rng.below(100) {
    case 0..<22: burst(rng.below(8) + 2); return "burst"
    case 22..<28: forwardBranch(); return "branch"
    case 28..<38: loop(); return "loop"
    case 38..<42: callFunction(); return "call"
    case 42..<48: faultAccess(); return "fault-page"
    case 48..<52: reprotect(); return "pte-protect"
    case 52..<55: aliasRemap(); return "pte-alias"
    case 55..<57: cr3Reload(); return "cr3"
    case 57..<59: invlpgSomewhere(); return "invlpg"
    case 59..<64: selfModify(); return "smc"
    case 64..<66: cpuidOrTSC(); return "cpuid-tsc"
    case 66..<69: msr(); return "msr"
    case 69..<74: privilegeChange(); return "privilege"
    case 74..<76: compatibilityTrip(); return "compat32"
    case 76..<79: softwareInterrupt(); return "int"
    case 79..<82: portIO(); return "io"
    case 82..<86: flags(); return "flags"
    case 86..<88: interruptFlag(); return "cli-sti-hlt"
    case 88..<91: debugRegisters(); return "debug"
    case 91..<94: nonCanonical(); return "noncanonical"
    case 94..<96: divideError(); return "divide"
    default: controlRegisters(); return "cr-write"
    }
  }
}
