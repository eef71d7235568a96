/// Operand specifications of the opcode tables (SDM opcode-map notation).
enum OperandSpec: UInt8 {
  case none
  case Eb, Ew, Ed, Eq, Ev, Ey, Gb, Gw, Gd, Gv, Gy, Gz
  case Ib, Iw, Iz, Iv, Ibs, Jb, Jz
  case M, Mb, Mw, Md, Mq, Mp, Ms, My
  case Ob, Ov, Sw, AL, CL, DX, rAX, eAX
  case Zb, Zv, Zq, Zy, Ap, Cd, Dd, Ry, Rv, One
  case Vx, Wx, Ux
  case ES, CS, SS, DS, FS, GS
  case Xb, Xv, Xz, Yb, Yv, Yz

  /// True if the spec needs a ModRM byte.
  var needsModRM: Bool {
    switch self {
    case .Eb, .Ew, .Ed, .Eq, .Ev, .Ey, .Gb, .Gw, .Gd, .Gv, .Gy, .Gz, .M, .Mb, .Mw, .Md, .Mq, .Mp, .Ms, .My, .Sw,
      .Cd, .Dd, .Ry, .Rv, .Vx, .Wx, .Ux:
      return true
    default: return false
    }
  }
}

/// Per-entry attributes.
struct EntryFlags: OptionSet {
  let rawValue: UInt16
  static let lockable = EntryFlags(rawValue: 1 << 0)
  static let invalid64 = EntryFlags(rawValue: 1 << 1)
  static let only64 = EntryFlags(rawValue: 1 << 2)
  static let default64 = EntryFlags(rawValue: 1 << 3)
  static let force64 = EntryFlags(rawValue: 1 << 4)
  static let memoryOnly = EntryFlags(rawValue: 1 << 5)
  static let registerOnly = EntryFlags(rawValue: 1 << 6)
  static let undocumented = EntryFlags(rawValue: 1 << 7)
  static let needs186 = EntryFlags(rawValue: 1 << 8)
  static let needs286 = EntryFlags(rawValue: 1 << 9)
  /// grp3 TEST: the immediate follows the ModRM operand.
  static let addImmediate = EntryFlags(rawValue: 1 << 10)
}

/// One parsed opcode-table entry.
struct OpcodeEntry {
  var operation: Operation = .invalid
  /// Non-empty for a group opcode: the ModRM reg field selects from `OpcodeTables.groups[group]`.
  var group: Int = -1
  var specs: [OperandSpec] = []
  var flags: EntryFlags = []
  var isValid: Bool { operation != .invalid || group >= 0 }

  static let operationByName: [String: Operation] = {
    var d: [String: Operation] = [:]
    for op in Operation.allCases { d[String(describing: op)] = op }
    return d
  }()

  init() {}

  /// Parses "mnemonic specs flags" (see `OpcodeTables`).
  init(_ text: String) {
    let words = text.split(separator: " ").map(String.init)
    guard let first = words.first else { return }
    if first.hasPrefix("grp") {
      group = ParsedTables.groupNames.firstIndex(of: first) ?? -1
    } else {
      operation = OpcodeEntry.operationByName[first] ?? .invalid
    }
    for w in words.dropFirst() {
      switch w {
      case "L": flags.insert(.lockable)
      case "i64": flags.insert(.invalid64)
      case "o64": flags.insert(.only64)
      case "d64": flags.insert(.default64)
      case "f64": flags.insert(.force64)
      case "mem": flags.insert(.memoryOnly)
      case "reg": flags.insert(.registerOnly)
      case "u": flags.insert(.undocumented)
      case "186": flags.insert(.needs186)
      case "286": flags.insert(.needs286)
      case "386": break
      case "+I": flags.insert(.addImmediate)
      default:
        specs = w.split(separator: ",").map { OpcodeEntry.spec(String($0)) }
      }
    }
  }

  static func spec(_ s: String) -> OperandSpec {
    switch s {
    case "Eb": return .Eb
    case "Ew": return .Ew
    case "Ed": return .Ed
    case "Eq": return .Eq
    case "Ev": return .Ev
    case "Ey": return .Ey
    case "Gb": return .Gb
    case "Gw": return .Gw
    case "Gd": return .Gd
    case "Gv": return .Gv
    case "Gy": return .Gy
    case "Gz": return .Gz
    case "Ib": return .Ib
    case "Iw": return .Iw
    case "Iz": return .Iz
    case "Iv": return .Iv
    case "Ibs": return .Ibs
    case "Jb": return .Jb
    case "Jz": return .Jz
    case "M": return .M
    case "Mb": return .Mb
    case "Mw": return .Mw
    case "Md": return .Md
    case "Mq": return .Mq
    case "Mp": return .Mp
    case "Ms": return .Ms
    case "My": return .My
    case "Ob": return .Ob
    case "Ov": return .Ov
    case "Sw": return .Sw
    case "AL": return .AL
    case "CL": return .CL
    case "DX": return .DX
    case "rAX": return .rAX
    case "eAX": return .eAX
    case "Zb": return .Zb
    case "Zv": return .Zv
    case "Zq": return .Zq
    case "Zy": return .Zy
    case "Ap": return .Ap
    case "Cd": return .Cd
    case "Dd": return .Dd
    case "Ry": return .Ry
    case "Rv": return .Rv
    case "One": return .One
    case "Vx": return .Vx
    case "Wx": return .Wx
    case "Ux": return .Ux
    case "ES": return .ES
    case "CS": return .CS
    case "SS": return .SS
    case "DS": return .DS
    case "FS": return .FS
    case "GS": return .GS
    case "Xb": return .Xb
    case "Xv": return .Xv
    case "Xz": return .Xz
    case "Yb": return .Yb
    case "Yv": return .Yv
    case "Yz": return .Yz
    default: return .none
    }
  }
}

/// The parsed tables (built once).
enum ParsedTables {
  static let oneByte: [OpcodeEntry] = OpcodeTables.oneByte.map(OpcodeEntry.init)
  static let twoByte: [OpcodeEntry] = OpcodeTables.twoByte.map(OpcodeEntry.init)
  static let groupNames: [String] = OpcodeTables.groups.keys.sorted()
  static let groups: [[OpcodeEntry]] = groupNames.map { (OpcodeTables.groups[$0] ?? []).map(OpcodeEntry.init) }
}
