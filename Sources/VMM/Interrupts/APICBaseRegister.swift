/// IA32_APIC_BASE (MSR 1BH) of a local APIC: the register page's base address (bits 12 and up),
/// the bootstrap-processor flag (bit 8, read-only), x2APIC enable EXTD (bit 10) and APIC global
/// enable EN (bit 11). EN and EXTD select the APIC's mode.
///
/// Legal mode changes by WRMSR (SDM vol. 3, "x2APIC State Transitions"): disabled → xAPIC,
/// xAPIC → x2APIC, xAPIC or x2APIC → disabled, and writes that keep the mode. Disabled → x2APIC,
/// x2APIC → xAPIC, the invalid EN=0/EXTD=1 combination and set reserved bits (0-7, 9, and those at
/// or above the physical-address width) raise #GP. RESET puts the APIC in xAPIC mode at
/// 0xFEE00000; INIT leaves the register (and so the mode) as it is.
public struct APICBaseRegister: Sendable, Equatable {
  /// The MSR's index.
  public static let index: UInt32 = 0x1B
  /// Bit 8: this is the bootstrap processor.
  public static let bootstrapFlag: UInt64 = 1 << 8
  /// Bit 10 (EXTD): x2APIC mode.
  public static let x2APICEnable: UInt64 = 1 << 10
  /// Bit 11 (EN): the APIC is enabled.
  public static let globalEnable: UInt64 = 1 << 11
  /// The physical-address width whose higher base bits are reserved (the interpreter's MAXPHYADDR).
  public static let physicalAddressBits = 40

  /// A local APIC's operating mode, as EN and EXTD select it.
  public enum Mode: Sendable, Equatable {
    /// EN clear: the APIC is off; the processor behaves as if it had none.
    case disabled
    /// EN set, EXTD clear: the memory-mapped register page.
    case xAPIC
    /// EN and EXTD set: registers as MSRs 800H-8FFH, 32-bit IDs.
    case x2APIC
  }

  /// The raw MSR value.
  public private(set) var value: UInt64

  /// The RESET value: enabled in xAPIC mode at `LocalAPIC.base`, with the BSP flag on the
  /// bootstrap processor.
  public init(bootstrapProcessor: Bool) {
    value = LocalAPIC.base | Self.globalEnable | (bootstrapProcessor ? Self.bootstrapFlag : 0)
  }

  /// The mode EN and EXTD select.
  public var mode: Mode {
    switch (value & Self.globalEnable != 0, value & Self.x2APICEnable != 0) {
    case (false, _): return .disabled
    case (true, false): return .xAPIC
    case (true, true): return .x2APIC
    }
  }

  /// Where the register page is (bits 12 up to the physical-address width).
  public var pageBase: UInt64 { value & ~UInt64(0xFFF) }

  /// The register after WRMSR `new`, or nil when the write raises #GP: reserved bits set, the
  /// invalid mode (EXTD without EN), or an illegal transition. The BSP flag cannot be written.
  public func written(_ new: UInt64) -> APICBaseRegister? {
    let reserved: UInt64 = 0x2FF | ~((UInt64(1) << UInt64(Self.physicalAddressBits)) - 1)
    guard new & reserved == 0 else { return nil }
    guard new & Self.globalEnable != 0 || new & Self.x2APICEnable == 0 else { return nil }
    var next = self
    next.value = new & ~Self.bootstrapFlag | value & Self.bootstrapFlag
    switch (mode, next.mode) {
    case (.disabled, .x2APIC), (.x2APIC, .xAPIC): return nil
    default: return next
    }
  }
}
