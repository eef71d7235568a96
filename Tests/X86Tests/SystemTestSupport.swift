@testable import X86

/// Flat memory for system-layer tests: linear == physical, 1 MiB, optional "unmapped" pages that
/// raise #PF (and set CR2 in `state`, as the core's adapter does), and a log of the privilege of
/// each access.
final class SystemTestMemory: SystemMemoryAccess {
  var bytes = [UInt8](repeating: 0, count: 1 << 20)
  /// 4 KiB page numbers that fault.
  var unmappedPages: Set<UInt64> = []
  var userAccesses: [UInt64] = []
  weak var state: CPUState?

  func check(_ address: UInt64, size: Int, write: Bool, supervisor: Bool) throws(Fault) {
    for a in [address, address &+ UInt64(size - 1)] where unmappedPages.contains(a >> 12) || a >= UInt64(bytes.count) {
      state?.cr2 = a
      throw .exception(vector: 14, errorCode: (write ? 2 : 0) | (supervisor ? 0 : 4))
    }
    if !supervisor { userAccesses.append(address) }
  }

  func readLinear(_ address: UInt64, size: Int, supervisor: Bool) throws(Fault) -> UInt64 {
    try check(address, size: size, write: false, supervisor: supervisor)
    var v: UInt64 = 0
    for i in 0..<size { v |= UInt64(bytes[Int(address) + i]) << (8 * i) }
    return v
  }

  func writeLinear(_ address: UInt64, size: Int, value: UInt64, supervisor: Bool) throws(Fault) {
    try check(address, size: size, write: true, supervisor: supervisor)
    for i in 0..<size { bytes[Int(address) + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
  }

  func put64(_ address: Int, _ value: UInt64) {
    for i in 0..<8 { bytes[address + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
  }
  func put32(_ address: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[address + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
  }
  func put16(_ address: Int, _ value: UInt16) {
    bytes[address] = UInt8(truncatingIfNeeded: value)
    bytes[address + 1] = UInt8(value >> 8)
  }
  func get64(_ address: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(bytes[address + i]) << (8 * i) }
    return v
  }

  /// The bytes of little-endian `values` of `size` bytes each: a stack frame as it must appear.
  static func frame(_ values: [UInt64], size: Int) -> [UInt8] {
    values.flatMap { v in (0..<size).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  }
  func slice(_ address: Int, _ count: Int) -> [UInt8] { Array(bytes[address..<address + count]) }
}

/// Layout of the long-mode test machine.
enum LM {
  static let gdt = 0x1000
  static let idt = 0x2000
  static let tss = 0x3000
  static let kernelCode: UInt16 = 0x08
  static let kernelData: UInt16 = 0x10
  static let userCode32: UInt16 = 0x1B
  static let userData: UInt16 = 0x23
  static let userCode64: UInt16 = 0x2B
  static let tssSelector: UInt16 = 0x30
  static let rsp0: UInt64 = 0x9000
  static let ist1: UInt64 = 0xA008
}

/// A long-mode machine: GDT (null, kernel code64, kernel data, user code32, user data, user
/// code64, 16-byte TSS), an empty 256-entry IDT and a TSS with RSP0 and IST1, running at CPL 0 in
/// 64-bit mode.
func makeLongMode() -> (CPUState, SystemTestMemory) {
  let s = CPUState()
  let m = SystemTestMemory()
  m.state = s
  m.put64(LM.gdt + 0x08, 0x00AF_9B00_0000_FFFF)
  m.put64(LM.gdt + 0x10, 0x00CF_9300_0000_FFFF)
  m.put64(LM.gdt + 0x18, 0x00CF_FB00_0000_FFFF)
  m.put64(LM.gdt + 0x20, 0x00CF_F300_0000_FFFF)
  m.put64(LM.gdt + 0x28, 0x00AF_FB00_0000_FFFF)
  m.put64(LM.gdt + 0x30, SegmentDescriptor(base: UInt32(LM.tss), limit: 0x67, attributes: 0x89).raw)
  m.put64(LM.gdt + 0x38, 0)
  m.put64(LM.tss + 4, LM.rsp0)
  m.put64(LM.tss + 0x24, LM.ist1)
  m.put16(LM.tss + 0x66, 0x68)
  s.cr0 = CR0.pe | CR0.pg | CR0.et
  s.cr4 = CR4.pae
  s.efer = EFER.lme | EFER.lma | EFER.sce | EFER.nxe
  s.gdtr = (UInt64(LM.gdt), 0x3F)
  s.idtr = (UInt64(LM.idt), 0xFFF)
  s.setSegment(.cs, SegmentCache(selector: LM.kernelCode, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B))
  s.setSegment(.ss, SegmentCache(selector: LM.kernelData, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
  s.setSegment(.tr, SegmentCache(selector: LM.tssSelector, base: UInt64(LM.tss), limit: 0x67, attributes: 0x8B))
  s.cpl = 0
  s.codeMode = .bits64
  s.rflags = Flags.reserved1
  return (s, m)
}

/// Switches a long-mode machine to 64-bit user mode at `rip` with stack `rsp`.
func enterUser64(_ s: CPUState, rip: UInt64, rsp: UInt64, flags: UInt64 = 0x202) {
  s.setSegment(.cs, SegmentCache(selector: LM.userCode64, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA0FB))
  s.setSegment(.ss, SegmentCache(selector: LM.userData, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0F3))
  s.cpl = 3
  s.rip = rip
  s.setGPR(4, rsp)
  s.rflags = flags
}

/// Installs a 64-bit IDT gate.
func setGate64(
  _ m: SystemTestMemory, vector: Int, offset: UInt64, selector: UInt16 = LM.kernelCode,
  type: UInt8 = 0xE, dpl: Int = 0, present: Bool = true, ist: Int = 0
) {
  let g = GateDescriptor(offset: offset, selector: selector, type: type, dpl: dpl, present: present, ist: ist)
  m.put64(LM.idt + vector * 16, g.low)
  m.put64(LM.idt + vector * 16 + 8, g.high)
}

/// Expects `body` to throw exactly `fault`.
func expectFault(_ fault: Fault, _ body: () throws(Fault) -> Void) -> Bool {
  do {
    try body()
    return false
  } catch {
    return error == fault
  }
}

/// The fault `body` throws, or nil when it completes.
func faultOf(_ body: () throws(Fault) -> Void) -> Fault? {
  do {
    try body()
    return nil
  } catch {
    return error
  }
}
