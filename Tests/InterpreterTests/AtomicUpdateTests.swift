import Foundation
import Testing
import VMM

@testable import Interpreter

/// Several interpreter vCPUs of one VM on their own host threads, sharing guest memory: LOCK ADD,
/// LOCK CMPXCHG, XCHG spin locks around a plain increment, LOCK XADD and LOCK BTS/BTR all keep
/// exact totals (CPU+Atomics.swift). Run under Thread Sanitizer with
/// `swift test --sanitize=thread --filter AtomicUpdateTests`.
@Suite struct AtomicUpdateTests {
  /// 20,000 rounds of: lock add [0x20000], 1; a lock-cmpxchg increment of [0x20008]; an xchg spin
  /// lock at [0x20010] guarding inc [0x20018] (released by a plain store); lock xadd [0x20020], 1;
  /// lock bts/btr [0x20028], 0. Then `out 0x10, al` and hlt. (Assembled from the listing above.)
  static let code: [UInt8] = [
    0xB9, 0x20, 0x4E, 0x00, 0x00, 0xF0, 0x83, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0x01, 0x8B, 0x04,
    0x25, 0x08, 0x00, 0x02, 0x00, 0x8D, 0x50, 0x01, 0xF0, 0x0F, 0xB1, 0x14, 0x25, 0x08, 0x00, 0x02,
    0x00, 0x75, 0xEB, 0xB8, 0x01, 0x00, 0x00, 0x00, 0x87, 0x04, 0x25, 0x10, 0x00, 0x02, 0x00, 0x85,
    0xC0, 0x75, 0xF0, 0xFF, 0x04, 0x25, 0x18, 0x00, 0x02, 0x00, 0xC7, 0x04, 0x25, 0x10, 0x00, 0x02,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xF0, 0x0F, 0xC1, 0x04, 0x25, 0x20,
    0x00, 0x02, 0x00, 0xF0, 0x0F, 0xBA, 0x2C, 0x25, 0x28, 0x00, 0x02, 0x00, 0x00, 0xF0, 0x0F, 0xBA,
    0x34, 0x25, 0x28, 0x00, 0x02, 0x00, 0x00, 0xFF, 0xC9, 0x75, 0x9A, 0xE6, 0x10, 0xF4,
  ]
  static let rounds: UInt32 = 20_000

  @Test(arguments: [2, 4]) func lockedUpdatesFromSeveralThreadsKeepExactTotals(vcpuCount: Int) throws {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: Self.code)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let vm = InterpreterVM(memory: memory, model: .host64, deterministic: false, identity: nil)
    var vcpus: [InterpreterVirtualCPU] = []
    for i in 0..<vcpuCount {
      let vcpu = try vm.createInterpreterVCPU(index: i)
      try vcpu.setSpecialRegisters(boot.specialRegisters)
      try vcpu.setRegisters(boot.registers)
      vcpus.append(vcpu)
    }
    #expect(vcpus.allSatisfy { $0.cpu.atomicUpdates })
    let group = DispatchGroup()
    let failures = Failures()
    for vcpu in vcpus {
      let box = Box(vcpu)
      group.enter()
      Thread {
        defer { group.leave() }
        do {
          // Each vCPU needs about 0.5 M instructions; a lost update to the spin lock word would
          // leave it taken for ever, so the loop is bounded and reports that instead of hanging.
          for _ in 0..<40 {
            let exit = try box.vcpu.run(budget: 1_000_000)
            if case .io = exit { return }
            guard exit == .budgetExhausted || exit == .kicked else {
              failures.add("unexpected exit \(exit)")
              return
            }
          }
          failures.add("a vCPU still spins after 40 M instructions (the spin lock word was lost)")
        } catch {
          failures.add("\(error)")
        }
      }.start()
    }
    group.wait()
    #expect(failures.list.isEmpty, "\(failures.list)")
    let total = Self.rounds * UInt32(vcpuCount)
    #expect(try memory.read(UInt32.self, at: 0x20000) == total)  // lock add
    #expect(try memory.read(UInt32.self, at: 0x20008) == total)  // lock cmpxchg loop
    #expect(try memory.read(UInt32.self, at: 0x20018) == total)  // xchg spin lock, plain inc
    #expect(try memory.read(UInt32.self, at: 0x20010) == 0)  // the lock is free
    #expect(try memory.read(UInt32.self, at: 0x20020) == total)  // lock xadd
    #expect(try memory.read(UInt32.self, at: 0x20028) == 0)  // lock bts, lock btr
  }

  @Test func oneVCPUKeepsPlainUpdates() throws {
    let memory = try GuestMemory(ramSize: 2 << 20)
    let vm = InterpreterVM(memory: memory, model: .host64, deterministic: false, identity: nil)
    #expect(try !vm.createInterpreterVCPU(index: 0).cpu.atomicUpdates)
  }

  final class Box: @unchecked Sendable {
    let vcpu: InterpreterVirtualCPU
    init(_ vcpu: InterpreterVirtualCPU) { self.vcpu = vcpu }
  }

  final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var list: [String] { lock.withLock { items } }
  }
}
