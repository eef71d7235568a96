/// A segment selector (SDM vol. 3, "Segment Selectors"): index into the GDT or LDT, table
/// indicator and requested privilege level.
public struct SegmentSelector: Sendable, Equatable, Hashable {
  /// The 16-bit selector.
  public var raw: UInt16

  /// A selector from its 16 bits.
  public init(_ raw: UInt16) { self.raw = raw }

  /// Descriptor index (bits 15:3).
  @inlinable public var index: Int { Int(raw >> 3) }
  /// Table indicator: true selects the LDT, false the GDT.
  @inlinable public var isLocal: Bool { raw & 4 != 0 }
  /// Requested privilege level (bits 1:0).
  @inlinable public var rpl: Int { Int(raw & 3) }
  /// A null selector: index 0 in the GDT (any RPL).
  @inlinable public var isNull: Bool { raw & 0xFFFC == 0 }
  /// Byte offset of the descriptor in its table.
  @inlinable public var tableOffset: UInt64 { UInt64(raw & 0xFFF8) }
  /// The selector with its RPL replaced.
  @inlinable public func withRPL(_ rpl: Int) -> SegmentSelector { SegmentSelector(raw & 0xFFFC | UInt16(rpl & 3)) }
}

/// The processor's operating mode, derived from CR0.PE, RFLAGS.VM, EFER.LMA and CS.L
/// (SDM vol. 3, "Modes of Operation").
public enum OperatingMode: Sendable, Equatable {
  case real
  case virtual8086
  /// Legacy protected mode (16- or 32-bit code).
  case protected
  /// IA-32e compatibility mode (16- or 32-bit code under a long-mode kernel).
  case compatibility
  /// IA-32e 64-bit mode.
  case long64

  /// The operating mode `state` is in.
  public init(_ state: CPUState) {
    if state.cr0 & CR0.pe == 0 {
      self = .real
    } else if state.efer & EFER.lma != 0 {
      self = state.segment(.cs).attributes & SegmentAttributes.long != 0 ? .long64 : .compatibility
    } else if state.rflags & Flags.vm != 0 {
      self = .virtual8086
    } else {
      self = .protected
    }
  }

  /// True in IA-32e mode (64-bit or compatibility).
  public var isIA32e: Bool { self == .long64 || self == .compatibility }
}

/// Bits of `SegmentCache.attributes` (bytes 5 and 6 of a descriptor without the limit nibble).
public enum SegmentAttributes {
  /// Segment-cache attribute bits: accessed,
  public static let accessed: UInt16 = 1 << 0
  /// Readable (code) / writable (data).
  public static let readWrite: UInt16 = 1 << 1
  /// Conforming (code) / expand-down (data).
  public static let conformingOrExpandDown: UInt16 = 1 << 2
  /// code (type bit 3),
  public static let code: UInt16 = 1 << 3
  /// S: code or data (not a system descriptor).
  public static let codeOrData: UInt16 = 1 << 4
  /// the DPL's shift,
  public static let dplShift: UInt16 = 5
  /// present,
  public static let present: UInt16 = 1 << 7
  /// AVL,
  public static let available: UInt16 = 1 << 12
  /// L,
  public static let long: UInt16 = 1 << 13
  /// D/B,
  public static let defaultBig: UInt16 = 1 << 14
  /// and G.
  public static let granularity: UInt16 = 1 << 15

  /// DPL of a cached segment.
  @inlinable public static func dpl(_ attributes: UInt16) -> Int { Int((attributes >> 5) & 3) }
}
