import Foundation
import Testing

@testable import VMM

/// Random hypercalls against every handler: random numbers, random arguments drawn from values
/// that matter (pointers into RAM and across its end, unmapped and non-canonical addresses, device
/// holes, frame numbers, huge counts, DOMID_SELF), random bytes behind the pointers, callers in
/// 64-bit and 32-bit code, at ring 0 and ring 3, in ring-0 mode and under the deprivileged
/// monitor. The VMM must answer every one (a value, a block, a shutdown, registers set) without
/// crashing, and afterwards still shut the guest down cleanly.
///
/// Calls per mode: `TRIVISOR_HYPERCALL_FUZZ_CALLS` (CI: 1,000,000), else 50,000.
@Suite struct HypercallDispatcherFuzzTests {
  static var calls: Int {
    ProcessInfo.processInfo.environment["TRIVISOR_HYPERCALL_FUZZ_CALLS"].flatMap(Int.init).map { max($0, 1) } ?? 50_000
  }

  static let ramSize: UInt64 = 16 << 20

  /// An argument: one of the values a handler must cope with in any role.
  static func argument(_ rng: inout SeededGenerator) -> UInt64 {
    switch rng.below(12) {
    case 0: return rng.next()
    case 1: return rng.below(17)  // small numbers: commands, counts, vCPUs, ports
    case 2: return 0x10_0000 &+ rng.below(ramSize - 0x10_0000) & ~7  // a pointer into RAM
    case 3: return ramSize &- rng.below(64)  // across the end of RAM
    case 4: return 0x0000_7FFF_FFFF_F000 &+ rng.below(0x2000)  // the canonical edge
    case 5: return 0x8000_0000_0000_0000 | rng.below(1 << 40)  // non-canonical
    case 6: return 0xFEE0_0000 &+ rng.below(0x1000)  // a device hole
    case 7: return rng.below(ramSize >> 12)  // a frame number
    case 8: return 0x7FF0  // DOMID_SELF
    case 9: return UInt64.max &- rng.below(4)
    case 10: return 1 << rng.below(64)
    default: return rng.below(1 << 32)
    }
  }

  /// A hypercall number: mostly the ABI's, sometimes anything.
  static func number(_ rng: inout SeededGenerator) -> UInt64 {
    rng.below(4) == 0 ? rng.next() : rng.below(40)
  }

  /// Paravirtual page tables for the deprivileged mode: the first 15 MiB identity-mapped with
  /// 4 KiB pages (no superpages; the last MiB, where the monitor lives, not at all), the tables
  /// themselves read-only; returns the root.
  static func pageTables(in memory: GuestMemory) throws -> UInt64 {
    let (l4, l3, l2, firstL1): (UInt64, UInt64, UInt64, UInt64) = (0xA0000, 0xA1000, 0xA2000, 0xA3000)
    let tables = l4..<(firstL1 + 8 * 0x1000)
    try memory.fill(l4, length: tables.upperBound - l4)
    try memory.write(l3 | 7, at: l4)
    try memory.write(l2 | 7, at: l3)
    for t in 0..<UInt64(8) { try memory.write((firstL1 + t * 0x1000) | 7, at: l2 + t * 8) }
    for page in 0..<UInt64((ramSize - (1 << 20)) >> 12) {
      let address = page << 12
      try memory.write(address | (tables.contains(address) ? 5 : 7), at: firstL1 + page * 8)
    }
    return l4
  }

  func fuzz(deprivileged: Bool, seed: UInt64) throws {
    let engine = ScriptedEngine(scripts: [[], []])
    let memory = try GuestMemory(ramSize: Self.ramSize)
    var boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    if deprivileged { boot.specialRegisters.cr3 = try Self.pageTables(in: memory) }
    var configuration = MachineConfiguration(timeoutSeconds: 60)
    configuration.cpuCount = 2
    let machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    if deprivileged { try machine.paravirt.startDeprivileged(boot: boot) }
    var rng = SeededGenerator(state: seed)
    var outcomes: [String: Int] = [:]
    for _ in 0..<Self.calls {
      let cpu = Int(rng.below(2))
      let vcpu = engine.vcpus[cpu]
      var s = boot.specialRegisters
      if rng.below(8) == 0 { s.cs.l = false }  // a 32-bit caller
      if rng.below(8) == 0 {  // a ring-3 caller
        s.cs.selector |= 3
        s.ss.selector |= 3
      }
      vcpu.currentSpecialRegisters = s
      var r = Registers()
      r.rip = 0x10000
      r.rsp = 0x10_0000 &+ rng.below(Self.ramSize - 0x10_0000) & ~15
      r.rflags = 0x202
      vcpu.currentRegisters = r
      // Random bytes where an argument points.
      if rng.below(2) == 0 {
        let at = 0x10_0000 &+ rng.below(Self.ramSize - 0x11_0000)
        try memory.write(at, bytes: (0..<64).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
      }
      let call = HypercallDispatcher.Call(
        number: Self.number(&rng), arguments: (0..<6).map { _ in Self.argument(&rng) }, longMode: s.cs.l)
      let result = try machine.hypercalls.dispatch(call, caller: HypercallCaller(index: cpu, vcpu: vcpu))
      switch result {
      case .value: outcomes["value", default: 0] += 1
      case .block: outcomes["block", default: 0] += 1
      case .registersSet: outcomes["registers", default: 0] += 1
      case .shutdown: outcomes["shutdown", default: 0] += 1
      }
    }
    #expect(outcomes["value", default: 0] > Self.calls / 2, "\(outcomes)")
    // The guest can still shut down: sched_op(shutdown, poweroff) from its kernel, with paging
    // off (whatever the calls did to its own page tables is the guest's business).
    let vcpu = engine.vcpus[0]
    vcpu.currentSpecialRegisters = boot.specialRegisters
    vcpu.currentSpecialRegisters.cr0 &= ~(1 << 31)
    var r = Registers()
    r.rsp = 0x9_0000
    vcpu.currentRegisters = r
    if deprivileged {
      machine.paravirt.vcpus[0].inKernelMode = true
      vcpu.currentSpecialRegisters.cs.selector = 0xE033
      vcpu.currentSpecialRegisters.ss.selector = 0xE02B
    }
    try memory.write(UInt32(0), at: 0x8000)  // struct sched_shutdown { reason = poweroff }
    let shutdown = try machine.hypercalls.dispatch(
      HypercallDispatcher.Call(
        number: Xen.Hypercall.schedOp.rawValue, arguments: [2, 0x8000, 0, 0, 0, 0], longMode: true),
      caller: HypercallCaller(index: 0, vcpu: vcpu))
    #expect(shutdown == .shutdown(.powerOff))
  }

  @Test func randomHypercallsInRingZeroModeAreAllAnswered() throws {
    try fuzz(deprivileged: false, seed: 20_261_205)
  }

  @Test func randomHypercallsUnderTheMonitorAreAllAnswered() throws {
    try fuzz(deprivileged: true, seed: 20_261_206)
  }
}
