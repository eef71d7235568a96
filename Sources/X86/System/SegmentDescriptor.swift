/// An 8-byte code, data or system segment descriptor (SDM vol. 3, "Segment Descriptors").
public struct SegmentDescriptor: Sendable, Equatable {
  /// The 8 descriptor bytes.
  public var raw: UInt64

  /// A descriptor from its raw bytes.
  public init(raw: UInt64) { self.raw = raw }

  /// Builds a descriptor from its fields (`limit` is the 20-bit raw limit, `attributes` in the
  /// `SegmentCache` layout).
  public init(base: UInt32, limit: UInt32, attributes: UInt16) {
    var r = UInt64(limit & 0xFFFF) | UInt64(base & 0xFF_FFFF) << 16
    r |= UInt64(attributes & 0xFF) << 40 | UInt64((limit >> 16) & 0xF) << 48
    r |= UInt64((attributes >> 12) & 0xF) << 52 | UInt64(base >> 24) << 56
    raw = r
  }

  /// Segment base (32 bits; a 16-byte system descriptor extends it, see `SystemDescriptor`).
  public var base: UInt64 { (raw >> 16) & 0xFF_FFFF | ((raw >> 56) & 0xFF) << 24 }
  /// The 20-bit limit field as written.
  public var rawLimit: UInt32 { UInt32(raw & 0xFFFF) | UInt32((raw >> 48) & 0xF) << 16 }
  /// The limit in bytes (scaled by 4 KiB when G=1).
  public var limit: UInt32 { granularity ? rawLimit << 12 | 0xFFF : rawLimit }
  /// Type field (bits 43:40).
  public var type: UInt8 { UInt8((raw >> 40) & 0xF) }
  /// S flag: code or data segment (false for system descriptors and gates).
  public var isCodeOrData: Bool { raw & (1 << 44) != 0 }
  /// Descriptor privilege level.
  public var dpl: Int { Int((raw >> 45) & 3) }
  /// P.
  public var present: Bool { raw & (1 << 47) != 0 }
  /// L: 64-bit code.
  public var long: Bool { raw & (1 << 53) != 0 }
  /// D/B: 32-bit default size or stack.
  public var defaultBig: Bool { raw & (1 << 54) != 0 }
  /// G: the limit counts 4 KiB pages.
  public var granularity: Bool { raw & (1 << 55) != 0 }

  /// A code segment.
  public var isCode: Bool { isCodeOrData && type & 8 != 0 }
  /// A data segment.
  public var isData: Bool { isCodeOrData && type & 8 == 0 }
  /// A conforming code segment.
  public var conforming: Bool { isCode && type & 4 != 0 }
  /// Readable (data always; code when the R bit is set).
  public var readable: Bool { isCode ? type & 2 != 0 : isData }
  /// A writable data segment.
  public var writable: Bool { isData && type & 2 != 0 }
  /// An expand-down data segment.
  public var expandDown: Bool { isData && type & 4 != 0 }
  /// The accessed bit.
  public var accessed: Bool { type & 1 != 0 }

  /// Attributes in the `SegmentCache` layout (type, S, DPL, P, AVL, L, D/B, G).
  public var attributes: UInt16 { UInt16((raw >> 40) & 0xFF) | UInt16((raw >> 52) & 0xF) << 12 }

  /// The hidden segment-register contents this descriptor loads.
  public func cache(selector: UInt16, baseHigh: UInt64 = 0) -> SegmentCache {
    SegmentCache(selector: selector, base: base | baseHigh << 32, limit: limit, attributes: attributes)
  }
}

/// System descriptor types (SDM vol. 3, table "System-Segment and Gate-Descriptor Types").
public enum SystemDescriptorType {
  /// System descriptor types: available 16-bit TSS,
  public static let tss16Available: UInt8 = 1
  /// LDT,
  public static let ldt: UInt8 = 2
  /// busy 16-bit TSS,
  public static let tss16Busy: UInt8 = 3
  /// 16-bit call gate,
  public static let callGate16: UInt8 = 4
  /// task gate,
  public static let taskGate: UInt8 = 5
  /// 16-bit interrupt gate,
  public static let interruptGate16: UInt8 = 6
  /// 16-bit trap gate,
  public static let trapGate16: UInt8 = 7
  /// 32-bit TSS in legacy mode, 64-bit TSS in IA-32e mode.
  public static let tssAvailable: UInt8 = 9
  /// busy 32/64-bit TSS,
  public static let tssBusy: UInt8 = 11
  /// 32/64-bit call gate,
  public static let callGate: UInt8 = 12
  /// 32/64-bit interrupt gate,
  public static let interruptGate: UInt8 = 14
  /// and 32/64-bit trap gate.
  public static let trapGate: UInt8 = 15
}

/// An LDT or TSS descriptor: 8 bytes in legacy mode, 16 bytes in IA-32e mode where the second
/// quadword holds base bits 63:32 and a type field that must be zero (SDM vol. 3, "Segment
/// Descriptor Tables" and "TSS Descriptor in 64-bit mode").
public struct SystemDescriptor: Sendable, Equatable {
  /// The first 8 bytes.
  public var low: SegmentDescriptor
  /// Second quadword (0 for the 8-byte form).
  public var high: UInt64

  /// A descriptor from its raw bytes.
  public init(low: UInt64, high: UInt64 = 0) {
    self.low = SegmentDescriptor(raw: low)
    self.high = high
  }

  /// The type field.
  public var type: UInt8 { low.type }
  /// P.
  public var present: Bool { low.present }
  /// Descriptor privilege level.
  public var dpl: Int { low.dpl }
  /// A system descriptor (S clear).
  public var isSystem: Bool { !low.isCodeOrData }
  /// The base address.
  public var base: UInt64 { low.base | (high & 0xFFFF_FFFF) << 32 }
  /// The limit field (not scaled).
  public var limit: UInt32 { low.limit }
  /// The type field of the upper half (bits 12:8 of its second dword) must be 0 in IA-32e mode.
  public var upperTypeIsZero: Bool { (high >> 40) & 0x1F == 0 }

  /// The segment cache a load of `selector` with this descriptor produces.
  public func cache(selector: UInt16) -> SegmentCache {
    SegmentCache(selector: selector, base: base, limit: limit, attributes: low.attributes)
  }
}

/// An interrupt, trap, call or task gate (SDM vol. 3, "Gate Descriptors", "IDT Descriptors" and
/// "64-Bit Mode IDT"): 8 bytes in legacy mode, 16 in IA-32e mode.
public struct GateDescriptor: Sendable, Equatable {
  /// The first 8 bytes.
  public var low: UInt64
  /// The second 8 bytes (64-bit system descriptors and gates).
  public var high: UInt64

  /// A descriptor from its raw bytes.
  public init(low: UInt64, high: UInt64 = 0) {
    self.low = low
    self.high = high
  }

  /// Builds a gate (tests and firmware setup).
  public init(offset: UInt64, selector: UInt16, type: UInt8, dpl: Int, present: Bool = true, ist: Int = 0) {
    var l = offset & 0xFFFF | UInt64(selector) << 16 | UInt64(ist & 7) << 32
    l |= UInt64(type & 0xF) << 40 | UInt64(dpl & 3) << 45 | (present ? 1 << 47 : 0)
    l |= ((offset >> 16) & 0xFFFF) << 48
    low = l
    high = offset >> 32
  }

  /// The type field.
  public var type: UInt8 { UInt8((low >> 40) & 0xF) }
  /// Gates are system descriptors: S must be 0.
  public var isSystem: Bool { low & (1 << 44) == 0 }
  /// Descriptor privilege level.
  public var dpl: Int { Int((low >> 45) & 3) }
  /// P.
  public var present: Bool { low & (1 << 47) != 0 }
  /// The gate's target selector.
  public var selector: UInt16 { UInt16(truncatingIfNeeded: low >> 16) }
  /// Entry point: 16 bits for 16-bit gates, 32 in legacy mode, 64 in the 16-byte form.
  public var offset: UInt64 { low & 0xFFFF | ((low >> 48) & 0xFFFF) << 16 | (high & 0xFFFF_FFFF) << 32 }
  /// Interrupt-stack-table index (64-bit IDT gates only).
  public var ist: Int { Int((low >> 32) & 7) }
  /// Parameter count (call gates).
  public var parameterCount: Int { Int((low >> 32) & 0x1F) }
  /// The type field of the upper half must be 0 in IA-32e mode.
  public var upperTypeIsZero: Bool { (high >> 40) & 0x1F == 0 }
}
