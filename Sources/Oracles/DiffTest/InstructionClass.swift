/// Groups of instructions the differential tester draws from, each with a weight.
public enum InstructionClass: String, CaseIterable, Sendable, Comparable {
  case alu, shift, shiftDouble = "shld-shrd", mulDiv = "muldiv", bitTest = "bittest", bitScan = "bsf-bsr"
  case tzcntLzcnt = "tzcnt-lzcnt", popcnt, condition = "cmov-setcc", exchange, string, stack, lea, move
  case bswap, convert, flags, branch, loop, enterLeave = "enter-leave", invalid, movbe, bmi

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
}
