/// A stack the system layer pushes to and pops from during interrupt delivery, IRET and far
/// RET: SS base/limit with expand-down handling and 16/32-bit stack-pointer wrap in legacy modes
/// (SDM vol. 3, "Stack Switching"), canonical checks in 64-bit mode. Nothing is written to the
/// CPU state; the caller commits `pointer` once every access has succeeded.
struct SystemStack {
  var base: UInt64
  var limit: UInt32
  var expandDown: Bool
  /// 2, 4 or 8: how many bits of the stack pointer are used (SS.B in legacy modes, 8 in 64-bit mode).
  var width: Int
  var pointer: UInt64
  /// Whether accesses are supervisor accesses (new CPL < 3).
  var supervisor: Bool
  /// Error code of the #SS raised on a limit or canonical violation.
  var faultCode: UInt32
  var la57: Bool = false

  /// The stack SS:RSP of `state` as it is now.
  init(state: CPUState, mode: OperatingMode, supervisor: Bool, faultCode: UInt32) {
    let ss = state.segment(.ss)
    self.init(cache: ss, pointer: state.gpr(4), long64: mode == .long64, supervisor: supervisor, faultCode: faultCode)
    la57 = state.cr4 & CR4.la57 != 0
  }

  init(cache: SegmentCache, pointer: UInt64, long64: Bool, supervisor: Bool, faultCode: UInt32) {
    base = long64 ? 0 : cache.base
    limit = cache.limit
    let attributes = cache.attributes
    expandDown =
      attributes & (SegmentAttributes.code | SegmentAttributes.conformingOrExpandDown)
      == SegmentAttributes.conformingOrExpandDown
    width = long64 ? 8 : attributes & SegmentAttributes.defaultBig != 0 ? 4 : 2
    self.pointer = pointer
    self.supervisor = supervisor
    self.faultCode = faultCode
  }

  private var mask: UInt64 { width == 8 ? ~0 : width == 4 ? 0xFFFF_FFFF : 0xFFFF }

  /// Linear address of `size` bytes at stack offset `offset`, after the limit checks.
  func linear(_ offset: UInt64, size: Int) throws(Fault) -> UInt64 {
    if width == 8 {
      guard Canonical.isCanonical(offset, la57: la57), Canonical.isCanonical(offset &+ UInt64(size - 1), la57: la57)
      else { throw .ss(faultCode) }
      return offset
    }
    let last = offset + UInt64(size) - 1
    if expandDown {
      let upper: UInt64 = width == 4 ? 0xFFFF_FFFF : 0xFFFF
      guard offset > UInt64(limit), last <= upper else { throw .ss(faultCode) }
    } else {
      guard last <= UInt64(limit) else { throw .ss(faultCode) }
    }
    return (base &+ offset) & 0xFFFF_FFFF
  }

  mutating func push(_ value: UInt64, size: Int, memory: some SystemMemoryAccess) throws(Fault) {
    let newPointer = (pointer &- UInt64(size)) & mask | pointer & ~mask
    let address = try linear(newPointer & mask, size: size)
    try memory.writeLinear(address, size: size, value: value, supervisor: supervisor)
    pointer = newPointer
  }

  mutating func pop(size: Int, memory: some SystemMemoryAccess) throws(Fault) -> UInt64 {
    let address = try linear(pointer & mask, size: size)
    let value = try memory.readLinear(address, size: size, supervisor: supervisor)
    pointer = (pointer &+ UInt64(size)) & mask | pointer & ~mask
    return value
  }

  /// Moves the stack pointer by `bytes` (RET imm16), wrapping within the stack width.
  mutating func release(_ bytes: UInt64) {
    pointer = (pointer &+ bytes) & mask | pointer & ~mask
  }
}
