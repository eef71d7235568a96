import TrapAndEmulate
import VMM
import X86

/// Page-table entry bits used to build guest tables in the tests.
enum PTE {
  static let p: UInt64 = 1 << 0
  static let rw: UInt64 = 1 << 1
  static let us: UInt64 = 1 << 2
  static let a: UInt64 = 1 << 5
  static let d: UInt64 = 1 << 6
  static let ps: UInt64 = 1 << 7
  static let xd: UInt64 = 1 << 63
  /// Present, writable, user: an upper-level entry that restricts nothing.
  static let open: UInt64 = p | rw | us
}

/// A guest's 4-level page tables built in guest memory: table frames come from a bump allocator
/// at `tableBase`, and `map` creates the path to a 4 KiB or 2 MiB page.
final class GuestTables {
  let memory: GuestMemory
  var nextTable: UInt64
  /// The root table (the guest's CR3).
  let root: UInt64

  /// Tables from `tableBase` up, a new root at the first frame.
  init(memory: GuestMemory, tableBase: UInt64 = 0x10000) throws {
    self.memory = memory
    self.nextTable = tableBase
    self.root = tableBase
    nextTable += 0x1000
    try memory.fill(root, length: 0x1000)
  }

  /// A fresh zeroed table frame.
  func newTable() throws -> UInt64 {
    let frame = nextTable
    nextTable += 0x1000
    try memory.fill(frame, length: 0x1000)
    return frame
  }

  /// The address of the entry of `linear` at `level` (4 root .. 1), creating tables with `upper`
  /// rights down to it; `root` defaults to the tables' root.
  func entryAddress(_ linear: UInt64, level: Int, upper: UInt64 = PTE.open, root: UInt64? = nil) throws -> UInt64 {
    var table = root ?? self.root
    var current = 4
    while true {
      let address = table + ((linear >> UInt64(12 + 9 * (current - 1))) & 0x1FF) * 8
      if current == level { return address }
      var entry = try memory.read(UInt64.self, at: address)
      if entry & PTE.p == 0 {
        entry = try newTable() | upper
        try memory.write(entry, at: address)
      }
      table = entry & 0x000F_FFFF_FFFF_F000
      current -= 1
    }
  }

  /// Maps the 4 KiB page of `linear` to `physical` with leaf flags `leaf` (P added).
  func map(_ linear: UInt64, to physical: UInt64, leaf: UInt64, upper: UInt64 = PTE.open, root: UInt64? = nil) throws {
    try memory.write(physical | leaf | PTE.p, at: try entryAddress(linear, level: 1, upper: upper, root: root))
  }

  /// Sets the entry of `linear` at `level` to `value`.
  func set(_ linear: UInt64, level: Int, _ value: UInt64) throws {
    try memory.write(value, at: try entryAddress(linear, level: level))
  }

  /// The entry of `linear` at `level`.
  func entry(_ linear: UInt64, level: Int) throws -> UInt64 {
    try memory.read(UInt64.self, at: try entryAddress(linear, level: level))
  }
}

/// How an access ended, on the model or through the shadows.
enum AccessOutcome: Equatable, CustomStringConvertible {
  case ok(physical: UInt64)
  case fault(errorCode: UInt32)
  case other(String)

  var description: String {
    switch self {
    case .ok(let p): return "ok(0x\(String(p, radix: 16)))"
    case .fault(let code): return "#PF(0x\(String(code, radix: 16)))"
    case .other(let s): return s
    }
  }
}

/// The guest paging controls used by most tests: long mode, paging, NX on, WP as given.
func guestControl(root: UInt64, wp: Bool = true, nxe: Bool = true, smep: Bool = false) -> PagingControl {
  PagingControl(
    cr0: CR0.pe | CR0.pg | (wp ? CR0.wp : 0), cr3: root, cr4: CR4.pae | (smep ? CR4.smep : 0),
    efer: EFER.lme | EFER.lma | (nxe ? EFER.nxe : 0))
}

/// The X86 model's answer for an access: the oracle.
func modelAccess(
  _ linear: UInt64, kind: MemoryAccessKind, cpl: Int, control: PagingControl, memory: GuestMemory
) -> AccessOutcome {
  do throws(PageFault) {
    let t = try PageWalker.translate(
      linear, kind: kind, user: cpl == 3, control: control, memory: GuestPhysicalMemory(memory))
    return .ok(physical: t.physicalAddress)
  } catch {
    return .fault(errorCode: error.errorCode)
  }
}

/// The real CPU at ring 3 on the shadow tables, with the monitor's fault handling: walks the active
/// shadow as the hardware would and hands each fault to the shadows until the access completes or
/// the guest must see a fault. A write to a page-table page is emulated with `writeValue`; with
/// `store`, a write the real CPU completes stores `writeValue` too (and must not land on a page
/// table: that would bypass the write protection).
func shadowAccess(
  _ linear: UInt64, kind: MemoryAccessKind, shadows: ShadowPageTables, writeValue: UInt64 = 0,
  writeSize: Int = 8, store: Bool = false
) -> AccessOutcome {
  for _ in 0..<8 {
    let host = PagingControl(
      cr0: CR0.pe | CR0.pg | CR0.wp, cr3: shadows.activeRoot, cr4: CR4.pae, efer: EFER.lme | EFER.lma | EFER.nxe)
    do throws(PageFault) {
      let t = try PageWalker.translate(
        linear, kind: kind, user: true, control: host, memory: GuestPhysicalMemory(shadows.memory))
      if store && kind == .write {
        if shadows.isPageTableFrame(t.physicalAddress) { return .other("a direct store to a page table") }
        do { try shadows.memory.write(writeValue, at: t.physicalAddress) } catch { return .other("\(error)") }
      }
      return .ok(physical: t.physicalAddress)
    } catch {
      switch shadows.handleFault(linear: linear, kind: kind) {
      case .filled, .spurious: continue
      case .guestFault(let pf):
        guard pf.address == linear else { return .other("guest fault at another address") }
        return .fault(errorCode: pf.errorCode)
      case .pageTableWrite(let physical):
        do {
          try shadows.emulatePageTableWrite(physical: physical, value: writeValue, size: writeSize)
        } catch { return .other("emulated write failed: \(error)") }
        return .ok(physical: physical)
      case .monitorRegion: return .other("monitor region")
      case .forbiddenFrame(let p): return .other("forbidden frame 0x\(String(p, radix: 16))")
      }
    }
  }
  return .other("no progress after 8 faults")
}

/// A 1 MiB guest with its tables at 0x10000, data frames from 0x80000 and a shadow pool of
/// `poolFrames` frames (64 at most) at 0xC0000.
func makeGuest(poolFrames: Int = 64, maximumContexts: Int = 8, monitorRootEntries: [Int: UInt64] = [:]) throws -> (
  GuestMemory, GuestTables, ShadowPageTables
) {
  let memory = try GuestMemory(ramSize: 1 << 20)
  let tables = try GuestTables(memory: memory)
  let pool = ShadowFramePool(range: 0xC_0000..<0xC_0000 + UInt64(poolFrames) * 0x1000)
  let shadows = try ShadowPageTables(
    memory: memory, pool: pool, monitorRootEntries: monitorRootEntries, maximumContexts: maximumContexts)
  return (memory, tables, shadows)
}
