/// One column of the per-mode table: a Trivisor engine (or the interpreter with its fast path
/// off) or a peer emulator.
public enum ModeLoopColumn: String, CaseIterable, Sendable, CustomStringConvertible {
  /// The interpreter as `--engine interp` runs it (fast path on).
  case interp
  /// The interpreter with `CPU.fastPathEnabled` off: the general path only.
  case interpGeneral = "interp-general"
  /// The binary translator (`--engine dbt`).
  case dbt
  /// Debian's Bochs (`BochsPeer`).
  case bochs
  /// QEMU's TCG (`QEMUFloppyPeer`).
  case qemuTCG = "qemu-tcg"

  /// The name `--iterations NAME=N` and the table use.
  public var description: String { rawValue }

  /// Whether this is another program rather than one of Trivisor's engines.
  public var isPeer: Bool { self == .bochs || self == .qemuTCG }

  /// Iterations N of the long run so that it takes roughly 1-3 s on a current x86-64 machine in a
  /// release build (a debug build runs Trivisor's engines 10-20x slower: a tenth of that).
  public func defaultIterations(mode: ModeLoop.Mode, debugBuild: Bool = false) -> UInt32 {
    let n: UInt32
    switch self {
    case .interp: n = 40_000_000
    case .interpGeneral: n = 15_000_000
    case .dbt: n = mode == .real16 ? 40_000_000 : 400_000_000  // 16-bit code runs in its interpreter
    case .bochs: n = 20_000_000
    case .qemuTCG: n = 400_000_000
    }
    return debugBuild && !isPeer ? n / 10 : n
  }

  /// One line on what the column runs.
  public var summary: String {
    switch self {
    case .interp: return "Trivisor's interpreter (fast path on, as --engine interp)"
    case .interpGeneral:
      return "the same interpreter with CPU.fastPathEnabled off: every instruction on the general path"
    case .dbt:
      return
        "Trivisor's binary translator (translates 64-bit and flat 32-bit code; 16-bit code runs in its interpreter)"
    case .bochs:
      return "Bochs booting the sector from a 1.44 MB floppy (its BIOS, debugger 'c', display term, clock sync=none)"
    case .qemuTCG: return "qemu-system-x86_64 -accel tcg booting the same floppy (SeaBIOS, isa-debug-exit)"
    }
  }
}
