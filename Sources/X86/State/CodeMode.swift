/// The default operand and address size of the current code segment.
public enum CodeMode: Sendable, Equatable {
  /// Real mode, virtual-8086 mode or a 16-bit protected-mode code segment.
  case bits16
  /// A 32-bit protected-mode code segment (or compatibility mode).
  case bits32
  /// 64-bit long mode.
  case bits64

  /// Default operand/address size in bytes (2, 4 or 8 for address; operand default is 4 in 64-bit mode).
  @inlinable public var addressBytes: Int {
    switch self {
    case .bits16: return 2
    case .bits32: return 4
    case .bits64: return 8
    }
  }
}

/// The segment registers, in the order of the ModRM `sreg` field, followed by LDTR and TR.
public enum SegmentRegister: Int, Sendable, CaseIterable {
  case es = 0, cs, ss, ds, fs, gs, ldtr, tr

  /// Lower-case name as the disassembler spells it.
  public var name: String {
    switch self {
    case .es: return "es"
    case .cs: return "cs"
    case .ss: return "ss"
    case .ds: return "ds"
    case .fs: return "fs"
    case .gs: return "gs"
    case .ldtr: return "ldtr"
    case .tr: return "tr"
    }
  }
}

/// The hidden (descriptor-cache) form of a segment register.
public struct SegmentCache: Sendable, Equatable {
  /// The visible selector.
  public var selector: UInt16
  /// The base address.
  public var base: UInt64
  /// The limit in bytes (scaled).
  public var limit: UInt32
  /// Descriptor attribute bits as in bytes 5-6 of a descriptor: type(0-3) S(4) DPL(5-6) P(7)
  /// AVL(12) L(13) D/B(14) G(15).
  public var attributes: UInt16

  /// A segment cache.
  public init(selector: UInt16 = 0, base: UInt64 = 0, limit: UInt32 = 0xFFFF, attributes: UInt16 = 0x93) {
    self.selector = selector
    self.base = base
    self.limit = limit
    self.attributes = attributes
  }

  /// A real-mode segment: base = selector * 16, 64 KiB limit, present read/write data.
  public static func real(_ selector: UInt16, code: Bool = false) -> SegmentCache {
    SegmentCache(selector: selector, base: UInt64(selector) << 4, limit: 0xFFFF, attributes: code ? 0x9B : 0x93)
  }
}
