import CAtomics
import Foundation

/// `event_channel_op`: event channels, the shared info page's bitmaps and upcall delivery,
/// after Xen's 2-level ABI. A port made pending sets its bit in `evtchn_pending`; unless the port
/// is masked (`evtchn_mask`) the bit of its word in the notified vCPU's `evtchn_pending_sel` and
/// that vCPU's `evtchn_upcall_pending` are set, and the vCPU is woken. The runner enters the
/// guest's event callback (`deliverUpcall`) while `evtchn_upcall_mask` is clear.
extension ParavirtDomain {
  /// Offsets in the shared info page (short name).
  typealias Layout = Xen.SharedInfoLayout

  /// Registers `event_channel_op`.
  func registerEventChannelHypercalls(on dispatcher: HypercallDispatcher) {
    dispatcher.register(Xen.Hypercall.eventChannelOp.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in try self.eventChannelOp(call.arguments[0], call.arguments[1], caller) }
    }
  }

  /// Makes guest frame `frame` the shared info page (`memory_op(add_to_physmap)` with the
  /// shared-info space, and the PV domain builder). The first placement clears the page (no
  /// port pending or masked) with every vCPU's upcall mask set (events start disabled); moving
  /// the page carries its contents along. Time and wall clock are filled. -EINVAL for a frame
  /// the guest does not own.
  func placeSharedInfo(frame: UInt64) throws(HypercallFailure) {
    // The VMM writes this page on its own: never over a page table in use (its entries would
    // escape validation).
    guard ownsFrame(frame), memoryState.frames[frame].tableReferences == 0 else { throw HypercallFailure(.invalid) }
    let address = frame << 12
    let old = events.sharedInfo
    var page = [UInt8](repeating: 0, count: 4096)
    if let old, let bytes = try? memory.read(old, count: 4096) { page = bytes }  // moved: contents follow
    guard (try? memory.write(address, bytes: page)) != nil else { throw HypercallFailure(.invalid) }
    events.sharedInfo = address
    for v in vcpus.indices {
      if events.vcpus[v].vcpuInfoAddress == nil, v < Layout.vcpuInfoSlots {
        // Xen's vcpu_info starts with events masked.
        if old == nil { storeByte(1, at: address + UInt64(v) * Layout.vcpuInfoSize + Layout.upcallMask) }
      }
      events.vcpus[v].timeStale = true  // filled by its own runner (its TSC is read there)
    }
    updateWallClock()
  }

  /// A machine reset: the next boot starts with no shared info page, no ports, no timers and
  /// no event callback (the old page is guest RAM again, never written by the VMM).
  func resetEvents() {
    events = EventChannelTable(vcpuCount: vcpus.count)
    for v in vcpus.indices { vcpus[v].eventCallback = 0 }
  }

  // MARK: Addresses

  /// The guest-physical address of vCPU `v`'s `vcpu_info`, or nil (no shared info page yet, or
  /// a vCPU beyond the page's 32 slots that registered none).
  func vcpuInfo(_ v: Int) -> UInt64? {
    if let a = events.vcpus[v].vcpuInfoAddress { return a }
    guard let s = events.sharedInfo, v < Layout.vcpuInfoSlots else { return nil }
    return s + UInt64(v) * Layout.vcpuInfoSize
  }

  /// Guest-physical byte or word access for the shared info page and `vcpu_info`. Words and
  /// bytes the guest changes with LOCK-prefixed instructions from other vCPUs are read and
  /// changed atomically (`atomicUpdate`), as Xen's `guest_test_and_set_bit` are; an address
  /// outside RAM reads 0 and ignores stores (the page was owned RAM when placed).
  func loadByte(_ a: UInt64) -> UInt8 {
    guard let p = memory.hostPointer(a, length: 1) else { return 0 }
    return UInt8(truncatingIfNeeded: ca_load(p, 1))
  }
  /// See `loadByte`.
  func storeByte(_ v: UInt8, at a: UInt64) { _ = atomicUpdate(a, size: 1) { _ in UInt64(v) } }
  /// See `loadByte`.
  func loadWord(_ a: UInt64) -> UInt64 {
    guard let p = memory.hostPointer(a, length: 8) else { return 0 }
    return ca_load(p, 8)
  }
  /// See `loadByte`.
  func storeWord(_ v: UInt64, at a: UInt64) { _ = atomicUpdate(a, size: 8) { _ in v } }

  /// Replaces the `size` bytes at `a` with `change(old)` atomically; returns the old value.
  @discardableResult
  func atomicUpdate(_ a: UInt64, size: Int, _ change: (UInt64) -> UInt64) -> UInt64 {
    guard let p = memory.hostPointer(a, length: UInt64(size)) else { return 0 }
    while true {
      let old = ca_load(p, Int32(size))
      if ca_compare_exchange(p, Int32(size), old, change(old)) { return old }
    }
  }

  /// Bit `port` of the bitmap at shared-info offset `bitmap`.
  func testBit(_ bitmap: UInt64, _ port: UInt32) -> Bool {
    guard let s = events.sharedInfo else { return false }
    return loadWord(s + bitmap + UInt64(port / 64) * 8) & (1 << UInt64(port % 64)) != 0
  }

  /// Sets (or clears) bit `port` of the bitmap at `bitmap` atomically; returns its old value.
  @discardableResult
  func setBit(_ bitmap: UInt64, _ port: UInt32, _ value: Bool = true) -> Bool {
    guard let s = events.sharedInfo else { return false }
    let bit: UInt64 = 1 << UInt64(port % 64)
    let old = atomicUpdate(s + bitmap + UInt64(port / 64) * 8, size: 8) { value ? $0 | bit : $0 & ~bit }
    return old & bit != 0
  }

  // MARK: Pending events

  /// Makes `port` pending (Xen's 2-level `evtchn_set_pending`) and wakes the vCPU it notifies.
  func setPending(_ port: UInt32) {
    guard events.sharedInfo != nil else { return }
    let v = events.channels[Int(port)].notifyVCPU
    if setBit(Layout.pendingBitmap, port) { return }
    if !testBit(Layout.maskBitmap, port) { markWordPending(port / 64, vcpu: v) }
    // A vCPU polling this port wakes whatever the mask says.
    for (i, e) in events.vcpus.enumerated() where e.pollPorts?.contains(port) == true { wake(i) }
  }

  /// Sets bit `word` of vCPU `v`'s `evtchn_pending_sel`; when it was clear, its upcall becomes
  /// pending and the vCPU is woken.
  func markWordPending(_ word: UInt32, vcpu v: Int) {
    guard let info = vcpuInfo(v) else { return }
    let bit: UInt64 = 1 << UInt64(word)
    let old = atomicUpdate(info + Layout.pendingSelector, size: 8) { $0 | bit }
    if old & bit == 0 { markUpcallPending(v) }
  }

  /// Sets vCPU `v`'s `evtchn_upcall_pending` and wakes its runner.
  func markUpcallPending(_ v: Int) {
    guard let info = vcpuInfo(v) else { return }
    storeByte(1, at: info + Layout.upcallPending)
    wake(v)
  }

  /// Wakes vCPU `v`'s runner: out of a block or HLT, or out of the guest to take an upcall.
  func wake(_ v: Int) {
    guard machine.runners.indices.contains(v) else { return }
    RunnerKick(machine.runners[v]).wake()
  }

  /// Whether vCPU `v` has an upcall to take: upcall pending and not masked.
  func upcallDeliverable(_ v: Int) -> Bool {
    guard let info = vcpuInfo(v) else { return false }
    return loadByte(info + Layout.upcallPending) != 0 && loadByte(info + Layout.upcallMask) == 0
  }

  /// Whether vCPU `v`'s upcalls are masked (`evtchn_upcall_mask`); true while it has no
  /// `vcpu_info` (nothing can be delivered then).
  func isUpcallMasked(_ v: Int) -> Bool {
    guard let info = vcpuInfo(v) else { return true }
    return loadByte(info + Layout.upcallMask) != 0
  }

  /// Sets or clears vCPU `v`'s `evtchn_upcall_mask` (bounce frames of event upcalls set it;
  /// `sched_op(block)` clears it).
  func setUpcallMask(_ v: Int, _ masked: Bool) {
    guard let info = vcpuInfo(v) else { return }
    storeByte(masked ? 1 : 0, at: info + Layout.upcallMask)
  }

  /// Enters `caller`'s event callback when it has an upcall to take (pending, unmasked, a callback
  /// registered): the bounce frame on its stack, the upcall mask set. True when it did.
  func deliverUpcall(_ caller: HypercallCaller) throws(HypercallFailure) -> Bool {
    let v = caller.index
    let callback = vcpus[v].eventCallback
    guard callback != 0, upcallDeliverable(v) else { return false }
    guard try readyForUpcall(caller) else { return false }
    updateTime(vcpu: v)
    try bounce(caller, to: callback, maskEvents: true)
    return true
  }

  // MARK: Time

  /// System time in ns: the guest clock.
  var systemTime: UInt64 { machine.clock.nanoseconds }

  /// Fills vCPU `v`'s `vcpu_time_info` when it was marked stale (a new place for it); on `v`'s
  /// own runner thread, which may read its TSC.
  func refreshTimeIfStale(_ v: Int) {
    guard events.vcpus[v].timeStale else { return }
    events.vcpus[v].timeStale = false
    updateTime(vcpu: v)
  }

  /// Fills vCPU `v`'s `vcpu_time_info` (version odd while the fields change, as Xen does). On
  /// `v`'s own runner thread only: it reads the vCPU's TSC.
  func updateTime(vcpu v: Int) {
    guard let info = vcpuInfo(v) else { return }
    let t = info + Layout.time
    let runner = machine.runners.indices.contains(v) ? machine.runners[v] : nil
    let frequency = runner?.vcpu.timeStampCounterFrequency ?? 1_000_000_000
    let tsc = (try? runner?.vcpu.timeStampCounter()) ?? 0
    let now = systemTime
    let version = (try? memory.read(UInt32.self, at: t + Layout.timeVersion)) ?? 0
    try? memory.write((version | 1) &+ (version & 1 == 0 ? 0 : 2), at: t + Layout.timeVersion)
    let (multiplier, shift) = Self.timeScale(frequency: frequency)
    storeWord(tsc, at: t + Layout.timeTSCTimestamp)
    storeWord(now, at: t + Layout.timeSystemTime)
    try? memory.write(multiplier, at: t + Layout.timeMultiplier)
    storeByte(UInt8(bitPattern: shift), at: t + Layout.timeShift)
    storeByte(0, at: t + Layout.timeFlags)
    let odd = (try? memory.read(UInt32.self, at: t + Layout.timeVersion)) ?? 1
    try? memory.write(odd &+ 1, at: t + Layout.timeVersion)
  }

  /// Xen's TSC scale for `frequency` Hz: ns = ((tsc << shift, or >> -shift) * mul) >> 32, with
  /// mul in [2^31, 2^32).
  static func timeScale(frequency: UInt64) -> (UInt32, Int8) {
    let f = max(frequency, 1)
    var shift: Int8 = 0
    var scaled = Double(f)
    while scaled <= 1e9 {
      scaled *= 2
      shift += 1
    }
    while scaled / 2 > 1e9 {
      scaled /= 2
      shift -= 1
    }
    let mul = (1e9 / scaled) * 4_294_967_296.0
    return (UInt32(min(mul, 4_294_967_295)), shift)
  }

  /// Fills the wall clock: the time of day at system time 0 (wc_version odd while it changes).
  func updateWallClock() {
    guard let s = events.sharedInfo else { return }
    let nowNanoseconds = UInt64(max(0, Date().timeIntervalSince1970 * 1e9))
    let boot = nowNanoseconds &- systemTime
    let version = (try? memory.read(UInt32.self, at: s + Layout.wallClockVersion)) ?? 0
    try? memory.write(version | 1, at: s + Layout.wallClockVersion)
    let seconds = boot / 1_000_000_000
    try? memory.write(UInt32(truncatingIfNeeded: seconds), at: s + Layout.wallClockSeconds)
    try? memory.write(UInt32(boot % 1_000_000_000), at: s + Layout.wallClockNanoseconds)
    try? memory.write(UInt32(truncatingIfNeeded: seconds >> 32), at: s + Layout.wallClockSecondsHigh)
    try? memory.write((version | 1) &+ 1, at: s + Layout.wallClockVersion)
  }

  // MARK: event_channel_op

  /// `event_channel_op(cmd, arg)`: `arg` points to the command's structure.
  private func eventChannelOp(_ command: UInt64, _ arg: UInt64, _ caller: HypercallCaller) throws(HypercallFailure)
    -> UInt64
  {
    let vcpuCount = vcpus.count
    switch Xen.EventChannelOp(rawValue: command) {
    case .allocUnbound:
      // evtchn_alloc_unbound { domid_t dom @0, remote_dom @2; evtchn_port_t port @4 (out) }
      let dom = try read(UInt16.self, at: arg, for: caller)
      let remote = try read(UInt16.self, at: arg &+ 2, for: caller)
      guard dom == Xen.domainSelf || dom == 0 else { throw HypercallFailure(.noSuchProcess) }
      guard remote == Xen.domainSelf || remote == 0 else { throw HypercallFailure(.noSuchProcess) }
      guard let port = events.freePort() else { throw HypercallFailure(.noSpace) }
      try write(port, at: arg &+ 4, for: caller)
      events.channels[Int(port)] = .init(binding: .unbound(remoteDomain: 0), notifyVCPU: 0)
      return 0
    case .bindVIRQ:
      // evtchn_bind_virq { u32 virq @0, u32 vcpu @4; port @8 (out) }
      let virq = try read(UInt32.self, at: arg, for: caller)
      let v = try read(UInt32.self, at: arg &+ 4, for: caller)
      guard virq < Xen.virqCount else { throw HypercallFailure(.invalid) }
      guard v < vcpuCount else { throw HypercallFailure(.noEntry) }
      if !EventChannelTable.isPerVCPU(virq) && v != 0 { throw HypercallFailure(.invalid) }
      let bound = EventChannelTable.isPerVCPU(virq) ? events.vcpus[Int(v)].virqPorts[virq] : findGlobal(virq)
      guard bound == nil else { throw HypercallFailure(.exists) }
      guard let port = events.freePort() else { throw HypercallFailure(.noSpace) }
      try write(port, at: arg &+ 8, for: caller)
      events.channels[Int(port)] = .init(binding: .virq(virq), notifyVCPU: Int(v))
      events.vcpus[Int(v)].virqPorts[virq] = port
      return 0
    case .bindIPI:
      // evtchn_bind_ipi { u32 vcpu @0; port @4 (out) }
      let v = try read(UInt32.self, at: arg, for: caller)
      guard v < vcpuCount else { throw HypercallFailure(.noEntry) }
      guard let port = events.freePort() else { throw HypercallFailure(.noSpace) }
      try write(port, at: arg &+ 4, for: caller)
      events.channels[Int(port)] = .init(binding: .ipi, notifyVCPU: Int(v))
      return 0
    case .close:
      let port = try read(UInt32.self, at: arg, for: caller)
      try close(port)
      return 0
    case .send:
      let port = try read(UInt32.self, at: arg, for: caller)
      guard events.isValid(port) else { throw HypercallFailure(.invalid) }
      switch events.channels[Int(port)].binding {
      case .ipi: setPending(port)
      case .unbound: break  // nobody bound the other end: dropped, as Xen does
      case .free, .reserved, .virq: throw HypercallFailure(.invalid)
      }
      return 0
    case .status:
      // evtchn_status { domid_t dom @0; port @4; status @8 (out), vcpu @12 (out), union @16 }
      let dom = try read(UInt16.self, at: arg, for: caller)
      let port = try read(UInt32.self, at: arg &+ 4, for: caller)
      guard dom == Xen.domainSelf || dom == 0 else { throw HypercallFailure(.noSuchProcess) }
      guard events.isValid(port) else { throw HypercallFailure(.invalid) }
      let c = events.channels[Int(port)]
      var status = Xen.EventChannelStatus.closed
      var detail: UInt32 = 0
      switch c.binding {
      case .free, .reserved: status = .closed
      case .unbound(let remote): (status, detail) = (.unbound, UInt32(remote))
      case .virq(let virq): (status, detail) = (.virq, virq)
      case .ipi: status = .ipi
      }
      var out: [UInt8] = []
      for word in [status.rawValue, UInt32(c.notifyVCPU), detail, 0] {
        out += withUnsafeBytes(of: word.littleEndian) { Array($0) }
      }
      try write(out, at: arg &+ 8, for: caller)
      return 0
    case .bindVCPU:
      // evtchn_bind_vcpu { port @0, vcpu @4 }
      let port = try read(UInt32.self, at: arg, for: caller)
      let v = try read(UInt32.self, at: arg &+ 4, for: caller)
      guard events.isValid(port) else { throw HypercallFailure(.invalid) }
      guard v < vcpuCount else { throw HypercallFailure(.noEntry) }
      switch events.channels[Int(port)].binding {
      case .virq(let virq) where !EventChannelTable.isPerVCPU(virq):
        events.vcpus[events.channels[Int(port)].notifyVCPU].virqPorts[virq] = nil
        events.vcpus[Int(v)].virqPorts[virq] = port
      case .unbound: break
      default: throw HypercallFailure(.invalid)
      }
      events.channels[Int(port)].notifyVCPU = Int(v)
      return 0
    case .unmask:
      let port = try read(UInt32.self, at: arg, for: caller)
      guard events.isValid(port) else { throw HypercallFailure(.invalid) }
      unmask(port)
      return 0
    case .bindInterdomain, .bindPIRQ, .reset, nil:
      throw HypercallFailure(.notImplemented)
    }
  }

  /// Closes `port`: its binding ends and its pending bit is cleared. -EINVAL for a port out of
  /// range or not in use.
  func close(_ port: UInt32) throws(HypercallFailure) {
    guard events.isValid(port) else { throw HypercallFailure(.invalid) }
    let c = events.channels[Int(port)]
    switch c.binding {
    case .free, .reserved: throw HypercallFailure(.invalid)
    case .virq(let virq): events.vcpus[c.notifyVCPU].virqPorts[virq] = nil
    case .unbound, .ipi: break
    }
    events.channels[Int(port)] = .init()
    setBit(Layout.pendingBitmap, port, false)
  }

  /// `evtchn_unmask`: clears the mask bit; a port still pending raises the upcall again.
  func unmask(_ port: UInt32) {
    guard setBit(Layout.maskBitmap, port, false), testBit(Layout.pendingBitmap, port) else { return }
    markWordPending(port / 64, vcpu: events.channels[Int(port)].notifyVCPU)
  }

  /// Raises VIRQ `virq` on vCPU `v` (the timer, the console) when the guest bound it.
  func raiseVIRQ(_ virq: Xen.VIRQ, vcpu v: Int) {
    let n = virq.rawValue
    let port = EventChannelTable.isPerVCPU(n) ? events.vcpus[v].virqPorts[n] : findGlobal(n)
    if let port { setPending(port) }
  }

  /// The port a global VIRQ is bound to, on whichever vCPU it notifies.
  private func findGlobal(_ virq: UInt32) -> UInt32? {
    events.vcpus.lazy.compactMap { $0.virqPorts[virq] }.first
  }
}
