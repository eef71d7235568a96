import Foundation
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Hypercall preemption on real engines (ParavirtDomain+Restart.swift): on 2 vCPUs, vCPU 0 unmaps
/// its window page without a flush and then makes that frame a page table, once as two
/// hypercalls (`mmu_update`, `mmuext_op(pin_l1_table)`) and once as one `multicall` of both,
/// while vCPU 1 runs guest code. Each validating call is preempted once: the flush of every vCPU
/// comes first, the vCPU runs the stub (`mov $nr, %eax`, the trap) again, and the call made again
/// succeeds. The guest sees only the results, all 0; the VMM's count of restarts shows the path
/// was taken. On kvm the restart must not let KVM skip the trap (an OUT).
@Suite struct ParavirtPreemptionTests {
  static let guest = ParavirtTestGuest.source(
    #"""
      START_VCPU1
      mov %rax, 0x08(%rbp)
      WAIT_UNTIL ack, 1
      // 1: unmap the window (no flush), then pin its frame as an L1 table.
      MMU_UPDATE zero
      mov %rax, 0x10(%rbp)
      MMUEXT 0, mfn(%rip)
      mov %rax, 0x18(%rbp)
      // Back to a writable mapping: unpin, map again.
      MMUEXT 4, mfn(%rip)
      mov %rax, 0x20(%rbp)
      MMU_UPDATE val_a
      mov %rax, 0x28(%rbp)
      // 2: the same two as one multicall.
      MMU_REQUEST zero
      MMUEXT_OP 0, mfn(%rip)
      lea req(%rip), %rax
      mov %rax, calls+16(%rip)
      lea op(%rip), %rax
      mov %rax, calls+64+16(%rip)
      lea calls(%rip), %rdi
      mov $2, %esi
      HCALL 13
      mov %rax, 0x30(%rbp)
      mov calls+8(%rip), %rax
      mov %rax, 0x38(%rbp)
      mov calls+64+8(%rip), %rax
      mov %rax, 0x40(%rbp)
      DONE

    ap_entry:
      movq $1, ack(%rip)
    3:
      pause
      jmp 3b
    """#,
    data: #"""
      zero:
        .quad 0
      ack:
        .quad 0
        .balign 64
      calls:
        .quad 1, 0xdead, 0, 1, 0, 0x7ff0, 0, 0
        .quad 26, 0xdead, 0, 1, 0, 0x7ff0, 0, 0
      """#,
    done: "PV-PREEMPT-DONE")

  static func run(engine e: any Engine) throws {
    let (machine, memory) = try ParavirtTestGuest.boot(Self.guest, on: e, cpus: 2) {
      $0.stopOnOutput = "PV-PREEMPT-DONE"
    }
    // The window's L1 entry, found through the boot's page tables.
    let windowFrame = ParavirtTestGuest.windowFrame
    let original = try ParavirtTestGuest.prepareWindow(machine, memory)
    #expect(original & 0x000F_FFFF_FFFF_F000 == windowFrame && original & 2 != 0)

    let outcome = machine.run()
    #expect(outcome.reason == .outputMatched("PV-PREEMPT-DONE"), "\(outcome.reason)")
    for offset in [0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40] as [UInt64] {
      #expect(try ParavirtTestGuest.word(memory, offset) == 0, "hypercall result at 0x\(String(offset, radix: 16))")
    }
    let domain = machine.paravirt
    #expect(domain.memoryState.frames[windowFrame >> 12].pinned)
    #expect(domain.memoryState.restarts == 2, "one preemption for each way of pinning")
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func aPinAfterAnUnflushedUnmapIsMadeAgainAfterTheFlush(engine: String) throws {
    try Self.run(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func aPinAfterAnUnflushedUnmapIsMadeAgainAfterTheFlushOnKVM() throws {
    try Self.run(engine: try KVMEngine())
  }
}
