/// RFLAGS bit masks.
public enum Flags {
  /// RFLAGS.CF (bit 0): carry.
  public static let cf: UInt64 = 1 << 0
  /// RFLAGS bit 1: always 1.
  public static let reserved1: UInt64 = 1 << 1
  /// RFLAGS.PF (bit 2): parity of the low byte.
  public static let pf: UInt64 = 1 << 2
  /// RFLAGS.AF (bit 4): auxiliary carry out of bit 3.
  public static let af: UInt64 = 1 << 4
  /// RFLAGS.ZF (bit 6): zero.
  public static let zf: UInt64 = 1 << 6
  /// RFLAGS.SF (bit 7): sign.
  public static let sf: UInt64 = 1 << 7
  /// RFLAGS.TF (bit 8): single-step trap.
  public static let tf: UInt64 = 1 << 8
  /// RFLAGS.IF (bit 9): maskable interrupts enabled.
  public static let `if`: UInt64 = 1 << 9
  /// RFLAGS.DF (bit 10): string instructions count down.
  public static let df: UInt64 = 1 << 10
  /// RFLAGS.OF (bit 11): signed overflow.
  public static let of: UInt64 = 1 << 11
  /// RFLAGS.IOPL (bits 12-13): I/O privilege level.
  public static let iopl: UInt64 = 3 << 12
  /// RFLAGS.NT (bit 14): nested task.
  public static let nt: UInt64 = 1 << 14
  /// RFLAGS.RF (bit 16): resume without re-triggering an instruction breakpoint.
  public static let rf: UInt64 = 1 << 16
  /// RFLAGS.VM (bit 17): virtual-8086 mode.
  public static let vm: UInt64 = 1 << 17
  /// RFLAGS.AC (bit 18): alignment check (and SMAP override).
  public static let ac: UInt64 = 1 << 18
  /// RFLAGS.VIF (bit 19): virtual interrupt flag.
  public static let vif: UInt64 = 1 << 19
  /// RFLAGS.VIP (bit 20): virtual interrupt pending.
  public static let vip: UInt64 = 1 << 20
  /// RFLAGS.ID (bit 21): CPUID is available.
  public static let id: UInt64 = 1 << 21
  /// The six arithmetic status flags.
  public static let arithmetic: UInt64 = cf | pf | af | zf | sf | of
}

/// The architectural state of one x86 CPU in a flat, page-aligned buffer with the fixed offsets of
/// `CPUStateLayout`. A class so that the interpreter, a translator's generated code and the embedder
/// share one copy; `raw` stays valid for the object's lifetime.
public final class CPUState: @unchecked Sendable {
  /// The raw state buffer (`CPUStateLayout.size` bytes, page-aligned), followed in the same
  /// allocation by the storage of the paging TLB (`CPUStateLayout.pagingTLB`).
  public let raw: UnsafeMutableRawPointer

  /// A zeroed state: every register and segment cache 0, but RFLAGS bit 1, FCW and MXCSR.
  public init() {
    raw = UnsafeMutableRawPointer.allocate(
      byteCount: CPUStateLayout.pagingTLB + SoftTLB.storageBytes, alignment: 4096)
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: CPUStateLayout.size)
    rflags = Flags.reserved1
    // The SIMD control registers as FNINIT and a fresh process leave them: FCW 0x037F, MXCSR
    // 0x1F80 (every floating-point exception masked).
    raw.storeBytes(of: UInt16(0x037F), toByteOffset: CPUStateLayout.fcw, as: UInt16.self)
    raw.storeBytes(of: UInt32(0x1F80), toByteOffset: CPUStateLayout.mxcsr, as: UInt32.self)
  }

  /// Where the paging TLB of this CPU keeps its entries (`SoftTLB.init(in:)`).
  var pagingTLBStorage: UnsafeMutableRawPointer { raw + CPUStateLayout.pagingTLB }

  deinit { raw.deallocate() }

  /// Reads the UInt64 slot at a byte offset of `CPUStateLayout`.
  @inlinable public subscript(offset offset: Int) -> UInt64 {
    get { raw.load(fromByteOffset: offset, as: UInt64.self) }
    set { raw.storeBytes(of: newValue, toByteOffset: offset, as: UInt64.self) }
  }

  /// General register `i` (0-15, encoding order), all 64 bits.
  @inlinable public func gpr(_ i: Int) -> UInt64 {
    raw.load(fromByteOffset: i &* 8, as: UInt64.self)
  }

  /// Writes all 64 bits of general register `i`.
  @inlinable public func setGPR(_ i: Int, _ value: UInt64) {
    raw.storeBytes(of: value, toByteOffset: i &* 8, as: UInt64.self)
  }

  /// The instruction pointer.
  @inlinable public var rip: UInt64 {
    @inline(__always)
    get { self[offset: CPUStateLayout.rip] }
    @inline(__always) set { self[offset: CPUStateLayout.rip] = newValue }
  }

  /// RFLAGS, always materialized.
  @inlinable public var rflags: UInt64 {
    get { self[offset: CPUStateLayout.rflags] }
    set { self[offset: CPUStateLayout.rflags] = newValue }
  }

  /// The hidden form of a segment register.
  public func segment(_ s: SegmentRegister) -> SegmentCache {
    let o = CPUStateLayout.segments + s.rawValue * CPUStateLayout.segmentStride
    return SegmentCache(
      selector: UInt16(truncatingIfNeeded: self[offset: o]), base: self[offset: o + 8],
      limit: UInt32(truncatingIfNeeded: self[offset: o + 16]),
      attributes: UInt16(truncatingIfNeeded: self[offset: o + 24]))
  }

  /// Replaces the hidden form of a segment register (no checks: see `CPU.loadSegment`).
  public func setSegment(_ s: SegmentRegister, _ value: SegmentCache) {
    let o = CPUStateLayout.segments + s.rawValue * CPUStateLayout.segmentStride
    self[offset: o] = UInt64(value.selector)
    self[offset: o + 8] = value.base
    self[offset: o + 16] = UInt64(value.limit)
    self[offset: o + 24] = UInt64(value.attributes)
    if s.rawValue < 6 {
      raw.storeBytes(
        of: SegmentAccess.summary(value.attributes), toByteOffset: CPUStateLayout.segmentAccess + s.rawValue,
        as: UInt8.self)
    }
  }

  /// The access summary of segment register number `s` (0-5): which protected-mode data accesses
  /// through it pass the type checks (`SegmentAccess`).
  @inlinable public func segmentAccess(_ s: Int) -> UInt8 {
    raw.load(fromByteOffset: CPUStateLayout.segmentAccess &+ s, as: UInt8.self)
  }

  /// Base of segment register number `s` (0-7).
  @inlinable public func segmentBase(_ s: Int) -> UInt64 {
    self[offset: CPUStateLayout.segments + s &* CPUStateLayout.segmentStride + 8]
  }

  /// Limit of segment register number `s` (0-7).
  @inlinable public func segmentLimit(_ s: Int) -> UInt64 {
    self[offset: CPUStateLayout.segments + s &* CPUStateLayout.segmentStride + 16]
  }

  /// Attributes (type, S, DPL, P, AVL, L, D/B, G in the `SegmentCache` layout) of segment
  /// register number `s` (0-7).
  @inlinable public func segmentAttributes(_ s: Int) -> UInt16 {
    UInt16(truncatingIfNeeded: self[offset: CPUStateLayout.segments + s &* CPUStateLayout.segmentStride + 24])
  }

  /// Selector of segment register number `s` (0-7).
  @inlinable public func segmentSelector(_ s: Int) -> UInt16 {
    UInt16(truncatingIfNeeded: self[offset: CPUStateLayout.segments + s &* CPUStateLayout.segmentStride])
  }

  /// CR0.
  public var cr0: UInt64 {
    get { self[offset: CPUStateLayout.cr0] }
    set { self[offset: CPUStateLayout.cr0] = newValue }
  }
  /// CR2: the last page-fault linear address.
  public var cr2: UInt64 {
    get { self[offset: CPUStateLayout.cr2] }
    set { self[offset: CPUStateLayout.cr2] = newValue }
  }
  /// CR3: the page-table root (and PCID).
  public var cr3: UInt64 {
    get { self[offset: CPUStateLayout.cr3] }
    set { self[offset: CPUStateLayout.cr3] = newValue }
  }
  /// CR4.
  public var cr4: UInt64 {
    get { self[offset: CPUStateLayout.cr4] }
    set { self[offset: CPUStateLayout.cr4] = newValue }
  }
  /// IA32_EFER.
  public var efer: UInt64 {
    get { self[offset: CPUStateLayout.efer] }
    set { self[offset: CPUStateLayout.efer] = newValue }
  }
  /// Current privilege level (0-3).
  public var cpl: Int {
    get { Int(self[offset: CPUStateLayout.cpl]) }
    set { self[offset: CPUStateLayout.cpl] = UInt64(newValue & 3) }
  }
  /// Descriptor-table registers.
  public var gdtr: (base: UInt64, limit: UInt16) {
    get { (self[offset: CPUStateLayout.gdtrBase], UInt16(truncatingIfNeeded: self[offset: CPUStateLayout.gdtrLimit])) }
    set {
      self[offset: CPUStateLayout.gdtrBase] = newValue.base
      self[offset: CPUStateLayout.gdtrLimit] = UInt64(newValue.limit)
    }
  }
  /// IDTR: base and limit.
  public var idtr: (base: UInt64, limit: UInt16) {
    get { (self[offset: CPUStateLayout.idtrBase], UInt16(truncatingIfNeeded: self[offset: CPUStateLayout.idtrLimit])) }
    set {
      self[offset: CPUStateLayout.idtrBase] = newValue.base
      self[offset: CPUStateLayout.idtrLimit] = UInt64(newValue.limit)
    }
  }

  /// The current code mode (kept in the state so generated code can read it).
  public var codeMode: CodeMode {
    get {
      switch self[offset: CPUStateLayout.codeMode] {
      case 64: return .bits64
      case 32: return .bits32
      default: return .bits16
      }
    }
    set {
      self[offset: CPUStateLayout.codeMode] = newValue == .bits64 ? 64 : newValue == .bits32 ? 32 : 16
    }
  }
}

/// The part of a data access's protected-mode checks that depends only on the segment cache's
/// attributes, resolved when the cache is written (`CPUState.setSegment`, the one writer of every
/// segment load: the segment loader, far transfers, IRET, task switches, interrupt delivery,
/// SYSENTER/SYSCALL, resets and the embedder's state setters) instead of on every access. The interpreter's fast
/// path for 16- and 32-bit code reads it: an access whose bit is clear, or whose offset passes
/// the limit, takes the general path, which raises whatever fault is due.
public enum SegmentAccess {
  /// Reads need no type check: present, not a system descriptor, and an expand-up data segment
  /// or a readable code segment.
  public static let read: UInt8 = 1 << 0
  /// Writes need no type check: present, an expand-up writable data segment.
  public static let write: UInt8 = 1 << 1

  /// The summary of a segment cache with `attributes`: the accesses that fault only through the
  /// limit (offsets above it; an expand-down segment's valid offsets are above its limit, so it is
  /// left to the general path).
  @inlinable public static func summary(_ attributes: UInt16) -> UInt8 {
    let p = SegmentAttributes.present | SegmentAttributes.codeOrData
    let kind =
      attributes & (p | SegmentAttributes.code | SegmentAttributes.conformingOrExpandDown | SegmentAttributes.readWrite)
    if kind == p | SegmentAttributes.readWrite { return read | write }
    if kind == p { return read }
    if kind & ~SegmentAttributes.conformingOrExpandDown == p | SegmentAttributes.code | SegmentAttributes.readWrite {
      return read
    }
    return 0
  }
}
