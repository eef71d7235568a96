import Testing

@testable import VMM

/// Event channels, the shared info page, upcalls, sched_op, set_timer_op, vcpu_op and
/// set_callbacks, called directly on a two-vCPU machine (paging off: guest pointers are physical).
@Suite struct EventChannelTests {
  typealias L = Xen.SharedInfoLayout
  static let sharedFrame: UInt64 = 0x50  // 0x50000
  static let arg: UInt64 = 0x8000  // where the tests put the hypercalls' structures
  static let unmapped: UInt64 = 0x4000_0000  // beyond RAM: -EFAULT

  final class Rig {
    let engine = ScriptedEngine(scripts: [[], []])
    let machine: Machine
    var domain: ParavirtDomain { machine.paravirt }
    var memory: GuestMemory { machine.memory }

    init(placeSharedInfo: Bool = true) throws {
      var configuration = MachineConfiguration(timeoutSeconds: 60)
      configuration.cpuCount = 2
      let boot = BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters())
      machine = try Machine(
        memory: try GuestMemory(ramSize: 1 << 20), boot: boot, engine: engine, configuration: configuration)
      if placeSharedInfo { try domain.placeSharedInfo(frame: EventChannelTests.sharedFrame) }
    }

    func caller(_ v: Int = 0) -> HypercallCaller { HypercallCaller(index: v, vcpu: engine.vcpus[v]) }

    /// Runs hypercall `number` for vCPU `v` and returns its result.
    func result(_ number: Xen.Hypercall, _ args: UInt64..., vcpu v: Int = 0) throws -> HypercallResult {
      let call = HypercallDispatcher.Call(
        number: number.rawValue, arguments: args + Array(repeating: 0, count: 6 - args.count), longMode: true)
      return try machine.hypercalls.dispatch(call, caller: caller(v))
    }

    /// The value hypercall `number` returns (a `.block` counts as its value).
    func call(_ number: Xen.Hypercall, _ args: UInt64..., vcpu v: Int = 0) throws -> Int64 {
      let call = HypercallDispatcher.Call(
        number: number.rawValue, arguments: args + Array(repeating: 0, count: 6 - args.count), longMode: true)
      switch try machine.hypercalls.dispatch(call, caller: caller(v)) {
      case .value(let x), .block(let x): return Int64(bitPattern: x)
      default: return .min
      }
    }

    /// `event_channel_op(op)` with `words` (u32) stored at `arg`.
    func evtchn(_ op: Xen.EventChannelOp, _ words: [UInt32], vcpu v: Int = 0) throws -> Int64 {
      for (i, w) in words.enumerated() { try memory.write(w, at: arg + UInt64(i) * 4) }
      return try call(.eventChannelOp, op.rawValue, arg, vcpu: v)
    }

    func u32(_ a: UInt64) throws -> UInt32 { try memory.read(UInt32.self, at: a) }
    func u64(_ a: UInt64) throws -> UInt64 { try memory.read(UInt64.self, at: a) }
    func u8(_ a: UInt64) throws -> UInt8 { try memory.read(UInt8.self, at: a) }

    var shared: UInt64 { EventChannelTests.sharedFrame << 12 }
    func info(_ v: Int) -> UInt64 { domain.vcpuInfo(v)! }
    func pending(_ port: UInt32) throws -> Bool {
      try u64(shared + L.pendingBitmap + UInt64(port / 64) * 8) >> UInt64(port % 64) & 1 == 1
    }
    func setMask(_ port: UInt32, _ on: Bool) throws {
      let a = shared + L.maskBitmap + UInt64(port / 64) * 8
      let w = try u64(a)
      try memory.write(on ? w | 1 << UInt64(port % 64) : w & ~(1 << UInt64(port % 64)), at: a)
    }

    /// Binds an IPI for vCPU `v`; its port.
    func bindIPI(_ v: UInt32) throws -> UInt32 {
      #expect(try evtchn(.bindIPI, [v, 0]) == 0)
      return try u32(arg + 4)
    }
  }

  static func err(_ e: Xen.Error) -> Int64 { -e.rawValue }

  // MARK: Shared info

  @Test func theSharedInfoPageGoesOnlyToOwnedFramesAndCarriesTimeAndWallClock() throws {
    let rig = try Rig(placeSharedInfo: false)
    #expect(throws: HypercallFailure(.invalid)) { try rig.domain.placeSharedInfo(frame: 0x10_0000) }
    try rig.memory.write(UInt64.max, at: rig.shared + L.pendingBitmap)  // garbage cleared
    try rig.domain.placeSharedInfo(frame: Self.sharedFrame)
    #expect(try rig.u64(rig.shared + L.pendingBitmap) == 0)
    for v in 0..<2 {
      #expect(try rig.u32(rig.info(v) + L.time + L.timeVersion) == 0)  // filled by the vCPU's runner
      rig.domain.refreshTimeIfStale(v)
      let t = rig.info(v) + L.time
      #expect(rig.info(v) == rig.shared + UInt64(v) * 64)
      #expect(try rig.u8(rig.info(v) + L.upcallMask) == 1)  // events start masked
      let version = try rig.u32(t + L.timeVersion)
      #expect(version != 0 && version % 2 == 0)
      // The scripted vCPU's TSC runs at 1 GHz: ns = (tsc << 1) * 2^31 >> 32.
      #expect(try rig.u32(t + L.timeMultiplier) == 1 << 31)
      #expect(try rig.u8(t + L.timeShift) == 1)
      #expect(try rig.u64(t + L.timeSystemTime) <= rig.machine.clock.nanoseconds)
    }
    let wcVersion = try rig.u32(rig.shared + L.wallClockVersion)
    #expect(wcVersion != 0 && wcVersion % 2 == 0)
    #expect(try rig.u32(rig.shared + L.wallClockSeconds) > 1_600_000_000)  // after 2020
    #expect(try rig.u32(rig.shared + L.wallClockNanoseconds) < 1_000_000_000)
  }

  @Test func timeScalesFollowXensFormula() {
    for frequency: UInt64 in [1_000_000_000, 2_500_000_000, 3_000_000, 1_193_182] {
      let (mul, shift) = ParavirtDomain.timeScale(frequency: frequency)
      #expect(mul >= 1 << 31)
      let tsc = frequency  // one second of ticks
      let shifted = shift >= 0 ? tsc << UInt64(shift) : tsc >> UInt64(-shift)
      let ns = shifted.multipliedFullWidth(by: UInt64(mul))
      let value = ns.low >> 32 | ns.high << 32
      #expect(value > 999_999_000 && value <= 1_000_000_000)
    }
  }

  // MARK: event_channel_op

  @Test func allocUnboundGivesTheLowestFreePortAndValidates() throws {
    let rig = try Rig()
    #expect(try rig.evtchn(.allocUnbound, [UInt32(Xen.domainSelf) | UInt32(Xen.domainSelf) << 16, 0]) == 0)
    #expect(try rig.u32(Self.arg + 4) == 1)  // port 0 is reserved
    #expect(try rig.evtchn(.allocUnbound, [0, 0]) == 0)
    #expect(try rig.u32(Self.arg + 4) == 2)
    #expect(try rig.evtchn(.allocUnbound, [5, 0]) == Self.err(.noSuchProcess))
    #expect(try rig.evtchn(.allocUnbound, [5 << 16, 0]) == Self.err(.noSuchProcess))
    #expect(try rig.call(.eventChannelOp, Xen.EventChannelOp.allocUnbound.rawValue, Self.unmapped) == Self.err(.fault))
    #expect(try rig.evtchn(.status, [0, 2, 0, 0, 0, 0]) == 0)
    #expect(try rig.u32(Self.arg + 8) == Xen.EventChannelStatus.unbound.rawValue)
    // Sending on an unbound port is dropped.
    #expect(try rig.evtchn(.send, [2]) == 0)
    #expect(try !rig.pending(2))
  }

  @Test func portsRunOutWithENOSPC() throws {
    let rig = try Rig()
    for _ in 1..<EventChannelTable.portCount { #expect(try rig.evtchn(.allocUnbound, [0, 0]) == 0) }
    #expect(try rig.u32(Self.arg + 4) == UInt32(EventChannelTable.portCount - 1))
    #expect(try rig.evtchn(.allocUnbound, [0, 0]) == Self.err(.noSpace))
    #expect(try rig.evtchn(.bindIPI, [0, 0]) == Self.err(.noSpace))
    #expect(try rig.evtchn(.bindVIRQ, [0, 0, 0]) == Self.err(.noSpace))
    #expect(try rig.evtchn(.close, [7]) == 0)
    #expect(try rig.evtchn(.bindIPI, [1, 0]) == 0)
    #expect(try rig.u32(Self.arg + 4) == 7)
  }

  @Test func bindVIRQValidatesAndRefusesASecondBinding() throws {
    let rig = try Rig()
    let timer = Xen.VIRQ.timer.rawValue
    let console = Xen.VIRQ.console.rawValue
    #expect(try rig.evtchn(.bindVIRQ, [timer, 0, 0]) == 0)
    let port = try rig.u32(Self.arg + 8)
    #expect(try rig.evtchn(.bindVIRQ, [timer, 0, 0]) == Self.err(.exists))
    #expect(try rig.evtchn(.bindVIRQ, [timer, 1, 0]) == 0)  // per vCPU
    #expect(try rig.u32(Self.arg + 8) != port)
    #expect(try rig.evtchn(.bindVIRQ, [Xen.virqCount, 0, 0]) == Self.err(.invalid))
    #expect(try rig.evtchn(.bindVIRQ, [timer, 2, 0]) == Self.err(.noEntry))
    #expect(try rig.evtchn(.bindVIRQ, [console, 1, 0]) == Self.err(.invalid))  // global: vCPU 0
    #expect(try rig.evtchn(.bindVIRQ, [console, 0, 0]) == 0)
    let consolePort = try rig.u32(Self.arg + 8)
    #expect(try rig.evtchn(.bindVCPU, [consolePort, 1]) == 0)
    #expect(try rig.evtchn(.bindVIRQ, [console, 0, 0]) == Self.err(.exists))  // still bound, on vCPU 1
    #expect(try rig.evtchn(.status, [UInt32(Xen.domainSelf), consolePort, 0, 0, 0, 0]) == 0)
    #expect(try rig.u32(Self.arg + 8) == Xen.EventChannelStatus.virq.rawValue)
    #expect(try rig.u32(Self.arg + 12) == 1)
    #expect(try rig.u32(Self.arg + 16) == console)
    // A VIRQ port takes no send; closing it frees the VIRQ.
    #expect(try rig.evtchn(.send, [port]) == Self.err(.invalid))
    #expect(try rig.evtchn(.close, [port]) == 0)
    #expect(try rig.evtchn(.close, [port]) == Self.err(.invalid))
    #expect(try rig.evtchn(.bindVIRQ, [timer, 0, 0]) == 0)
    #expect(try rig.u32(Self.arg + 8) == port)
  }

  @Test func badPortsAreEINVALAndBadVCPUsENOENT() throws {
    let rig = try Rig()
    for op in [Xen.EventChannelOp.send, .close, .unmask] {
      #expect(try rig.evtchn(op, [0]) == Self.err(.invalid))
      #expect(try rig.evtchn(op, [UInt32(EventChannelTable.portCount)]) == Self.err(.invalid))
    }
    #expect(try rig.evtchn(.send, [9]) == Self.err(.invalid))  // free
    #expect(try rig.evtchn(.close, [9]) == Self.err(.invalid))
    #expect(try rig.evtchn(.status, [0, 0, 0, 0, 0, 0]) == Self.err(.invalid))
    #expect(try rig.evtchn(.status, [3, 1, 0, 0, 0, 0]) == Self.err(.noSuchProcess))
    #expect(try rig.evtchn(.status, [0, 9, 0, 0, 0, 0]) == 0)
    #expect(try rig.u32(Self.arg + 8) == Xen.EventChannelStatus.closed.rawValue)
    #expect(try rig.evtchn(.bindIPI, [2, 0]) == Self.err(.noEntry))
    let ipi = try rig.bindIPI(0)
    #expect(try rig.evtchn(.bindVCPU, [ipi, 1]) == Self.err(.invalid))  // IPIs stay on their vCPU
    #expect(try rig.evtchn(.bindVCPU, [ipi, 2]) == Self.err(.noEntry))
    #expect(try rig.evtchn(.bindVCPU, [0, 1]) == Self.err(.invalid))
    #expect(try rig.call(.eventChannelOp, Xen.EventChannelOp.send.rawValue, Self.unmapped) == Self.err(.fault))
    #expect(try rig.call(.eventChannelOp, 99, Self.arg) == Self.err(.notImplemented))
    #expect(
      try rig.call(.eventChannelOp, Xen.EventChannelOp.bindInterdomain.rawValue, Self.arg) == Self.err(.notImplemented))
  }

  @Test func sendSetsTheTwoLevelBitsOfTheNotifiedVCPU() throws {
    let rig = try Rig()
    for _ in 0..<70 { _ = try rig.evtchn(.allocUnbound, [0, 0]) }  // the IPI lands in word 1
    let port = try rig.bindIPI(1)
    #expect(port == 71)
    #expect(try rig.evtchn(.status, [0, port, 0, 0, 0, 0]) == 0)
    #expect(try rig.u32(Self.arg + 8) == Xen.EventChannelStatus.ipi.rawValue)
    #expect(try rig.u32(Self.arg + 12) == 1)
    #expect(try rig.evtchn(.send, [port]) == 0)
    #expect(try rig.pending(port))
    #expect(try rig.u64(rig.info(1) + L.pendingSelector) == 1 << 1)
    #expect(try rig.u8(rig.info(1) + L.upcallPending) == 1)
    #expect(try rig.u8(rig.info(0) + L.upcallPending) == 0)
    #expect(try rig.u64(rig.info(0) + L.pendingSelector) == 0)
  }

  @Test func aMaskedPortStaysPendingUntilUnmaskRaisesTheUpcall() throws {
    let rig = try Rig()
    let port = try rig.bindIPI(0)
    try rig.setMask(port, true)
    #expect(try rig.evtchn(.send, [port]) == 0)
    #expect(try rig.pending(port))
    #expect(try rig.u64(rig.info(0) + L.pendingSelector) == 0)
    #expect(try rig.u8(rig.info(0) + L.upcallPending) == 0)
    #expect(try rig.evtchn(.unmask, [port]) == 0)
    #expect(try rig.u64(rig.info(0) + L.pendingSelector) == 1)
    #expect(try rig.u8(rig.info(0) + L.upcallPending) == 1)
    #expect(try rig.u64(rig.shared + L.maskBitmap) == 0)
    // Close clears the pending bit.
    #expect(try rig.evtchn(.close, [port]) == 0)
    #expect(try !rig.pending(port))
  }

  // MARK: Upcalls

  @Test func anUpcallWaitsForItsCallbackAndTheMaskThenBouncesWithEventsMasked() throws {
    let rig = try Rig()
    let cpu = rig.engine.vcpus[0]
    cpu.currentRegisters.rsp = 0x7008
    cpu.currentRegisters.rip = 0x1234
    cpu.currentRegisters.rcx = 0xC0
    cpu.currentRegisters.r11 = 0x11
    cpu.currentRegisters.rflags = 0x202
    #expect(try rig.call(.setCallbacks, 0xCAFE, 0xFA11, 0x5C) == 0)
    #expect(rig.domain.vcpus[0].eventCallback == 0xCAFE)
    #expect(rig.domain.vcpus[0].failsafeCallback == 0xFA11)
    #expect(rig.domain.vcpus[0].syscallCallback == 0x5C)
    let port = try rig.bindIPI(0)
    #expect(try rig.evtchn(.send, [port]) == 0)
    #expect(try !rig.domain.deliverUpcall(rig.caller()))  // still masked
    try rig.memory.write(UInt8(0), at: rig.info(0) + L.upcallMask)
    #expect(try rig.domain.deliverUpcall(rig.caller()))
    #expect(cpu.currentRegisters.rip == 0xCAFE)
    #expect(cpu.currentRegisters.rsp == 0x7000 - 7 * 8)
    #expect(try rig.u64(0x7000 - 7 * 8) == 0xC0)  // RCX, R11, RIP, CS, RFLAGS, RSP, SS
    #expect(try rig.u64(0x7000 - 5 * 8) == 0x1234)
    #expect(try rig.u64(0x7000 - 3 * 8) == 0x202)
    #expect(try rig.u64(0x7000 - 2 * 8) == 0x7008)
    #expect(try rig.u8(rig.info(0) + L.upcallMask) == 1)
    #expect(try !rig.domain.deliverUpcall(rig.caller()))  // masked by the bounce
  }

  @Test func aMachineResetForgetsTheSharedInfoPagePortsTimersAndCallback() throws {
    let rig = try Rig()
    #expect(try rig.call(.setCallbacks, 0xCAFE, 0, 0) == 0)
    _ = try rig.bindIPI(0)
    #expect(try rig.call(.setTimerOp, 1) == 0)
    rig.domain.resetEvents()
    #expect(rig.domain.events.sharedInfo == nil)
    #expect(rig.domain.vcpuInfo(0) == nil)
    #expect(rig.domain.events.freePort() == 1)
    #expect(rig.domain.events.vcpus[0].singleshotDeadline == nil)
    #expect(rig.domain.vcpus[0].eventCallback == 0)
  }

  @Test func thirtyTwoBitSetCallbacksTakesSelectorAddressPairs() throws {
    let rig = try Rig()
    let call = HypercallDispatcher.Call(
      number: Xen.Hypercall.setCallbacks.rawValue, arguments: [0x61, 0x1000, 0x61, 0x2000, 0, 0], longMode: false)
    #expect(try rig.machine.hypercalls.dispatch(call, caller: rig.caller()) == .value(0))
    #expect(rig.domain.vcpus[0].eventCallback == 0x1000)
    #expect(rig.domain.vcpus[0].failsafeCallback == 0x2000)
  }

  // MARK: sched_op

  @Test func schedOpYieldsBlocksShutsDownAndPolls() throws {
    let rig = try Rig()
    #expect(try rig.result(.schedOp, Xen.SchedOp.yield.rawValue) == .value(0))
    #expect(try rig.result(.schedOp, Xen.SchedOp.block.rawValue) == .block(0))
    #expect(try rig.u8(rig.info(0) + L.upcallMask) == 0)  // block enables events
    for reason in [Xen.ShutdownReason.powerOff, .reboot, .crash] {
      try rig.memory.write(reason.rawValue, at: Self.arg)
      #expect(try rig.result(.schedOp, Xen.SchedOp.shutdown.rawValue, Self.arg) == .shutdown(reason))
    }
    try rig.memory.write(UInt32(9), at: Self.arg)
    #expect(try rig.call(.schedOp, Xen.SchedOp.shutdown.rawValue, Self.arg) == Self.err(.invalid))
    #expect(try rig.call(.schedOp, Xen.SchedOp.shutdown.rawValue, Self.unmapped) == Self.err(.fault))
    #expect(try rig.call(.schedOp, 77) == Self.err(.notImplemented))
    // poll { ports @0, nr_ports @8, timeout @16 }
    let port = try rig.bindIPI(0)
    let list: UInt64 = 0x8100
    let poll: UInt64 = 0x8300  // apart from `arg`, which the event-channel calls use
    try rig.memory.write(list, at: poll)
    try rig.memory.write(UInt32(1), at: poll + 8)
    try rig.memory.write(UInt64(0), at: poll + 16)
    try rig.memory.write(UInt32(0), at: list)
    #expect(try rig.call(.schedOp, Xen.SchedOp.poll.rawValue, poll) == Self.err(.invalid))
    try rig.memory.write(port, at: list)
    #expect(try rig.result(.schedOp, Xen.SchedOp.poll.rawValue, poll) == .block(0))
    #expect(!rig.domain.blockEnds(0))
    #expect(try rig.evtchn(.send, [port]) == 0)
    #expect(rig.domain.blockEnds(0))
    rig.domain.endBlock(rig.caller())
    #expect(try rig.result(.schedOp, Xen.SchedOp.poll.rawValue, poll) == .value(0))  // already pending
    try rig.memory.write(UInt32(129), at: poll + 8)
    #expect(try rig.call(.schedOp, Xen.SchedOp.poll.rawValue, poll) == Self.err(.invalid))
    try rig.memory.write(UInt32(1), at: poll + 8)
    try rig.memory.write(Self.unmapped, at: poll)
    #expect(try rig.call(.schedOp, Xen.SchedOp.poll.rawValue, poll) == Self.err(.fault))
  }

  // MARK: Timers

  @Test func setTimerOpRaisesVIRQTimerOnceWhenDue() throws {
    let rig = try Rig()
    #expect(try rig.evtchn(.bindVIRQ, [Xen.VIRQ.timer.rawValue, 1, 0]) == 0)
    let port = try rig.u32(Self.arg + 8)
    let far = rig.machine.clock.nanoseconds + 3_600_000_000_000
    #expect(try rig.call(.setTimerOp, far, vcpu: 1) == 0)
    #expect(rig.domain.serviceTimers(1) == far)
    #expect(try !rig.pending(port))
    #expect(try rig.call(.setTimerOp, 0, vcpu: 1) == 0)  // cancels
    #expect(rig.domain.serviceTimers(1) == nil)
    #expect(try rig.call(.setTimerOp, 1, vcpu: 1) == 0)  // already passed
    #expect(rig.domain.serviceTimers(1) == nil)
    #expect(try rig.pending(port))
    #expect(try rig.u8(rig.info(1) + L.upcallPending) == 1)
    #expect(try rig.u8(rig.info(0) + L.upcallPending) == 0)
  }

  @Test func thirtyTwoBitSetTimerOpTakesTheDeadlineInTwoHalves() throws {
    let rig = try Rig()
    let call = HypercallDispatcher.Call(
      number: Xen.Hypercall.setTimerOp.rawValue, arguments: [0x89AB_CDEF, 0x7, 0, 0, 0, 0], longMode: false)
    #expect(try rig.machine.hypercalls.dispatch(call, caller: rig.caller()) == .value(0))
    #expect(rig.domain.events.vcpus[0].singleshotDeadline == 0x7_89AB_CDEF)
  }

  // MARK: vcpu_op

  @Test func vcpuOpValidatesTargetsAndTimers() throws {
    let rig = try Rig()
    let op = { (c: Xen.VCPUOp, v: UInt64, vcpu: Int) throws -> Int64 in
      try rig.call(.vcpuOp, c.rawValue, v, Self.arg, vcpu: vcpu)
    }
    #expect(try op(.isUp, 2, 0) == Self.err(.noEntry))
    #expect(try op(.isUp, 0, 0) == 1)
    #expect(try op(.isUp, 1, 0) == 0)  // the AP waits for its start-up IPI
    #expect(try op(.up, 1, 0) == Self.err(.invalid))
    #expect(try op(.up, 0, 0) == 0)
    #expect(try op(.down, 0, 0) == Self.err(.notImplemented))
    try rig.memory.write(UInt64(999_999), at: Self.arg)
    #expect(try op(.setPeriodicTimer, 0, 0) == Self.err(.invalid))
    try rig.memory.write(UInt64(10_000_000), at: Self.arg)
    #expect(try op(.setPeriodicTimer, 1, 0) == 0)
    #expect(rig.domain.serviceTimers(1)! > rig.machine.clock.nanoseconds)
    #expect(try op(.stopPeriodicTimer, 1, 0) == 0)
    #expect(rig.domain.serviceTimers(1) == nil)
    // singleshot { timeout_abs_ns, flags }: own vCPU only; the future flag refuses the past.
    try rig.memory.write(UInt64(1), at: Self.arg)
    try rig.memory.write(Xen.singleshotFutureFlag, at: Self.arg + 8)
    #expect(try op(.setSingleshotTimer, 1, 0) == Self.err(.invalid))
    #expect(try op(.stopSingleshotTimer, 1, 0) == Self.err(.invalid))
    #expect(try op(.setSingleshotTimer, 0, 0) == -62)  // -ETIME
    try rig.memory.write(UInt32(0), at: Self.arg + 8)
    #expect(try op(.setSingleshotTimer, 0, 0) == 0)
    #expect(rig.domain.events.vcpus[0].singleshotDeadline == 1)
    #expect(try op(.stopSingleshotTimer, 0, 0) == 0)
    #expect(rig.domain.events.vcpus[0].singleshotDeadline == nil)
    #expect(try rig.call(.vcpuOp, Xen.VCPUOp.setPeriodicTimer.rawValue, 0, Self.unmapped) == Self.err(.fault))
  }

  @Test func registerVCPUInfoMovesTheVCPUInfoInsideOneOwnedPage() throws {
    let rig = try Rig()
    let op = { (frame: UInt64, offset: UInt32) throws -> Int64 in
      try rig.memory.write(frame, at: Self.arg)
      try rig.memory.write(offset, at: Self.arg + 8)
      return try rig.call(.vcpuOp, Xen.VCPUOp.registerVCPUInfo.rawValue, 1, Self.arg)
    }
    #expect(try op(0x60, 4096 - 63) == Self.err(.invalid))
    #expect(try op(0x10_0000, 0) == Self.err(.invalid))  // not RAM
    #expect(try op(0x60, 4096 - 64) == 0)
    #expect(rig.domain.vcpuInfo(1) == 0x60FC0)
    #expect(try op(0x61, 0) == Self.err(.invalid))  // once only
    #expect(try rig.u8(0x60FC0 + L.upcallPending) == 1)  // raised to resynchronise
    rig.domain.refreshTimeIfStale(1)
    #expect(try rig.u32(0x60FC0 + L.time + L.timeMultiplier) == 1 << 31)
    try rig.memory.write(UInt64(0), at: 0x60FC0 + L.pendingSelector)
    try rig.memory.write(UInt8(0), at: 0x60FC0 + L.upcallPending)
    let port = try rig.bindIPI(1)
    #expect(try rig.evtchn(.send, [port]) == 0)
    #expect(try rig.u64(0x60FC0 + L.pendingSelector) == 1)
    #expect(try rig.u64(rig.shared + 64 + L.pendingSelector) == 0)
  }

  @Test func theRunstateAreaFollowsBlocking() throws {
    let rig = try Rig()
    let area: UInt64 = 0x8200
    try rig.memory.write(area, at: Self.arg)
    #expect(try rig.call(.vcpuOp, Xen.VCPUOp.registerRunstateMemoryArea.rawValue, 0, Self.arg) == 0)
    #expect(try rig.u32(area) == UInt32(Xen.RunState.running.rawValue))
    #expect(try rig.result(.schedOp, Xen.SchedOp.block.rawValue) == .block(0))
    #expect(try rig.u32(area) == UInt32(Xen.RunState.blocked.rawValue))
    let entry = try rig.u64(area + 8)
    #expect(entry <= rig.machine.clock.nanoseconds)
    rig.domain.endBlock(rig.caller())
    #expect(try rig.u32(area) == UInt32(Xen.RunState.running.rawValue))
    #expect(try rig.call(.vcpuOp, Xen.VCPUOp.getRunstateInfo.rawValue, 1, Self.arg) == 0)
    #expect(try rig.u32(Self.arg) == UInt32(Xen.RunState.running.rawValue))
    #expect(try rig.call(.vcpuOp, Xen.VCPUOp.getRunstateInfo.rawValue, 1, Self.unmapped) == Self.err(.fault))
  }
}
