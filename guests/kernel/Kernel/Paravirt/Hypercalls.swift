// The hypercalls of the paravirtual mode (Xen's numbers and x86-64 layouts), through the
// hypercall page (Arch/pv.S `pv_hypercall`).

@_extern(c, "pv_hypercall")
func pv_hypercall(_ number: UInt64, _ a1: UInt64, _ a2: UInt64, _ a3: UInt64, _ a4: UInt64, _ a5: UInt64) -> Int64
@_extern(c, "pv_events_disable") func pv_events_disable()
@_extern(c, "pv_events_enable") func pv_events_enable()
@_extern(c, "pv_symbol") func pv_symbol(_ index: Int) -> UInt64

/// Xen's hypercall numbers, commands and constants the kernel uses.
enum Hypercall {
  static let setTrapTable: UInt64 = 0
  static let mmuUpdate: UInt64 = 1
  static let stackSwitch: UInt64 = 3
  static let setCallbacks: UInt64 = 4
  static let multicall: UInt64 = 13
  static let updateVAMapping: UInt64 = 14
  static let xenVersion: UInt64 = 17
  static let consoleIO: UInt64 = 18
  static let vcpuOp: UInt64 = 24
  static let setSegmentBase: UInt64 = 25
  static let mmuextOp: UInt64 = 26
  static let schedOp: UInt64 = 29
  static let eventChannelOp: UInt64 = 32
  /// Trivisor's benchmark-marker hypercall (the VMM's bench harness answers it; -ENOSYS otherwise).
  static let benchmarkMarker: UInt64 = 0x40

  /// `mmuext_op` commands.
  static let pinL4Table: UInt64 = 3
  static let unpinTable: UInt64 = 4
  static let newBasePointer: UInt64 = 5
  static let tlbFlushLocal: UInt64 = 6
  static let invalidatePageLocal: UInt64 = 7
  static let newUserBasePointer: UInt64 = 15
  /// `sched_op` commands.
  static let block: UInt64 = 1
  static let shutdown: UInt64 = 2
  /// `update_va_mapping` flag: INVLPG the address on this vCPU.
  static let invalidateAfterUpdate: UInt64 = 2
  /// DOMID_SELF.
  static let domainSelf: UInt64 = 0x7FF0

  /// One hypercall with up to five arguments.
  @discardableResult
  static func call(_ number: UInt64, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0, _ a4: UInt64 = 0)
    -> Int64
  {
    pv_hypercall(number, a1, a2, a3, a4, 0)
  }

  /// `mmu_update` of one entry: a store to a page-table frame, validated by the VMM.
  static func updateEntry(physical: UInt64, value: UInt64) -> Int64 {
    var request: (UInt64, UInt64) = (physical, value)
    return withUnsafeMutablePointer(to: &request) {
      call(mmuUpdate, address($0), 1, 0, domainSelf)
    }
  }

  /// `mmuext_op` with one operation.
  static func extendedOperation(_ command: UInt64, _ argument: UInt64) -> Int64 {
    var operation: (UInt64, UInt64, UInt64) = (command, argument, 0)
    return withUnsafeMutablePointer(to: &operation) {
      call(mmuextOp, address($0), 1, 0, domainSelf)
    }
  }

  /// The address of a value for a hypercall argument (the kernel's virtual == physical).
  static func address<T>(_ pointer: UnsafeMutablePointer<T>) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }
}

/// A batch of hypercalls run by one `multicall`: entries of Xen's `multicall_entry` {op, result,
/// args[6]} (64 bytes) in a caller-owned buffer.
struct Multicall {
  static let capacity = 8
  private var entries:
    (
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
      (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    ) = (
      (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0),
      (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0)
    )
  private(set) var count = 0

  /// Appends one call (at most `capacity`).
  mutating func add(_ number: UInt64, _ a1: UInt64, _ a2: UInt64 = 0, _ a3: UInt64 = 0, _ a4: UInt64 = 0) {
    guard count < Self.capacity else { return }
    let index = count
    withUnsafeMutableBytes(of: &entries) { raw in
      let words = raw.bindMemory(to: UInt64.self).baseAddress! + index * 8
      words[0] = number
      words[1] = 0
      words[2] = a1
      words[3] = a2
      words[4] = a3
      words[5] = a4
      words[6] = 0
      words[7] = 0
    }
    count += 1
  }

  /// Runs the batch; true when the multicall and every entry returned 0 or more.
  mutating func run() -> Bool {
    let count = self.count
    return withUnsafeMutableBytes(of: &entries) { raw in
      let words = raw.bindMemory(to: UInt64.self).baseAddress!
      let status = Hypercall.call(Hypercall.multicall, UInt64(UInt(bitPattern: words)), UInt64(count))
      guard status == 0 else { return false }
      for index in 0..<count where Int64(bitPattern: words[index * 8 + 1]) < 0 { return false }
      return true
    }
  }
}
