import Testing

@testable import VMM

/// Hypercall preemption (ParavirtDomain+Restart.swift): a frame whose last writable mapping went
/// away without a flush becomes a page table only after every vCPU flushed. On a machine of
/// several vCPUs the call that would validate it is preempted: every vCPU is asked to flush, the
/// caller's RIP goes back to its stub with the rest of the batch in its argument registers, and
/// the call made again validates. Scripted vCPUs, the handlers called as a runner would.
@Suite struct HypercallPreemptionTests {
  typealias H = MemoryHypercallTests
  /// Where the tests install the hypercall page (identity-mapped RAM).
  static let page: UInt64 = 0x31_0000
  /// The frame 0x210000 the test tree's L1 entry 0x10 maps writable.
  static let data = H.data

  /// A harness whose tree is pinned, with the data frame then unmapped without a flush.
  static func staleHarness(cpus: Int = 2) throws -> H.Harness {
    let h = try H.Harness(cpus: cpus)
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, H.l4 >> 12) == 0)
    #expect(h.record(Self.data).writableMappings == 1)
    #expect(try h.mmuUpdate([(H.l1 + 0x10 * 8, 0)]) == (0, 1))
    #expect(h.domain.memoryState.unflushedWritable == [Self.data >> 12])
    #expect(h.domain.installHypercallPage(at: Self.page))
    return h
  }

  /// Makes vCPU `cpu` look stopped just past the trap of stub `number`, with `arguments`.
  static func stopAtStub(_ h: H.Harness, _ number: Xen.Hypercall, _ arguments: [UInt64], cpu: Int = 0) {
    let trap = h.domain.trapInstruction.count
    var r = h.engine.vcpus[cpu].currentRegisters
    r.rax = number.rawValue
    let a = arguments + Array(repeating: 0, count: 6 - arguments.count)
    (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (a[0], a[1], a[2], a[3], a[4], a[5])
    r.rip = Self.page + number.rawValue * 32 + 5 + UInt64(trap)
    h.engine.vcpus[cpu].currentRegisters = r
  }

  /// The hypercall vCPU `cpu`'s registers make, served as a runner serves it.
  static func serve(_ h: H.Harness, cpu: Int = 0) throws -> HypercallResult {
    let vcpu = h.engine.vcpus[cpu]
    let call = HypercallDispatcher.decode(registers: vcpu.currentRegisters, special: vcpu.currentSpecialRegisters)
    return try h.machine.hypercalls.dispatch(call, caller: HypercallCaller(index: cpu, vcpu: vcpu))
  }

  /// The stub ran again: RIP back past its trap (the registers keep the continued arguments).
  static func rerunStub(_ h: H.Harness, cpu: Int = 0) {
    h.engine.vcpus[cpu].currentRegisters.rip += 5 + UInt64(h.domain.trapInstruction.count)
  }

  @Test func pinningAFrameAVCPUMayStillWriteWaitsForEveryFlush() throws {
    let h = try Self.staleHarness()
    // vCPU 1 runs guest code: it may hold the writable translation.
    h.domain.flushBarrier.enteringGuest(1)
    try h.memory.write(UInt64(Xen.MMUExtOp.pinL1Table.rawValue), at: H.args + 0x800)
    try h.memory.write(Self.data >> 12, at: H.args + 0x808)
    Self.stopAtStub(h, .mmuextOp, [H.args + 0x800, 1, 0, H.domidSelf])
    let flushes = h.engine.vcpus[0].translationFlushes

    #expect(try Self.serve(h) == .registersSet)
    // Nothing validated; every vCPU flushes first; the caller waits for vCPU 1's run to end.
    #expect(h.record(Self.data).tableReferences == 0 && !h.record(Self.data).pinned)
    #expect(h.engine.vcpus[0].translationFlushes == flushes + 1)
    #expect(h.domain.takeTranslationFlush(for: 1))
    #expect(h.domain.flushBarrier.hasAwaited(0))
    #expect(h.domain.memoryState.unflushedWritable.isEmpty)
    #expect(h.domain.memoryState.restarts == 1)
    // The stub again, with the batch from the preempted request on.
    let r = h.engine.vcpus[0].currentRegisters
    #expect(r.rip == Self.page + Xen.Hypercall.mmuextOp.rawValue * 32)
    #expect(r.rdi == H.args + 0x800 && r.rsi == 1 | Xen.Memory.updatePreempted && r.rdx == 0)
    #expect(r.r10 == H.domidSelf && r.rax == Xen.Hypercall.mmuextOp.rawValue)

    Self.rerunStub(h)
    #expect(try Self.serve(h) == .value(0))
    #expect(h.record(Self.data).pinned && h.record(Self.data).level == 1)
    #expect(h.domain.memoryState.restarts == 1)
  }

  @Test func aPreemptedBatchContinuesWhereItStoppedAndCountsEveryPass() throws {
    let h = try H.Harness()
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, H.l4 >> 12) == 0)
    #expect(h.domain.installHypercallPage(at: Self.page))
    // One batch: unmap the data frame, then make it the L1 of L2 entry 1.
    let requests: [(UInt64, UInt64)] = [(H.l1 + 0x10 * 8, 0), (H.l2 + 8, Self.data | 3)]
    for (i, q) in requests.enumerated() {
      try h.memory.write(q.0, at: H.args + UInt64(i) * 16)
      try h.memory.write(q.1, at: H.args + UInt64(i) * 16 + 8)
    }
    let done = H.args + 0xF00
    try h.memory.write(UInt32(0xFFFF), at: done)
    Self.stopAtStub(h, .mmuUpdate, [H.args, 2, done, H.domidSelf])

    #expect(try Self.serve(h) == .registersSet)
    #expect(try h.memory.read(UInt32.self, at: done) == 1)
    #expect(try h.entry(H.l1 + 0x10 * 8) == 0 && h.entry(H.l2 + 8) == 0)
    let r = h.engine.vcpus[0].currentRegisters
    #expect(r.rdi == H.args + 16 && r.rsi == 1 | Xen.Memory.updatePreempted && r.rdx == done)

    Self.rerunStub(h)
    #expect(try Self.serve(h) == .value(0))
    #expect(try h.memory.read(UInt32.self, at: done) == 2)
    #expect(try h.entry(H.l2 + 8) == Self.data | 3)
    #expect(h.record(Self.data).level == 1 && h.record(Self.data).tableReferences == 1)
    // A count marked preempted on a first call reads `done`, as Xen does.
    try h.memory.write(UInt32(7), at: done)
    try h.memory.write(H.l1 + 0x20 * 8, at: H.args)
    try h.memory.write(UInt64(0), at: H.args + 8)
    #expect(try h.call(.mmuUpdate, [H.args, 1 | Xen.Memory.updatePreempted, done, H.domidSelf]) == 0)
    #expect(try h.memory.read(UInt32.self, at: done) == 8)
  }

  @Test func aMulticallEntryIsContinuedInPlace() throws {
    let h = try H.Harness()
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, H.l4 >> 12) == 0)
    #expect(h.domain.installHypercallPage(at: Self.page))
    // Entry 0: mmu_update unmapping the data frame; entry 1: mmuext_op pinning it as an L1.
    try h.memory.write(H.l1 + 0x10 * 8, at: H.args + 0x800)
    try h.memory.write(UInt64(0), at: H.args + 0x808)
    try h.memory.write(UInt64(Xen.MMUExtOp.pinL1Table.rawValue), at: H.args + 0x900)
    try h.memory.write(Self.data >> 12, at: H.args + 0x908)
    let entries: [(Xen.Hypercall, [UInt64])] = [
      (.mmuUpdate, [H.args + 0x800, 1, 0, H.domidSelf, 0, 0]),
      (.mmuextOp, [H.args + 0x900, 1, 0, H.domidSelf, 0, 0]),
    ]
    for (i, e) in entries.enumerated() {
      let base = H.args + UInt64(i) * 64
      try h.memory.write(e.0.rawValue, at: base)
      try h.memory.write(UInt64(0xDEAD), at: base + 8)
      for (j, a) in e.1.enumerated() { try h.memory.write(a, at: base + 16 + UInt64(j) * 8) }
    }
    Self.stopAtStub(h, .multicall, [H.args, 2])

    #expect(try Self.serve(h) == .registersSet)
    #expect(try h.memory.read(UInt64.self, at: H.args + 8) == 0)  // entry 0 ran
    #expect(try h.memory.read(UInt64.self, at: H.args + 64 + 8) == 0xDEAD)  // entry 1 did not
    #expect(try h.memory.read(UInt64.self, at: H.args + 64 + 24) == 1 | Xen.Memory.updatePreempted)
    let r = h.engine.vcpus[0].currentRegisters
    #expect(r.rip == Self.page + Xen.Hypercall.multicall.rawValue * 32)
    #expect(r.rdi == H.args + 64 && r.rsi == 1)

    Self.rerunStub(h)
    #expect(try Self.serve(h) == .value(0))
    #expect(try h.memory.read(UInt64.self, at: H.args + 64 + 8) == 0)
    #expect(h.record(Self.data).pinned)
  }

  @Test func outsideAStubTheCallIsRefusedUntilTheFlushOnOneVCPUItFollowsTheValidation() throws {
    // A bare trap (RIP past no stub): -EAGAIN, nothing validated, every vCPU flushed; the call
    // made again validates.
    let h = try Self.staleHarness()
    let again = Xen.Error.tryAgain.returnValue
    #expect(try h.mmuext(.pinL1Table, Self.data >> 12) == again)
    #expect(!h.record(Self.data).pinned && h.domain.takeTranslationFlush(for: 1))
    #expect(h.domain.memoryState.unflushedWritable.isEmpty && h.domain.memoryState.restarts == 0)
    #expect(try h.mmuext(.pinL1Table, Self.data >> 12) == 0)
    #expect(h.record(Self.data).pinned)
    // In a multicall made outside a stub: that entry gets -EAGAIN, the others run.
    #expect(try h.mmuext(.unpinTable, Self.data >> 12) == 0)
    #expect(try h.mmuUpdate([(H.l1 + 0x10 * 8, Self.data | 3)]) == (0, 1))
    #expect(try h.mmuUpdate([(H.l1 + 0x10 * 8, 0)]) == (0, 1))
    try h.memory.write(UInt64(Xen.MMUExtOp.pinL1Table.rawValue), at: H.args + 0x900)
    try h.memory.write(Self.data >> 12, at: H.args + 0x908)
    let entries: [(Xen.Hypercall, [UInt64])] = [
      (.mmuextOp, [H.args + 0x900, 1, 0, H.domidSelf, 0, 0]),
      (.xenVersion, [0, 0, 0, 0, 0, 0]),
    ]
    for (i, e) in entries.enumerated() {
      let base = H.args + UInt64(i) * 64
      try h.memory.write(e.0.rawValue, at: base)
      for (j, a) in e.1.enumerated() { try h.memory.write(a, at: base + 16 + UInt64(j) * 8) }
    }
    #expect(try h.call(.multicall, [H.args, 2]) == 0)
    #expect(try h.memory.read(UInt64.self, at: H.args + 8) == again)
    #expect(try h.memory.read(UInt64.self, at: H.args + 64 + 8) != again)
    #expect(!h.record(Self.data).pinned && h.domain.memoryState.restarts == 0)
    // One vCPU: nothing runs during the call, the flush at its end is enough.
    let one = try Self.staleHarness(cpus: 1)
    try one.memory.write(UInt64(Xen.MMUExtOp.pinL1Table.rawValue), at: H.args + 0x800)
    try one.memory.write(Self.data >> 12, at: H.args + 0x808)
    Self.stopAtStub(one, .mmuextOp, [H.args + 0x800, 1, 0, H.domidSelf])
    #expect(try Self.serve(one) == .value(0))
    #expect(one.record(Self.data).pinned && one.domain.memoryState.restarts == 0)
  }
}
