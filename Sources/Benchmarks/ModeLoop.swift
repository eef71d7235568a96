/// The per-mode ALU loop of `trivisor bench cpu --peers` (guests/testguests/modeloop.S): one
/// 512-byte boot sector that a PC BIOS starts at 0:7C00 in real mode, runs five instructions per
/// iteration (add, xor, rol, dec, jnz) in the mode patched into it, and ends the machine through
/// isa-debug-exit (Trivisor, QEMU) and Bochs's shutdown port.
public enum ModeLoop {
  /// The CPU mode the loop runs in; the raw value is the byte patched into the image.
  public enum Mode: Int, CaseIterable, Sendable, CustomStringConvertible {
    case real16 = 16
    case protected32 = 32
    case long64 = 64

    /// `16`, `32`, `64`: what `--mode` accepts.
    public var description: String { "\(rawValue)" }

    /// What the mode really is, for the report.
    public var explanation: String {
      switch self {
      case .real16: return "real mode, 16-bit code, 32-bit operands (0x66 prefix on each loop instruction)"
      case .protected32: return "flat 32-bit protected mode, paging off, 32-bit operands"
      case .long64: return "long mode (2 MiB identity page), 64-bit operands (REX.W on all but jnz)"
      }
    }

    /// The mode `text` (`16`, `32`, `64`) names, or nil.
    public init?(argument text: String) {
      guard let bits = Int(text), let mode = Mode(rawValue: bits) else { return nil }
      self = mode
    }
  }

  /// Instructions per iteration: add, xor, rol, dec, jnz.
  public static let instructionsPerIteration = 5
  /// Where BIOSes load a boot sector and start it (CS:IP = 0:7C00), and where Trivisor's engines
  /// load it as a flat real-mode binary.
  public static let loadAddress: UInt64 = 0x7C00
  /// Offset of the 32-bit iteration count in the sector.
  public static let iterationsOffset = 4
  /// Offset of the mode byte in the sector.
  public static let modeOffset = 8
  /// A 1.44 MB floppy: 80 cylinders, 2 heads, 18 sectors of 512 bytes.
  public static let floppyBytes = 1_474_560

  /// The boot sector looping `iterations` times (at least 1) in `mode`.
  public static func bootSector(mode: Mode, iterations: UInt32) -> [UInt8] {
    precondition(iterations >= 1, "the loop runs at least once (dec before jnz)")
    var sector = ModeLoopImage.bootSector
    for k in 0..<4 { sector[iterationsOffset + k] = UInt8(truncatingIfNeeded: iterations >> (8 * k)) }
    sector[modeOffset] = UInt8(mode.rawValue)
    return sector
  }

  /// The same sector as the first of a 1.44 MB floppy image (the rest zero), for Bochs and QEMU.
  public static func floppyImage(mode: Mode, iterations: UInt32) -> [UInt8] {
    bootSector(mode: mode, iterations: iterations) + [UInt8](repeating: 0, count: floppyBytes - 512)
  }

  /// Guest instructions a run of `iterations` executes between a 1-iteration run's and its own:
  /// what the wall-time difference of the two runs is divided by.
  public static func instructions(iterations: UInt32) -> UInt64 {
    UInt64(iterations - 1) * UInt64(instructionsPerIteration)
  }
}
