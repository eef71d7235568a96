/// Groups of instructions the differential tester draws from, each with a weight.
public enum InstructionClass: String, CaseIterable, Sendable, Comparable {
  case alu, shift, shiftDouble = "shld-shrd", mulDiv = "muldiv", bitTest = "bittest", bitScan = "bsf-bsr"
  case tzcntLzcnt = "tzcnt-lzcnt", popcnt, condition = "cmov-setcc", exchange, string, stack, lea, move
  case bswap, convert, flags, branch, loop, enterLeave = "enter-leave", invalid, movbe, bmi
  /// SSE/SSE2 moves, integer, bitwise and shuffle instructions on XMM registers
  /// (`ProgramGenerator+SSE.swift`).
  case sse
  /// SSE3, SSSE3, SSE4.1 and SSE4.2 on XMM registers, CRC32 (`ProgramGenerator+SSE4.swift`).
  case sse4
  /// MMX on MM registers, the SSE/SSSE3 forms on them, EMMS, the MM/XMM moves and conversions
  /// (`ProgramGenerator+MMX.swift`).
  case mmx
  /// RCPPS/RCPSS/RSQRTPS/RSQRTSS, compared with the SDM's error bound
  /// (`ProgramGenerator+Approximations.swift`).
  case rcp
  /// The x87 instructions the model implements (`X87Form.implemented`), on random interesting
  /// x87 states (`ProgramGenerator+X87.swift`).
  case x87
  /// Every x87 instruction form (`X87Form.all`), implemented or not.
  case x87All = "x87-all"
  /// F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN, FCOS, FSINCOS, FPTAN on fresh operands, results
  /// compared within an ulp (`ProgramGenerator+X87Transcendental.swift`).
  case x87Transcendental = "x87-transcendental"
  // Compatibility mode only (16- and 32-bit code with segments of its own):
  /// MOV Sreg, POP Sreg, LDS/LES/LSS/LFS/LGS with valid, null, out-of-limit, wrong-type,
  /// privilege-mismatched, not-present and empty-descriptor selectors.
  case segmentLoad = "seg-load"
  /// MOV r/m, Sreg and PUSH/POP Sreg at both operand sizes.
  case segmentMove = "seg-move"
  /// PUSH/POP/CALL/RET/PUSHF/PUSHA with a stack whose B bit differs from the code size (SP vs ESP).
  case stackSize = "stack-size"
  /// String instructions with 16-bit addressing (or 32-bit in 16-bit code), REP with CX or ECX.
  case string16 = "string-a16"
  /// Memory operands through every segment register near its limits (expand-up and expand-down),
  /// read-only and execute-only segments, null segments, and operands split across a guard page.
  case segmentLimit = "seg-limit"

  /// The classes a mode generates: the compatibility-only ones there (plus ENTER/LEAVE at every
  /// nesting level), every other class in 64-bit mode.
  public static func classes(for mode: DiffTestMode) -> [InstructionClass] {
    mode.isCompatibility ? compatibilityClasses : allCases.filter { !compatibilityOnly.contains($0) }
  }

  /// The classes only compatibility mode generates.
  static let compatibilityOnly: [InstructionClass] = [
    .segmentLoad, .segmentMove, .stackSize, .string16, .segmentLimit,
  ]

  /// The classes with a compatibility-mode generator.
  public static let compatibilityClasses: [InstructionClass] = [
    .segmentLoad, .segmentMove, .stackSize, .enterLeave, .string16, .segmentLimit,
  ]

  /// The classes a run without `--class` draws from: those of `mode` but `rcp` and
  /// `x87-transcendental`, whose approximate results would make later instructions of other
  /// classes differ, and the x87 classes, whose random x87 states are run alone.
  public static func defaultClasses(for mode: DiffTestMode) -> [InstructionClass] {
    classes(for: mode).filter { ![.rcp, .x87, .x87All, .x87Transcendental].contains($0) }
  }

  /// Whether `mode` can generate this class.
  public func isAvailable(in mode: DiffTestMode) -> Bool { Self.classes(for: mode).contains(self) }

  /// Relative frequency in a random program.
  public var weight: Int {
    switch self {
    case .alu: 20
    case .shift: 10
    case .shiftDouble: 3
    case .mulDiv: 6
    case .bitTest: 5
    case .bitScan: 3
    case .tzcntLzcnt: 2
    case .popcnt: 1
    case .condition: 6
    case .exchange: 6
    case .string: 6
    case .stack: 6
    case .lea: 4
    case .move: 6
    case .bswap: 2
    case .convert: 3
    case .flags: 4
    case .branch: 5
    case .loop: 2
    case .enterLeave: 2
    case .invalid: 1
    case .movbe: 1
    case .bmi: 4
    case .sse: 8
    case .sse4: 8
    case .mmx: 8
    case .rcp: 4
    case .x87, .x87All, .x87Transcendental: 8
    case .segmentLoad: 8
    case .segmentMove: 5
    case .stackSize: 6
    case .string16: 5
    case .segmentLimit: 8
    }
  }

  /// The CPUID feature the whole class needs, if any. (LAHF/SAHF in `flags` and CMPXCHG16B in
  /// `exchange` are left out of their classes individually when the host lacks them.)
  public var requiredFeature: HostFeature? {
    switch self {
    case .tzcntLzcnt: .bmi1AndLzcnt
    case .popcnt: .popcnt
    case .movbe: .movbe
    case .bmi: .bmi1AndBmi2
    case .sse4, .mmx: .sse42
    default: nil
    }
  }

  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Host CPU features some instruction classes need.
public enum HostFeature: String, Sendable, CaseIterable {
  case bmi1AndLzcnt = "BMI1+LZCNT"
  case popcnt = "POPCNT"
  case movbe = "MOVBE"
  case lahfSahf = "LAHF/SAHF in 64-bit mode"
  case cmpxchg16b = "CMPXCHG16B"
  case bmi1AndBmi2 = "BMI1+BMI2"
  case sse42 = "SSE3+SSSE3+SSE4.1+SSE4.2"
}
