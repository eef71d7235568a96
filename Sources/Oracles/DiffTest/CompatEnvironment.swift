import CNative
import X86

/// Which code a difftest generates and how both sides run it.
public enum DiffTestMode: String, CaseIterable, Sendable {
  /// 64-bit user code in the process's flat segments (the original difftest).
  case long64 = "64"
  /// 32-bit code in compatibility mode (CS = the Linux GDT's 0x23, or a 32-bit LDT code segment)
  /// with LDT data and stack segments of the test's own.
  case compat32
  /// 16-bit code in compatibility mode: CS is a 16-bit LDT code segment based at the code page.
  case compat16

  /// The code size of the generated programs.
  public var codeMode: CodeMode {
    switch self {
    case .long64: .bits64
    case .compat32: .bits32
    case .compat16: .bits16
    }
  }

  /// True for the compatibility-mode modes (segments and an LDT of the test's own).
  public var isCompatibility: Bool { self != .long64 }
}

/// One LDT descriptor described as Linux's `modify_ldt` takes it (the fields of `struct
/// user_desc`), so the native child can install it and the model can hold the same 8 bytes.
public struct LDTEntry: Sendable, Equatable {
  /// What `contents` selects: data, expand-down data or (non-conforming) code.
  public enum Contents: UInt8, Sendable {
    case data = 0, expandDownData = 1, code = 2
  }

  public var base: UInt32
  /// The 20-bit limit field (scaled by 4 KiB when `limitInPages`).
  public var limit: UInt32
  /// D/B: 32-bit code, 32-bit stack (ESP), or the 4 GiB upper bound of an expand-down segment.
  public var is32Bit: Bool
  public var contents: Contents
  /// Read-only data, or execute-only code.
  public var readExecOnly: Bool
  /// G.
  public var limitInPages: Bool
  /// P clear.
  public var notPresent: Bool
  /// The all-zero descriptor `modify_ldt` installs for an "empty" entry.
  public var empty: Bool

  public init(
    base: UInt32, limit: UInt32, is32Bit: Bool, contents: Contents, readExecOnly: Bool = false,
    limitInPages: Bool = false, notPresent: Bool = false
  ) {
    self.base = base
    self.limit = limit & 0xF_FFFF
    self.is32Bit = is32Bit
    self.contents = contents
    self.readExecOnly = readExecOnly
    self.limitInPages = limitInPages
    self.notPresent = notPresent
    empty = false
  }

  /// An empty (all-zero, not present, no type) entry.
  public static let emptyEntry: LDTEntry = {
    var e = LDTEntry(base: 0, limit: 0, is32Bit: false, contents: .data, readExecOnly: true, notPresent: true)
    e.empty = true
    return e
  }()

  /// The descriptor the kernel writes for this entry: S = 1, DPL 3, the type from `contents` and
  /// `readExecOnly` with the accessed bit already set (so no load ever writes the LDT), P, D/B and
  /// G from the fields; all zero when empty (SDM vol. 3, "Segment Descriptors").
  public var descriptor: UInt64 {
    if empty { return 0 }
    var type = UInt64(contents.rawValue) << 2 | 1
    if !readExecOnly { type |= 2 }
    var attributes: UInt64 = type | 1 << 4 | 3 << 5
    if !notPresent { attributes |= 1 << 7 }
    var d = UInt64(limit & 0xFFFF) | UInt64(base & 0xFF_FFFF) << 16 | attributes << 40
    d |= UInt64((limit >> 16) & 0xF) << 48 | UInt64(base >> 24) << 56
    if is32Bit { d |= 1 << 54 }
    if limitInPages { d |= 1 << 55 }
    return d
  }
}

/// The descriptor tables a compatibility-mode test sees: Linux's x86-64 GDT layout (the user
/// selectors at the kernel's indices, the kernel's own descriptors at DPL 0, the TSS and LDT as
/// system descriptors) and the test's LDT.
public enum CompatDescriptorTables {
  /// The GDT's limit (16 entries).
  public static let gdtLimit: UInt16 = 0x7F
  /// The LDT's limit: the child always installs `CN_LDT_ENTRIES` entries.
  public static let ldtLimit = UInt32(CN_LDT_ENTRIES) * 8 - 1
  /// 32-bit user code, flat (the selector a 64-bit process far-jumps to for 32-bit code).
  public static let user32Code: UInt16 = 0x23
  /// User data, flat.
  public static let userData: UInt16 = 0x2B
  /// 64-bit user code.
  public static let user64Code: UInt16 = 0x33
  /// The GDT entry whose limit the kernel sets to the CPU and node number (for getcpu through
  /// LSL): it differs between the host's CPUs, so tests never use it.
  public static let cpuNodeIndex = 15

  /// The GDT as a user process can observe it through segment loads: every entry's type, DPL and
  /// presence, with flat bases and limits for the code and data segments. Entries 12-14 (TLS) are
  /// empty in a process that never called set_thread_area, as the child does not.
  public static let gdt: [UInt64] = [
    0,
    0x00CF_9B00_0000_FFFF,  // 0x08 kernel 32-bit code, DPL 0
    0x00AF_9B00_0000_FFFF,  // 0x10 kernel 64-bit code, DPL 0
    0x00CF_9300_0000_FFFF,  // 0x18 kernel data, DPL 0
    0x00CF_FB00_0000_FFFF,  // 0x23 user 32-bit code
    0x00CF_F300_0000_FFFF,  // 0x2B user data
    0x00AF_FB00_0000_FFFF,  // 0x33 user 64-bit code
    0,
    0x0000_8B00_0000_0067,  // 0x40 TSS (busy, 16 bytes)
    0,
    0x0000_8200_0000_007F,  // 0x50 LDT (16 bytes)
    0,
    0, 0, 0,  // TLS
    0x0040_F500_0000_0000,  // 0x78 CPU/node number segment (never used by tests)
  ]

  /// The 8-byte descriptor `selector` names, or nil when it is null or beyond its table's limit.
  public static func descriptor(_ selector: UInt16, ldt: [LDTEntry]) -> UInt64? {
    let index = Int(selector >> 3)
    if selector & 4 != 0 {
      return index < ldt.count ? ldt[index].descriptor : nil
    }
    if index == 0 { return nil }
    return index < gdt.count ? gdt[index] : nil
  }

  /// The hidden register contents after loading `selector` (no checks): the null form for a null
  /// or missing selector.
  public static func cache(_ selector: UInt16, ldt: [LDTEntry]) -> SegmentCache {
    guard let raw = descriptor(selector, ldt: ldt) else {
      return SegmentCache(selector: selector, base: 0, limit: 0, attributes: 0)
    }
    return SegmentDescriptor(raw: raw).cache(selector: selector)
  }
}
