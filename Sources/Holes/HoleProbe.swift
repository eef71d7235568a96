import VMM

/// One probe of the holes guest (guests/testguests/holes_probe.S): a sensitive-but-unprivileged
/// x86 instruction (Robin & Irvine, 2000) executed in guest ring 0, where a correctly virtualized
/// CPU gives a known answer. The raw value is the case's index in the result area.
public enum HoleProbe: Int, CaseIterable, Sendable, Codable {
  /// SGDT: the guest's GDTR (base 0x8000, limit 0x47).
  case sgdt
  /// SIDT: the guest's IDTR (base 0x9000, limit 0xFFF).
  case sidt
  /// SLDT: the guest's LDT selector 0x38.
  case sldt
  /// SMSW: CR0 bits 15:0 as the guest set them (0x003B: PE MP ET TS NE).
  case smsw
  /// STR: the guest's task register selector 0x28.
  case str
  /// PUSHF after CLI: IF reads 0.
  case pushfAfterCLI
  /// POPF clearing IF, then PUSHF: IF reads 0.
  case popfClearsIF
  /// MOV r, CS: 0x08, RPL 0.
  case movFromCS
  /// MOV r, DS: 0x10, RPL 0.
  case movFromDS
  /// MOV r, SS: 0x10, RPL 0.
  case movFromSS
  /// PUSH FS then POP FS: the selector 0x10 back.
  case pushPopFS
  /// LAR of the DPL-0 code selector: ZF = 1 and rights 0x00A09B00 (bits 19:16 ignored).
  case lar
  /// LSL of the DPL-0 data selector: ZF = 1 and limit 0xFFFFFFFF.
  case lsl
  /// VERR of the DPL-0 code selector: ZF = 1.
  case verr
  /// VERW of the DPL-0 data selector: ZF = 1.
  case verw
  /// Far RET to the DPL-0 code selector: CS 0x08 afterwards.
  case farRET
  /// Far JMP through the DPL-0 code selector: CS 0x08 afterwards.
  case farJMP
  /// Far CALL through the DPL-0 code selector: CS 0x08 in the callee and after its far return.
  case farCALL
  /// INT 0x80 through a DPL-0 gate from ring 0: the handler runs and sees CS 0x08 pushed.
  case intN

  /// The row label: the instruction as the literature names it.
  public var name: String {
    switch self {
    case .sgdt: "SGDT"
    case .sidt: "SIDT"
    case .sldt: "SLDT"
    case .smsw: "SMSW"
    case .str: "STR"
    case .pushfAfterCLI: "PUSHF (after CLI)"
    case .popfClearsIF: "POPF (clear IF)"
    case .movFromCS: "MOV r, CS"
    case .movFromDS: "MOV r, DS"
    case .movFromSS: "MOV r, SS"
    case .pushPopFS: "PUSH/POP FS"
    case .lar: "LAR"
    case .lsl: "LSL"
    case .verr: "VERR"
    case .verw: "VERW"
    case .farRET: "far RET"
    case .farJMP: "far JMP"
    case .farCALL: "far CALL"
    case .intN: "INT n"
    }
  }

  /// Which bits of the value and of the auxiliary quadword the answer is judged on.
  public var masks: (value: UInt64, aux: UInt64) {
    switch self {
    case .sgdt, .sidt: (~0, 0xFFFF)
    case .sldt, .smsw, .str, .movFromCS, .movFromDS, .movFromSS, .pushPopFS, .farRET, .farJMP: (0xFFFF, 0)
    case .pushfAfterCLI, .popfClearsIF: (HoleProbe.interruptFlag, 0)
    case .lar: (0x00F0_FF00, HoleProbe.zeroFlag)
    case .lsl: (0xFFFF_FFFF, HoleProbe.zeroFlag)
    case .verr, .verw: (0, HoleProbe.zeroFlag)
    case .farCALL, .intN: (0xFFFF, 0xFFFF)
    }
  }

  /// The answer of a correctly virtualized CPU (under `masks`).
  public var expected: HoleObservation {
    switch self {
    case .sgdt: HoleObservation(value: 0x8000, aux: 0x47)
    case .sidt: HoleObservation(value: 0x9000, aux: 0xFFF)
    case .sldt: HoleObservation(value: 0x38)
    case .smsw: HoleObservation(value: 0x003B)
    case .str: HoleObservation(value: 0x28)
    case .pushfAfterCLI, .popfClearsIF: HoleObservation(value: 0)
    case .movFromCS, .farRET, .farJMP: HoleObservation(value: 0x08)
    case .movFromDS, .movFromSS, .pushPopFS: HoleObservation(value: 0x10)
    case .lar: HoleObservation(value: 0x00A0_9B00, aux: HoleProbe.zeroFlag)
    case .lsl: HoleObservation(value: 0xFFFF_FFFF, aux: HoleProbe.zeroFlag)
    case .verr, .verw: HoleObservation(value: 0, aux: HoleProbe.zeroFlag)
    case .farCALL: HoleObservation(value: 0x08, aux: 0x08)
    case .intN: HoleObservation(value: 0x08, aux: 1)
    }
  }

  /// Whether the instruction leaks without a trap when the guest kernel runs at real ring 3 and
  /// the host does not enable UMIP (the five store instructions UMIP makes fault).
  public var umipCovered: Bool { [.sgdt, .sidt, .sldt, .smsw, .str].contains(self) }

  /// RFLAGS.IF.
  public static let interruptFlag: UInt64 = 0x200
  /// RFLAGS.ZF.
  public static let zeroFlag: UInt64 = 0x40
}

/// What one probe stored: its value and an auxiliary quadword (a limit, flags, a second reading).
public struct HoleObservation: Sendable, Equatable, Codable {
  /// The main result (a base, selector, RFLAGS, rights).
  public var value: UInt64
  /// The second result (a table limit, RFLAGS after LAR/LSL/VERR/VERW, CS after a far CALL).
  public var aux: UInt64
  /// An observation of `value` and `aux`.
  public init(value: UInt64, aux: UInt64 = 0) {
    self.value = value
    self.aux = aux
  }

  /// Whether `self` and `other` agree on the bits `probe` judges.
  public func matches(_ other: HoleObservation, for probe: HoleProbe) -> Bool {
    let m = probe.masks
    return value & m.value == other.value & m.value && aux & m.aux == other.aux & m.aux
  }
}

/// The result area the probe guest fills (guest-physical `address`), read back, with the probes
/// that stopped the guest (an exception, or the engine giving up) on this or earlier runs.
public struct HoleProbeResults: Sendable, Equatable {
  /// Guest-physical address of the result area.
  public static let address: UInt64 = 0xA000
  /// The marker the guest writes at offset 0 once every probe ran or was skipped ("HOLES").
  public static let doneMagic: UInt64 = 0x53_454C_4F48
  /// Offset of the skip mask the host writes (bit i: the guest jumps over probe i).
  public static let skipMaskOffset: UInt64 = 0x18
  /// Offset of the first probe's 16 bytes.
  public static let probesOffset: UInt64 = 0x40
  /// Size of the area the host reads.
  public static var size: Int { Int(probesOffset) + 16 * HoleProbe.allCases.count }

  /// Whether the guest got to the end (every probe ran or was skipped).
  public var completed: Bool
  /// The probe under way when the guest stopped (meaningful when not `completed`).
  public var current: Int
  /// Probes that stopped the guest, with why ("exception 13", "engine: ..."): they are skipped on
  /// a rerun so the rest still get measured.
  public var stops: [Int: String]
  /// Each probe's stored observation (meaningful for probes that ran).
  public var observations: [HoleObservation]

  /// Results read from `bytes`, the area's `size` bytes; an exception the guest recorded counts as
  /// a stop of the probe under way.
  public init(bytes: [UInt8], stops: [Int: String] = [:]) {
    func quad(_ offset: Int) -> UInt64 {
      (0..<8).reduce(UInt64(0)) { $0 | UInt64(offset + $1 < bytes.count ? bytes[offset + $1] : 0) << (8 * $1) }
    }
    completed = quad(0) == Self.doneMagic
    current = Int(truncatingIfNeeded: quad(8))
    self.stops = stops
    let vector = quad(0x10)
    if !completed && vector != ~0 { self.stops[current] = "exception \(vector)" }
    observations = HoleProbe.allCases.map {
      let at = Int(Self.probesOffset) + 16 * $0.rawValue
      return HoleObservation(value: quad(at), aux: quad(at + 8))
    }
  }
}

/// How a probe's answer compares with a correctly virtualized CPU's.
public enum HoleClass: String, Sendable, Codable, Equatable {
  /// The guest's own answer.
  case correct
  /// The host's or the monitor's value (given to the classifier as known monitor values).
  case leaks
  /// Neither the guest's answer nor a known monitor value.
  case silentlyWrong = "silently-wrong"
  /// An exception where the CPU would give an answer.
  case faulted
  /// Not reached: an earlier probe faulted or the guest stopped early.
  case notRun = "not-run"
}

/// Classifies raw results. `monitorValues` are what a leaking instruction would show instead of
/// the guest's answer: for the `trap` engine, the monitor's own GDTR, IDTR, selectors and
/// IF = 1; empty for engines with no monitor in the guest's CPU (interp, dbt, kvm).
public func classify(_ results: HoleProbeResults, monitorValues: [HoleProbe: HoleObservation] = [:]) -> [HoleProbe:
  HoleClass]
{
  var classes: [HoleProbe: HoleClass] = [:]
  for probe in HoleProbe.allCases {
    let observed = results.observations[probe.rawValue]
    if results.stops[probe.rawValue] != nil {
      classes[probe] = .faulted
    } else if !results.completed && probe.rawValue >= results.current {
      classes[probe] = .notRun
    } else if observed.matches(probe.expected, for: probe) {
      classes[probe] = .correct
    } else if let monitor = monitorValues[probe], observed.matches(monitor, for: probe) {
      classes[probe] = .leaks
    } else {
      classes[probe] = .silentlyWrong
    }
  }
  return classes
}
